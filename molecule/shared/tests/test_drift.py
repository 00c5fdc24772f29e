"""Drift repair: objects of ours deleted by hand are reported by a check-mode run, which changes
nothing, and restored by the next real run, with the same changed counts; traffic works again and
what someone else made next to ours is never touched."""
from lab import LEAF, WORKERS, Node, playbook, recap, snapshot

# Made by someone else, on worker1: a route, a link pair and a NAT rule beside ours.
FOREIGN = [
    ["ip", "route", "add", "10.99.0.0/16", "via", "192.168.210.254"],
    ["ip", "link", "add", "fx0", "type", "veth", "peer", "name", "fx1"],
    ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.98.0.0/16", "-j", "MASQUERADE"],
]


# One object of each kind we own, on a node: (what, shell that deletes it, shell test that holds while it
# is there). Each finds its object on the node; an empty find (the kind is not in this scenario) skips it.
KINDS = [
    ("a pod veth", 'ip link del "$1"', 'ip link show "$1"',
     "echo {veth}"),
    ("a cross-node route", 'ip route del "$1" proto 202', '[ -n "$(ip route show proto 202 "$1")" ]',
     "ip route show proto 202 | awk 'NR == 1 {print $1}'"),
    ("the egress NAT rules (iptables)", 'iptables -t nat -F "$1"', 'iptables -t nat -S "$1" | grep -q "^-A"',
     "iptables -t nat -S 2>/dev/null | awk '$2 == \"HANDCNI-POSTROUTING\" {print $2; exit}'"),
    ("the egress NAT rules (nftables)", 'nft flush chain ip handcni "$1"',
     '[ "$(nft -a list chain ip handcni "$1" | grep -c "# handle")" -ge 2 ]',
     "nft list table ip handcni 2>/dev/null | awk '$1 == \"chain\" && $2 == \"postrouting\" {print $2; exit}'"),
    ("a service endpoint's rules (iptables)", 'iptables -t nat -F "$1"', 'iptables -t nat -S "$1" | grep -q "^-A"',
     "iptables -t nat -S 2>/dev/null | awk '$1 == \"-N\" && $2 ~ /^HANDCNI-SEP-/ {print $2; exit}'"),
    ("a service's rules (nftables)", 'nft flush chain ip handcni "$1"',
     '[ "$(nft -a list chain ip handcni "$1" | grep -c "# handle")" -ge 2 ]',
     "nft list table ip handcni 2>/dev/null | awk '$1 == \"chain\" && $2 ~ /^service-/ {print $2; exit}'"),
    ("a VXLAN FDB entry", 'set -- $1; bridge fdb del "$2" dev "$1" dst "$3"',
     'set -- $1; bridge fdb show dev "$1" | grep -q "^$2 dst $3 "',
     "d=$(ip -o link show type vxlan | awk -F': ' 'NR == 1 {print $2}' | cut -d@ -f1); "
     "[ -n \"$d\" ] && bridge fdb show dev \"$d\" | awk -v d=\"$d\" '$2 == \"dst\" {print d, $1, $3; exit}'"),
    ("a VXLAN neighbour entry", 'set -- $1; ip neigh del "$2" dev "$1"',
     'set -- $1; ip neigh show "$2" dev "$1" nud permanent | grep -q .',
     "d=$(ip -o link show type vxlan | awk -F': ' 'NR == 1 {print $2}' | cut -d@ -f1); "
     "[ -n \"$d\" ] && ip neigh show dev \"$d\" nud permanent | awk -v d=\"$d\" 'NR == 1 {print d, $1}'"),
    ("the BIRD config", 'rm "$1"', 'test -s "$1"',
     "{bgp} && echo /etc/bird/bird.conf"),
]


def drift(first: Node, second: Node) -> dict:
    """Delete one object of each kind we own that the scenario has, by hand, on `first`, and a whole
    pod namespace on `second`; {what: (node, shell test that holds once it is back, its argument)}."""
    gone = {}
    for what, delete, present, find in KINDS:
        find = find.replace("{veth}", first.pods[1]["veth"]).replace("{bgp}", str(first.method == "bgp").lower())
        found = first.run("sh", "-c", find)
        target = found.stdout.strip()
        if not target:
            continue
        assert first.run("sh", "-c", present, "present", target).rc == 0, f"{what} ({target}) is not there"
        assert first.run("sh", "-c", delete, "delete", target).rc == 0, f"{what} ({target}) was not deleted"
        assert first.run("sh", "-c", present, "present", target).rc != 0, f"{what} ({target}) is still there"
        gone[f"{what} ({target})"] = (first, present, target)
    pod = second.pods[0]["name"]
    assert second.run("ip", "netns", "del", pod).rc == 0
    gone[f"a pod namespace ({pod})"] = (second, 'test -e "/run/netns/$1"', pod)
    return gone


def test_drift_is_seen_by_check_mode_and_repaired():
    first, second = Node(WORKERS[0]), Node(WORKERS[1])
    had_nat_table = first.run("nft", "list", "table", "ip", "nat").rc == 0  # iptables-nft makes it on first use
    for argv in FOREIGN:
        assert first.run(*argv).rc == 0
    try:
        gone = drift(first, second)
        drifted = snapshot(WORKERS)
        planned = playbook("site.yml", "--check")
        assert planned.returncode == 0, planned.stdout[-3000:]
        assert snapshot(WORKERS) == drifted, "check mode changed a node"
        predicted = recap(planned.stdout)
        assert predicted[first.name] > 0 and predicted[second.name] > 0
        assert all(predicted[n] == 0 for n in WORKERS[2:]) and predicted.get(LEAF) == 0
        repaired = playbook("site.yml")
        assert repaired.returncode == 0, repaired.stdout[-3000:]
        assert recap(repaired.stdout) == predicted
        for what, (node, present, target) in gone.items():
            assert node.run("sh", "-c", present, "present", target).rc == 0, f"{what} on {node.name} is not back"
        verified = playbook("verify.yml")
        assert verified.returncode == 0, [line for line in verified.stdout.splitlines() if "FAIL" in line]
        links = first.run("ip", "-o", "link").stdout
        assert "fx0" in links and "fx1" in links
        assert "10.99.0.0/16" in first.run("ip", "route").stdout
        assert "-A POSTROUTING -s 10.98.0.0/16 -j MASQUERADE" in first.run("iptables-save", "-t", "nat").stdout
    finally:
        first.run("ip", "link", "del", "fx0")
        first.run("ip", "route", "del", "10.99.0.0/16")
        first.run("iptables", "-t", "nat", "-D", "POSTROUTING", "-s", "10.98.0.0/16", "-j", "MASQUERADE")
        if not had_nat_table:
            first.run("nft", "delete", "table", "ip", "nat")
