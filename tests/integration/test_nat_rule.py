"""handcni.podnet.nat_rule through Ansible on a throwaway lab: leaf03 and worker1, pod netns1 on worker1 (dual stack
for the IPv6 tests: the lab's IPv6 underlay fd00:210::/64 and the pod's fd00:10::1, set up by hand)."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from conftest import LEAF_IP, NODE, NODE_IP, Lab, changed, module, raw

POD_CIDR = "192.168.10.0/24"
POD_IP = "192.168.10.1"
CLUSTER_CIDR = "192.168.0.0/19"  # the pod CIDRs 192.168.10/20/30.0/24, not the node network
COMMENT = f"handcni.podnet masquerade {POD_CIDR}"
SEED = {"source": POD_CIDR, "exclude": [CLUSTER_CIDR], "out_interface_not": "br0"}
SEED_NORMALISED = {"source": POD_CIDR, "exclude": [CLUSTER_CIDR], "out_interface_not": "br0"}
RECORD = "cat /var/lib/handcni/nat_rule._host.masquerade.applied.json"
FOREIGN_IPT = "-A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE"
FOREIGN_NFT = "ip saddr 10.9.8.0/24 masquerade"
PING_LEAF = f"ip netns exec netns1 ping -c1 -W1 -q {LEAF_IP}"
# IPv6: the lab's underlay addresses (inventories/lab), worker1's pod prefix and the other workers' (the cluster's)
NODE_IP6, LEAF_IP6, POD_CIDR6, POD_IP6 = "fd00:210::21", "fd00:210::254", "fd00:10::/64", "fd00:10::1"
SEED6 = {"source": POD_CIDR6, "exclude": [POD_CIDR6, "fd00:20::/64", "fd00:30::/64"], "out_interface_not": "br0"}
ECHO_PORT = 9996
# The address the leaf saw, as its UDP echo answers it (the leaf routes fd00:10::/64 back to worker1, so an
# unmasqueraded pod is answered too); "timeout" when no answer comes.
SEEN_BY_LEAF6 = ("ip netns exec netns1 python3 -c \"import socket; s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); "
                 f"s.settimeout(3); s.sendto(b'hi', ('{LEAF_IP6}', {ECHO_PORT})); "
                 "print(s.recv(64).decode())\" || echo timeout")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root to build namespaces")

# The pod of seed lab 3 without the bridge: netns1 behind veth1, default route via the node.
POD_SETUP = [
    ["ip", "netns", "add", "netns1"],
    ["ip", "link", "add", "veth1", "type", "veth", "peer", "name", "eth0", "netns", "netns1"],
    ["ip", "address", "add", "192.168.10.254/24", "dev", "veth1"],
    ["ip", "link", "set", "veth1", "up"],
    ["ip", "-n", "netns1", "address", "add", f"{POD_IP}/24", "dev", "eth0"],
    ["ip", "-n", "netns1", "link", "set", "eth0", "up"],
    ["ip", "-n", "netns1", "link", "set", "lo", "up"],
    ["ip", "-n", "netns1", "route", "add", "default", "via", "192.168.10.254"],
    ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
    # Someone else's NAT next to ours: one iptables rule, one nft table.
    ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.9.9.0/24", "-j", "MASQUERADE"],
    ["nft", "add", "table", "ip", "foreign"],
    ["nft", "add", "chain", "ip", "foreign", "post", "{ type nat hook postrouting priority 50; }"],
    ["nft", "add", "rule", "ip", "foreign", "post", "ip", "saddr", "10.9.8.0/24", "masquerade"],
]


# --- steps of a play ----------------------------------------------------------------

def nat(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.nat_rule", args, check)


def quiet(name: str, args: dict, check: bool = False) -> dict:
    """A module call without diff mode: the one that may answer from the record of the last run."""
    return dict(nat(name, args, check), diff=False)


def kernel(name: str, netns: str | None = None) -> dict:
    """Read the node's (or its netns') NAT rules: iptables-save's rules, ip6tables-save's, then the whole nft ruleset."""
    run = f"ip netns exec {netns} " if netns else ""
    save = "-save -t nat | grep -e '^-A' -e '^:HANDCNI'; echo ---"
    return raw(name, f"{run}iptables{save}; {run}ip6tables{save}; {run}nft list ruleset")


class Kernel:
    def __init__(self, result: dict):
        assert result["rc"] == 0, result
        iptables, ip6tables, nft = result["stdout"].split("---", 2)
        self.nft = re.sub(r"counter packets \d+ bytes \d+", "counter", nft)  # iptables-nft's counters
        self.iptables = [line.strip() for line in iptables.splitlines() if line.strip()]
        self.ip6tables = [line.strip() for line in ip6tables.splitlines() if line.strip()]
        self.ours6 = any("HANDCNI" in line for line in self.ip6tables) or "table ip6 handcni" in self.nft
        self.ours = any("HANDCNI" in line for line in self.iptables) or "table ip handcni" in self.nft or self.ours6

    def __eq__(self, other) -> bool:
        return (self.iptables, self.ip6tables, self.nft) == (other.iptables, other.ip6tables, other.nft)

    def foreign_intact(self) -> bool:
        return FOREIGN_IPT in self.iptables and FOREIGN_NFT in self.nft


def reset(lab: Lab) -> None:
    """Remove ours by hand, whatever a failed test left (not through the module under test)."""
    for prefix in ([], ["ip", "netns", "exec", "netns1"]):
        for family, tool in (("ip", "iptables"), ("ip6", "ip6tables")):
            lab.sh(*prefix, "nft", "delete", "table", family, "handcni", check=False)
            lab.sh(*prefix, tool, "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment",
                   "handcni.podnet", "-j", "HANDCNI-POSTROUTING", check=False)
            for option in ("-F", "-X"):
                lab.sh(*prefix, tool, "-t", "nat", option, "HANDCNI-POSTROUTING", check=False)


@pytest.fixture(scope="module")
def lab(lab):
    """The shared throwaway lab, with the pod and the foreign NAT set up by hand."""
    for argv in POD_SETUP:
        lab.sh(*argv)
    return lab


@pytest.fixture
def clean(lab):
    reset(lab)
    yield lab
    reset(lab)


# The IPv6 underlay on worker1's eth0 and the leaf's vlan210 (as the lab's inventory has it), a route on the
# leaf back to worker1's pod prefix, forwarding on worker1, and pod netns1's IPv6 address and default route.
DUAL_STACK = [
    (NODE, ["ip", "address", "replace", f"{NODE_IP6}/64", "dev", "eth0", "nodad"]),
    (NODE, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]),
    (NODE, ["ip", "address", "replace", "fd00:10::fe/64", "dev", "veth1", "nodad"]),
    (NODE, ["ip", "-n", "netns1", "address", "replace", f"{POD_IP6}/64", "dev", "eth0", "nodad"]),
    (NODE, ["ip", "-n", "netns1", "-6", "route", "replace", "default", "via", "fd00:10::fe"]),
    ("leaf03", ["ip", "address", "replace", f"{LEAF_IP6}/64", "dev", "vlan210", "nodad"]),
    ("leaf03", ["ip", "-6", "route", "replace", POD_CIDR6, "via", NODE_IP6]),
]
# The far end: a UDP echo on the leaf answering each datagram with the address it came from.
ECHO = ("import socket\ns = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        f"s.bind(('{LEAF_IP6}', {ECHO_PORT}))\nprint('ready', flush=True)\n"
        "while True:\n    data, peer = s.recvfrom(64)\n    s.sendto(peer[0].encode(), peer)\n")


@pytest.fixture(scope="module")
def dual_stack(lab):
    """The lab with IPv6 beside IPv4, and the leaf's echo running for the module's tests."""
    for node, argv in DUAL_STACK:
        lab.sh(*argv, node=node)
    echo = subprocess.Popen(lab.enter("leaf03") + ["python3", "-c", ECHO], stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout.readline().strip() == "ready"
        yield lab
    finally:
        echo.kill()
        echo.wait()


@pytest.fixture
def clean6(dual_stack):
    reset(dual_stack)
    yield dual_stack
    reset(dual_stack)


# --- the tests ----------------------------------------------------------------------

DELETE_BY_HAND = {
    "iptables": (f"iptables -t nat -D HANDCNI-POSTROUTING -s {POD_CIDR} ! -o br0 -m comment --comment '{COMMENT}' "
                 "-j MASQUERADE && iptables -t nat -D POSTROUTING -m comment --comment handcni.podnet "
                 "-j HANDCNI-POSTROUTING"),
    "nftables": "nft flush chain ip handcni postrouting",
}
MADE = {
    "iptables": [f'-A HANDCNI-POSTROUTING -s {POD_CIDR} ! -o br0 -m comment --comment "{COMMENT}" -j MASQUERADE',
                 '-A POSTROUTING -m comment --comment "handcni.podnet" -j HANDCNI-POSTROUTING'],
    "nftables": [f'ip saddr {POD_CIDR} ip daddr != {CLUSTER_CIDR} oifname != "br0" masquerade comment "{COMMENT}"'],
}


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_lifecycle(clean, backend):
    args = {"backend": backend, "masquerade": [SEED], "prune": True}
    wider = dict(args, masquerade=[dict(SEED, exclude=[CLUSTER_CIDR, "10.96.0.0/12"])])
    reordered = dict(args, masquerade=[dict(SEED, exclude=["10.96.0.0/12", CLUSTER_CIDR])])
    r = clean.play(
        kernel("start"),
        nat("planned", args, check=True), kernel("after planned"),
        nat("created", args), kernel("made"),
        nat("again", args), nat("again, check mode", args, check=True),
        nat("wider exclude", wider),
        nat("wider exclude, other order", reordered),
        nat("back", args),
        raw("delete ours by hand", DELETE_BY_HAND[backend]), kernel("drifted"),
        nat("restored", args), kernel("after restore"),
        nat("absent planned", dict(backend=backend, state="absent"), check=True), kernel("after absent planned"),
        nat("absent", dict(backend=backend, state="absent")), kernel("after absent"),
        nat("absent again", dict(backend=backend, state="absent")),
    )
    start, made = Kernel(r["start"]), Kernel(r["made"])
    assert start.foreign_intact() and not start.ours

    # check mode changes nothing and predicts the real run exactly
    assert changed(r["planned"]) and Kernel(r["after planned"]) == start
    assert changed(r["created"])
    assert [r["created"][k] for k in ("actions", "transactions", "diff", "masquerade")] == \
        [r["planned"][k] for k in ("actions", "transactions", "diff", "masquerade")]
    assert r["created"]["masquerade"] == [SEED_NORMALISED]
    assert r["created"]["diff"]["before"][backend] == [] and r["created"]["diff"]["after"][backend]
    for line in MADE[backend]:
        assert line in (made.iptables if backend == "iptables" else made.nft)
    other = "nftables" if backend == "iptables" else "iptables"
    assert r["created"]["diff"]["after"][other] == []
    assert made.foreign_intact()

    assert not changed(r["again"]) and r["again"]["actions"] == []
    assert not changed(r["again, check mode"])
    assert changed(r["wider exclude"]) and "10.96.0.0/12" in "\n".join(r["wider exclude"]["diff"]["after"][backend])
    assert not changed(r["wider exclude, other order"])
    assert changed(r["back"])

    # a rule of ours deleted by hand is seen and put back
    assert r["delete ours by hand"]["rc"] == 0 and Kernel(r["drifted"]) != made
    assert changed(r["restored"]) and Kernel(r["after restore"]) == made

    assert changed(r["absent planned"]) and Kernel(r["after absent planned"]) == made
    assert changed(r["absent"]) and r["absent"]["actions"] == r["absent planned"]["actions"]
    assert r["absent"]["masquerade"] == []
    after = Kernel(r["after absent"])
    assert not after.ours and after == start and after.foreign_intact()
    assert not changed(r["absent again"])


def test_switch_backend_and_prune(clean):
    other = {"source": "192.168.20.0/24"}
    r = clean.play(
        nat("iptables, two entries", dict(masquerade=[SEED, other])),
        # not pruned: the unlisted entry moves to nftables too; iptables is emptied in the same run
        nat("nftables, one listed", dict(backend="nftables", masquerade=[SEED])), kernel("on nftables"),
        nat("nftables, pruned", dict(backend="nftables", masquerade=[SEED], prune=True)), kernel("pruned"),
        nat("nftables, pruned again", dict(backend="nftables", masquerade=[SEED], prune=True)),
        nat("back to iptables", dict(masquerade=[SEED], prune=True)), kernel("on iptables"),
        nat("add the other", dict(masquerade=[other])),
        nat("absent, the other", dict(state="absent", masquerade=[other])),
        nat("prune, nothing listed", dict(prune=True)), kernel("end"),
    )
    assert changed(r["iptables, two entries"])
    moved = r["nftables, one listed"]
    assert changed(moved) and [a.split(":")[0] for a in moved["actions"]] == ["nft -f", "iptables-restore --noflush"]
    assert [m["source"] for m in moved["masquerade"]] == [POD_CIDR, "192.168.20.0/24"]
    on_nft = Kernel(r["on nftables"])
    assert not any("HANDCNI" in line for line in on_nft.iptables) and "192.168.20.0/24" in on_nft.nft

    assert changed(r["nftables, pruned"]) and "192.168.20.0/24" not in Kernel(r["pruned"]).nft
    assert not changed(r["nftables, pruned again"])

    on_ipt = Kernel(r["on iptables"])
    assert changed(r["back to iptables"]) and "table ip handcni" not in on_ipt.nft
    assert any(COMMENT in line for line in on_ipt.iptables)

    assert changed(r["add the other"])
    assert r["absent, the other"]["masquerade"] == [SEED_NORMALISED]
    assert changed(r["prune, nothing listed"])
    end = Kernel(r["end"])
    assert not end.ours and end.foreign_intact()


def test_netns_option(clean):
    args = {"netns": "netns1", "masquerade": [{"source": "10.0.0.0/24"}]}
    r = clean.play(
        nat("iptables in netns1", args), kernel("netns1", netns="netns1"), kernel("node"),
        nat("again", args),
        nat("nftables in netns1", dict(args, backend="nftables")), kernel("netns1 on nftables", netns="netns1"),
        nat("absent in netns1", dict(netns="netns1", state="absent")), kernel("netns1 at the end", netns="netns1"),
    )
    assert changed(r["iptables in netns1"])
    assert any("HANDCNI-POSTROUTING" in line for line in Kernel(r["netns1"]).iptables)
    assert not Kernel(r["node"]).ours  # the node's own firewall is untouched
    assert not changed(r["again"])
    assert changed(r["nftables in netns1"]) and Kernel(r["netns1 on nftables"]).nft.count("table ip handcni") == 1
    assert changed(r["absent in netns1"]) and not Kernel(r["netns1 at the end"]).ours


def test_bad_input_fails_naming_the_field(clean):
    r = clean.play(
        nat("ours", dict(masquerade=[{"source": "192.168.30.0/24"}])), kernel("before"),
        nat("bad exclude", dict(prune=True, masquerade=[
            SEED, {"source": "192.168.20.0/24", "exclude": ["10.0.0.0/8", "10.300.0.0/16"]}])),
        nat("bad interface", dict(prune=True, masquerade=[dict(SEED, out_interface_not="br0 x")])),
        nat("overlap", dict(prune=True, masquerade=[SEED, {"source": "192.168.10.128/25"}])),
        nat("families mixed", dict(prune=True, masquerade=[SEED, dict(SEED6, exclude=["fd00:20::/64", "10.0.0.0/8"])])),
        nat("IPv6 overlap", dict(prune=True, masquerade=[SEED6, {"source": "fd00:10::/56"}])),
        nat("no such netns", dict(netns="nope", prune=True, masquerade=[SEED])),
        kernel("after"),
    )
    expected = {
        "bad exclude": "masquerade[1].exclude[1]: '10.300.0.0/16' is not a valid network",
        "bad interface": "masquerade[0].out_interface_not: interface name 'br0 x'",
        "overlap": "masquerade[1].source: 192.168.10.128/25 overlaps masquerade[0].source 192.168.10.0/24",
        "families mixed": "masquerade[1].exclude[1]: '10.0.0.0/8' is an IPv4 network, but the entry's source "
                          "fd00:10::/64 is IPv6 (give each family its own masquerade entry)",
        "IPv6 overlap": "masquerade[1].source: fd00:10::/56 overlaps masquerade[0].source fd00:10::/64",
        "no such netns": "netns: network namespace 'nope' does not exist",
    }
    for step, message in expected.items():
        assert r[step]["failed"] and r[step]["msg"].startswith(message), (step, r[step]["msg"])
    assert Kernel(r["after"]) == Kernel(r["before"])


def test_a_node_whose_rules_are_in_the_other_iptables_variant_is_refused(clean):
    """Others' rules in iptables-legacy while the node's iptables is iptables-nft (calico#2322): refused
    before any change, naming the first; once they are gone the same run goes through."""
    legacy = ["ip", "netns", "exec", "netns1", "iptables-legacy", "-t", "filter"]
    clean.sh(*legacy, "-A", "INPUT", "-s", "203.0.113.1", "-j", "DROP")
    try:
        r = clean.play(kernel("before", "netns1"), nat("mixed", dict(netns="netns1", masquerade=[SEED])),
                       kernel("after", "netns1"))
    finally:
        clean.sh(*legacy, "-F", "INPUT")
    assert r["mixed"]["failed"] and r["mixed"]["msg"].startswith(
        "backend: iptables is iptables-nft on this node, but 1 rule(s) of others are in iptables-legacy "
        "(first: -A INPUT -s 203.0.113.1/32 -j DROP)"), r["mixed"]["msg"]
    assert Kernel(r["after"]) == Kernel(r["before"])
    r = clean.play(nat("alone again", dict(netns="netns1", masquerade=[SEED])),
                   nat("gone", dict(netns="netns1", state="absent")))
    assert changed(r["alone again"]) and changed(r["gone"])


def test_traffic_pod_egress_is_masqueraded(clean):
    lab = clean
    seen = {}
    r = lab.play(raw("no NAT", PING_LEAF))
    # the leaf has no route back to the pod CIDR: without NAT no reply comes
    assert r["no NAT"]["rc"] != 0
    for backend in ("iptables", "nftables"):
        r = lab.play(nat("masquerade", dict(backend=backend, masquerade=[SEED], prune=True)), raw("ping", PING_LEAF))
        assert changed(r["masquerade"]) and r["ping"]["rc"] == 0, backend
        seen[backend] = source_seen_by_leaf(lab)
    assert seen == {"iptables": NODE_IP, "nftables": NODE_IP}
    leaf_excluded = dict(SEED, exclude=[CLUSTER_CIDR, f"{LEAF_IP}/32"])
    r = lab.play(
        # the leaf's address excluded: that traffic is not masqueraded, so it fails again
        nat("leaf excluded", dict(backend="nftables", masquerade=[leaf_excluded])),
        raw("ping, leaf excluded", PING_LEAF),
        nat("absent", dict(state="absent")), raw("ping, absent", PING_LEAF),
    )
    assert changed(r["leaf excluded"]) and r["ping, leaf excluded"]["rc"] != 0
    assert changed(r["absent"]) and r["ping, absent"]["rc"] != 0


def source_seen_by_leaf(lab: Lab) -> str:
    """Send one UDP datagram from the pod to a listener on the leaf; return the source address the leaf saw."""
    listener = subprocess.Popen(
        lab.enter("leaf03") + ["python3", "-c",
                               "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                               f"s.bind(('{LEAF_IP}', 9999)); s.settimeout(5); print('ready', flush=True); "
                               "print(s.recvfrom(64)[1][0], flush=True)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        lab.sh("ip", "netns", "exec", "netns1", "python3", "-c",
               f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hi', ('{LEAF_IP}', 9999))")
        return listener.stdout.readline().strip()
    finally:
        if listener.poll() is None:
            listener.kill()
        listener.wait()


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_the_record_skips_reading_only_while_no_rule_changed(clean, backend):
    """Without diff mode a run that left the rules as it wanted them records the namespace's nf_tables generation;
    the same run again answers from the record (no change), someone else's nft transaction moves the generation
    (read again, recorded again, still no change), and a rule of ours deleted by hand is put back."""
    args = {"backend": backend, "masquerade": [SEED], "prune": True}
    r = clean.play(
        quiet("created", args), raw("record after created", RECORD),
        quiet("again", args), raw("record after again", RECORD),
        raw("someone else's transaction", "nft add table ip elsewhere"),
        quiet("after theirs", args), raw("record after theirs", RECORD),
        raw("delete ours by hand", DELETE_BY_HAND[backend]),
        quiet("repaired", args), kernel("after repair"),
        nat("absent", dict(backend=backend, state="absent")), raw("records left", "ls /var/lib/handcni"),
        raw("theirs away", "nft delete table ip elsewhere"),
    )
    marks = {step: json.loads(r[step]["stdout"].splitlines()[0])["mark"]
             for step in ("record after created", "record after again", "record after theirs")}
    assert changed(r["created"]) and not changed(r["again"]) and not changed(r["after theirs"])
    assert marks["record after again"] == marks["record after created"]      # nothing changed: nothing moved
    assert marks["record after theirs"][2] == marks["record after created"][2] + 1  # theirs counted, read again
    assert changed(r["repaired"])
    for line in MADE[backend]:
        assert line in (Kernel(r["after repair"]).iptables if backend == "iptables" else Kernel(r["after repair"]).nft)
    assert "applied.json" not in r["records left"]["stdout"]


COMMENT6 = f"handcni.podnet masquerade {POD_CIDR6}"
ADD6 = {"iptables": ["ip6tables-restore --noflush: table nat: add jump POSTROUTING -> HANDCNI-POSTROUTING, "
                     "write chain HANDCNI-POSTROUTING (4 rules)"],
        "nftables": ["nft -f: create table ip6 handcni (1 chain postrouting; 1 rule)"]}
DROP = "--noflush: table nat: delete jump POSTROUTING -> HANDCNI-POSTROUTING, delete chain HANDCNI-POSTROUTING"
DROP6 = {"iptables": [f"ip6tables-restore {DROP}"], "nftables": ["nft -f: delete table ip6 handcni"]}
ABSENT = {"iptables": [f"iptables-restore {DROP}", f"ip6tables-restore {DROP}"],
          "nftables": ["nft -f: delete table ip handcni; delete table ip6 handcni"]}
MADE6 = {"iptables": f'-A HANDCNI-POSTROUTING -s {POD_CIDR6} ! -o br0 -m comment --comment "{COMMENT6}" -j MASQUERADE',
         "nftables": f"ip6 saddr {POD_CIDR6} ip6 daddr != {{ fd00:10::/64, fd00:20::/64, fd00:30::/64 }} "
                     f'oifname != "br0" masquerade comment "{COMMENT6}"'}
LINE6 = {"iptables": "ip6tables: ", "nftables": " ip6 handcni"}  # what tells the diff's IPv6 lines apart


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_dual_stack_pod_egress_is_masqueraded_to_the_node_ipv6_address(clean6, backend):
    """The egress role's dual-stack call: one IPv4 and one IPv6 entry. Only IPv6's rules are added beside IPv4's
    (one transaction of its own with iptables), the leaf then sees the node's IPv6 address; dropping the IPv6
    entry (answered from the record) removes exactly them, and state absent both families."""
    four = {"backend": backend, "masquerade": [SEED], "prune": True}
    both = dict(four, masquerade=[SEED, SEED6])
    absent = {"backend": backend, "state": "absent"}
    r = clean6.play(
        kernel("start"), raw("seen, no NAT", SEEN_BY_LEAF6),
        nat("IPv4 only", four), kernel("IPv4 only, rules"),
        nat("dual stack, planned", both, check=True), kernel("after planned"),
        nat("dual stack", both), kernel("dual stack, rules"), raw("record", RECORD),
        raw("seen, masqueraded", SEEN_BY_LEAF6), raw("ping over IPv4", PING_LEAF),
        nat("again", both), nat("again, check mode", both, check=True), quiet("again, from the record", both),
        nat("IPv6 dropped, planned", four, check=True), kernel("after drop planned"),
        quiet("IPv6 dropped, from the record", four), kernel("IPv6 dropped, rules"), raw("seen, IPv6 dropped", SEEN_BY_LEAF6),
        nat("IPv6 dropped again", four),
        quiet("dual stack again, from the record", both), kernel("dual stack again, rules"), raw("seen again", SEEN_BY_LEAF6),
        quiet("absent, planned", absent, check=True), kernel("after absent planned"),
        quiet("absent, from the record", absent), kernel("after absent"), raw("seen, absent", SEEN_BY_LEAF6),
    )
    start, only4, dual = Kernel(r["start"]), Kernel(r["IPv4 only, rules"]), Kernel(r["dual stack, rules"])
    assert not start.ours and start.foreign_intact()
    assert r["seen, no NAT"]["stdout"].strip() == POD_IP6  # the leaf routes the pod prefix back: it sees the pod
    assert changed(r["IPv4 only"]) and not only4.ours6

    # check mode changes nothing and predicts the real run, which adds IPv6's rules only, the diff telling them apart
    assert changed(r["dual stack, planned"]) and Kernel(r["after planned"]) == only4
    assert r["dual stack"]["actions"] == r["dual stack, planned"]["actions"] == ADD6[backend]
    assert r["dual stack"]["diff"] == r["dual stack, planned"]["diff"]
    assert [entry["source"] for entry in r["dual stack"]["masquerade"]] == [POD_CIDR, POD_CIDR6]
    before, after = r["dual stack"]["diff"]["before"][backend], r["dual stack"]["diff"]["after"][backend]
    assert after[:len(before)] == before and after[len(before):]
    assert all(LINE6[backend] in line for line in after[len(before):])
    assert not any(LINE6[backend] in line for line in before)
    assert MADE6[backend] in (dual.ip6tables if backend == "iptables" else dual.nft)
    assert dual.iptables == only4.iptables and dual.foreign_intact()
    held = json.loads(r["record"]["stdout"])["held"][backend]
    assert [entry[0] for entry in held[0]] == [POD_CIDR, POD_CIDR6]

    # by traffic: the leaf sees the node's IPv6 address; IPv4 is masqueraded as before
    assert r["seen, masqueraded"]["stdout"].strip() == NODE_IP6
    assert r["ping over IPv4"]["rc"] == 0

    assert not changed(r["again"]) and not changed(r["again, check mode"]) and not changed(r["again, from the record"])

    # dropping the IPv6 entry removes exactly IPv6's rules (and the table ip6 nat iptables-nft made for them)
    assert changed(r["IPv6 dropped, planned"]) and Kernel(r["after drop planned"]) == dual
    assert r["IPv6 dropped, from the record"]["actions"] == r["IPv6 dropped, planned"]["actions"] == DROP6[backend]
    dropped = Kernel(r["IPv6 dropped, rules"])
    assert dropped == only4 and not dropped.ours6 and "table ip6" not in dropped.nft
    assert r["seen, IPv6 dropped"]["stdout"].strip() == POD_IP6
    assert not changed(r["IPv6 dropped again"])

    assert r["dual stack again, from the record"]["actions"] == ADD6[backend]
    assert Kernel(r["dual stack again, rules"]) == dual and r["seen again"]["stdout"].strip() == NODE_IP6

    # state absent removes both families
    assert changed(r["absent, planned"]) and Kernel(r["after absent planned"]) == dual
    assert r["absent, from the record"]["actions"] == r["absent, planned"]["actions"] == ABSENT[backend]
    assert Kernel(r["after absent"]) == start and r["seen, absent"]["stdout"].strip() == POD_IP6


def test_an_ipv4_only_run_leaves_ipv6_alone_unless_pruned(clean6):
    """A run that lists only IPv4 entries keeps IPv6's of ours (not pruned), moves them with a switch of backend,
    and prunes them when asked."""
    r = clean6.play(
        nat("dual stack", {"masquerade": [SEED, SEED6]}),
        nat("IPv4 listed", {"masquerade": [SEED]}), kernel("kept"),
        nat("nftables, IPv4 listed", {"backend": "nftables", "masquerade": [SEED]}), kernel("moved"),
        raw("seen on nftables", SEEN_BY_LEAF6),
        nat("nftables, pruned", {"backend": "nftables", "masquerade": [SEED], "prune": True}), kernel("pruned"),
        nat("absent", {"state": "absent"}), kernel("end"),
    )
    assert changed(r["dual stack"]) and not changed(r["IPv4 listed"])
    assert [entry["source"] for entry in r["IPv4 listed"]["masquerade"]] == [POD_CIDR, POD_CIDR6]
    assert any(COMMENT6 in line for line in Kernel(r["kept"]).ip6tables)
    moved = Kernel(r["moved"])
    assert changed(r["nftables, IPv4 listed"]) and [a.split(":")[0] for a in r["nftables, IPv4 listed"]["actions"]] == [
        "nft -f", "iptables-restore --noflush", "ip6tables-restore --noflush"]
    assert not any("HANDCNI" in line for line in moved.iptables + moved.ip6tables) and "table ip6 handcni" in moved.nft
    assert r["seen on nftables"]["stdout"].strip() == NODE_IP6
    pruned = Kernel(r["pruned"])
    assert changed(r["nftables, pruned"]) and not pruned.ours6 and "table ip handcni" in pruned.nft
    assert changed(r["absent"]) and not Kernel(r["end"]).ours
