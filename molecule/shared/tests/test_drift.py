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


def drift(first: Node, second: Node) -> None:
    """Delete one object of each kind we own, by hand."""
    first.run("ip", "link", "del", first.pods[1]["veth"])                # a pod's veth
    first.run("sh", "-c", "ip route show proto 202 | head -1 | xargs -r ip route del")  # a cross-node route
    first.run("sh", "-c", "iptables -t nat -F HANDCNI-POSTROUTING 2>/dev/null; "
                          "nft flush chain ip handcni postrouting 2>/dev/null; true")  # our NAT rules
    second.run("ip", "netns", "del", second.pods[0]["name"])              # a whole pod namespace


def test_drift_is_seen_by_check_mode_and_repaired():
    first, second = Node(WORKERS[0]), Node(WORKERS[1])
    had_nat_table = first.run("nft", "list", "table", "ip", "nat").rc == 0  # iptables-nft makes it on first use
    for argv in FOREIGN:
        assert first.run(*argv).rc == 0
    try:
        drift(first, second)
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
