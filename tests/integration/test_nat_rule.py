"""handcni.podnet.nat_rule through Ansible on a throwaway lab: leaf03 and worker1, pod netns1 on worker1."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from conftest import LEAF_IP, NODE_IP, Lab, changed, module, raw

POD_CIDR = "192.168.10.0/24"
POD_IP = "192.168.10.1"
CLUSTER_CIDR = "192.168.0.0/19"  # the pod CIDRs 192.168.10/20/30.0/24, not the node network
COMMENT = f"handcni.podnet masquerade {POD_CIDR}"
SEED = {"source": POD_CIDR, "exclude": [CLUSTER_CIDR], "out_interface_not": "br0"}
SEED_NORMALISED = {"source": POD_CIDR, "exclude": [CLUSTER_CIDR], "out_interface_not": "br0"}
FOREIGN_IPT = "-A POSTROUTING -s 10.9.9.0/24 -j MASQUERADE"
FOREIGN_NFT = "ip saddr 10.9.8.0/24 masquerade"
PING_LEAF = f"ip netns exec netns1 ping -c1 -W1 -q {LEAF_IP}"

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


def kernel(name: str, netns: str | None = None) -> dict:
    """Read the node's (or its netns') NAT rules: iptables-save's rules, then the whole nft ruleset."""
    run = f"ip netns exec {netns} " if netns else ""
    return raw(name, f"{run}iptables-save -t nat | grep -e '^-A' -e '^:HANDCNI'; echo ---; {run}nft list ruleset")


class Kernel:
    def __init__(self, result: dict):
        assert result["rc"] == 0, result
        iptables, nft = result["stdout"].split("---", 1)
        self.nft = re.sub(r"counter packets \d+ bytes \d+", "counter", nft)  # iptables-nft's counters
        self.iptables = [line.strip() for line in iptables.splitlines() if line.strip()]
        self.ours = any("HANDCNI" in line for line in self.iptables) or "table ip handcni" in self.nft

    def __eq__(self, other) -> bool:
        return (self.iptables, self.nft) == (other.iptables, other.nft)

    def foreign_intact(self) -> bool:
        return FOREIGN_IPT in self.iptables and FOREIGN_NFT in self.nft


def reset(lab: Lab) -> None:
    """Remove ours by hand, whatever a failed test left (not through the module under test)."""
    for prefix in ([], ["ip", "netns", "exec", "netns1"]):
        lab.sh(*prefix, "nft", "delete", "table", "ip", "handcni", check=False)
        lab.sh(*prefix, "iptables", "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment",
               "handcni.podnet", "-j", "HANDCNI-POSTROUTING", check=False)
        for option in ("-F", "-X"):
            lab.sh(*prefix, "iptables", "-t", "nat", option, "HANDCNI-POSTROUTING", check=False)


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
        nat("no such netns", dict(netns="nope", prune=True, masquerade=[SEED])),
        kernel("after"),
    )
    expected = {
        "bad exclude": "masquerade[1].exclude[1]: '10.300.0.0/16' is not a valid network",
        "bad interface": "masquerade[0].out_interface_not: interface name 'br0 x'",
        "overlap": "masquerade[1].source: 192.168.10.128/25 overlaps masquerade[0].source 192.168.10.0/24",
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
    record = "cat /var/lib/handcni/nat_rule._host.masquerade.applied.json"

    def quiet(name: str) -> dict:
        return dict(nat(name, args), diff=False)

    r = clean.play(
        quiet("created"), raw("record after created", record),
        quiet("again"), raw("record after again", record),
        raw("someone else's transaction", "nft add table ip elsewhere"),
        quiet("after theirs"), raw("record after theirs", record),
        raw("delete ours by hand", DELETE_BY_HAND[backend]),
        quiet("repaired"), kernel("after repair"),
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
