"""handcni.podnet.network_policy through Ansible on a throwaway lab (worker1), proved by traffic on both backends.

Five pods on worker1, made by hand: netns1, netns2 and netns5 on the bridge br0 (192.168.10.0/24; same-node
traffic is bridged, so it meets the forward hook through br_netfilter), netns3 and netns4 routed (veth, a /32
route on the node, the gateway 169.254.1.1 on the host side). Each runs a server answering its name on
ports 80, 81 and 8085. A probe is `nc -w 2` from one pod (or the node) to another: answered or not.
"""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from conftest import Lab, changed, diffs_agree, module, raw, same_plan

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root to build namespaces")

BRIDGED = {"netns1": "192.168.10.1", "netns2": "192.168.10.2", "netns5": "192.168.10.5"}
ROUTED = {"netns3": "192.168.20.3", "netns4": "192.168.20.4"}
PODS = {**BRIDGED, **ROUTED}
PORTS = ("80", "81", "8085")
FOREIGN_NFT = "ip daddr 10.9.8.8 drop"

SETUP = [
    ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
    ["ip", "link", "add", "br0", "type", "bridge"],
    ["ip", "address", "add", "192.168.10.254/24", "dev", "br0"],
    ["ip", "link", "set", "br0", "up"],
    *[argv for pod, ip in BRIDGED.items() for argv in (
        ["ip", "netns", "add", pod],
        ["ip", "link", "add", f"veth{pod[-1]}", "type", "veth", "peer", "name", "eth0", "netns", pod],
        ["ip", "link", "set", f"veth{pod[-1]}", "master", "br0", "up"],
        ["ip", "-n", pod, "address", "add", f"{ip}/24", "dev", "eth0"],
        ["ip", "-n", pod, "link", "set", "eth0", "up"],
        ["ip", "-n", pod, "link", "set", "lo", "up"],
        ["ip", "-n", pod, "route", "add", "default", "via", "192.168.10.254"])],
    *[argv for pod, ip in ROUTED.items() for argv in (
        ["ip", "netns", "add", pod],
        ["ip", "link", "add", f"veth{pod[-1]}", "type", "veth", "peer", "name", "eth0", "netns", pod],
        ["ip", "address", "add", "169.254.1.1/32", "dev", f"veth{pod[-1]}"],
        ["ip", "link", "set", f"veth{pod[-1]}", "up"],
        ["ip", "route", "add", f"{ip}/32", "dev", f"veth{pod[-1]}"],
        ["ip", "-n", pod, "address", "add", f"{ip}/32", "dev", "eth0"],
        ["ip", "-n", pod, "link", "set", "eth0", "up"],
        ["ip", "-n", pod, "link", "set", "lo", "up"],
        ["ip", "-n", pod, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"],
        ["ip", "-n", pod, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"])],
    # someone else's nftables table on the forward hook, next to ours
    ["nft", "add", "table", "inet", "foreign"],
    ["nft", "add", "chain", "inet", "foreign", "screen", "{ type filter hook forward priority 10; }"],
    ["nft", "add", "rule", "inet", "foreign", "screen", *FOREIGN_NFT.split()],
]

# A server answering its name on each port given, in a pod; "ready" once every port listens.
SERVER = r"""
import socket, sys, threading
name = sys.argv[1].encode() + b"\n"
def serve(sock):
    while True:
        conn, _ = sock.accept()
        conn.sendall(name)
        conn.close()
for port in sys.argv[2:]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", int(port)))
    sock.listen(64)
    threading.Thread(target=serve, args=(sock,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# The policy: (source, destination pod, port) -> answered. netns1 takes nothing; netns2 takes netns1 on 80
# and reaches netns1 only; netns3 takes nothing and reaches netns4 only; netns4 takes netns3 on 80 and
# 8080-8090, and the bridge's pods on 81; netns5 has no policy.
POLICY = [
    {"name": "default/netns1", "ip": "192.168.10.1", "ingress": []},
    {"name": "default/netns2", "ip": "192.168.10.2",
     "ingress": [{"peers": ["192.168.10.1/32"], "ports": [{"protocol": "tcp", "port": 80}]}],
     "egress": [{"peers": ["192.168.10.1/32"]}]},
    {"name": "default/netns3", "ip": "192.168.20.3", "ingress": [], "egress": [{"peers": ["192.168.20.4/32"]}]},
    {"name": "default/netns4", "ip": "192.168.20.4",
     "ingress": [{"peers": ["192.168.20.3"],
                  "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "tcp", "port": 8080, "end_port": 8090}]},
                 {"peers": ["192.168.10.0/24"], "ports": [{"protocol": "tcp", "port": 81}]}]},
]
EXPECTED = {
    # bridged (br_netfilter)
    ("netns1", "netns2", "80"): True,    # allowed; the replies pass although netns1 takes nothing
    ("netns1", "netns2", "81"): False,   # netns2's ingress: port
    ("netns5", "netns2", "80"): False,   # netns2's ingress: peer
    ("netns2", "netns1", "80"): False,   # netns1 takes nothing (netns2's egress allows it)
    ("netns2", "netns5", "80"): False,   # netns2's egress alone (netns5 is open)
    ("netns1", "netns5", "80"): True,    # both open
    # routed
    ("netns3", "netns4", "80"): True,    # allowed; the replies pass although netns3 takes nothing
    ("netns3", "netns4", "8085"): True,  # in the range 8080-8090
    ("netns3", "netns4", "81"): False,   # netns4's ingress alone (netns3's egress allows any port to it)
    ("netns4", "netns3", "80"): False,   # netns3 takes nothing
    ("netns3", "netns5", "80"): False,   # netns3's egress alone, routed to the bridge
    ("netns5", "netns4", "81"): True,    # bridge to routed, by netns4's second rule
    ("netns5", "netns4", "80"): False,
    # the node itself is never filtered
    ("node", "netns1", "80"): True,
    ("node", "netns3", "80"): True,
}


def probes() -> str:
    """All probes at once (a denied one waits its 2 s), each printing `SOURCE DESTINATION PORT answer`."""
    lines = ["probe() { out=$(\"$@\" </dev/null 2>/dev/null); echo \"$out\"; }"]
    for source, target, port in EXPECTED:
        run = "" if source == "node" else f"ip netns exec {source} "
        lines.append(f"echo \"{source} {target} {port} $(probe {run}nc -w 2 {PODS[target]} {port})\" &")
    return "\n".join(lines + ["wait"])


def answered(result: dict) -> dict:
    assert result["rc"] == 0, result
    seen = {}
    for line in result["stdout"].splitlines():
        source, target, port, *answer = line.split()
        seen[source, target, port] = answer == [target]
    return seen


def policy(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.network_policy", args, check)


def kernel(name: str) -> dict:
    return raw(name, "iptables-save -t filter | grep -e '^-A' -e '^:HANDCNI'; echo ---; nft list ruleset")


class Kernel:
    def __init__(self, result: dict):
        assert result["rc"] == 0, result
        iptables, nft = result["stdout"].split("---", 1)
        self.nft = re.sub(r"counter packets \d+ bytes \d+", "counter", nft)  # iptables-nft's counters
        self.iptables = [line.strip() for line in iptables.splitlines() if line.strip()]
        self.ours_iptables = any("HANDCNI" in line or "handcni" in line for line in self.iptables)
        self.ours_nft = "handcni-policy" in self.nft
        self.filter_table = "table ip filter" in self.nft

    def __eq__(self, other) -> bool:
        return (self.iptables, self.nft) == (other.iptables, other.nft)

    def foreign_intact(self) -> bool:
        return FOREIGN_NFT in self.nft


@pytest.fixture(scope="module")
def lab(lab: Lab):
    """The throwaway lab with the pods and their servers (stopped by their PIDs at the end)."""
    for argv in SETUP:
        lab.sh(*argv)
    assert lab.sh("cat", "/proc/sys/net/bridge/bridge-nf-call-iptables").stdout.strip() == "1"
    servers = []
    try:
        for pod in PODS:
            server = subprocess.Popen(lab.enter("worker1") + ["ip", "netns", "exec", pod, "/usr/bin/python3", "-c",
                                                              SERVER, pod, *PORTS], stdout=subprocess.PIPE, text=True)
            servers.append(server)
            assert server.stdout.readline().strip() == "ready"
        yield lab
    finally:
        for server in servers:
            server.kill()
            server.wait()


def reset(lab: Lab) -> None:
    """Remove ours by hand, whatever a failed test left (not through the module under test)."""
    lab.sh("nft", "delete", "table", "inet", "handcni-policy", check=False)
    lab.sh("iptables", "-D", "FORWARD", "-m", "comment", "--comment", "handcni.podnet", "-j", "HANDCNI-POLICY",
           check=False)
    chains = re.findall(r"^:(HANDCNI-\S+)", lab.sh("iptables-save", "-t", "filter", check=False).stdout, re.M)
    for option in ("-F", "-X"):
        for chain in chains:
            lab.sh("iptables", option, chain, check=False)


@pytest.fixture
def clean(lab):
    reset(lab)
    yield lab
    reset(lab)


DELETE_BY_HAND = {
    "iptables": "iptables -D HANDCNI-IN-192.168.10.1 -m comment --comment 'handcni.podnet ingress default/netns1' -j DROP",
    "nftables": "nft flush chain inet handcni-policy ingress-192.168.10.1",
}


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_lifecycle_and_traffic(clean, backend):
    args = {"backend": backend, "pods": POLICY}
    reordered = {"backend": backend, "pods": list(reversed(POLICY))}
    absent = {"backend": backend, "state": "absent"}
    r = clean.play(
        kernel("start"),
        policy("planned", args, check=True), kernel("after planned"),
        policy("created", args), kernel("made"),
        raw("traffic", probes()),
        policy("again", args), policy("again, other order", reordered), policy("again, check mode", args, check=True),
        raw("delete ours by hand", DELETE_BY_HAND[backend]), kernel("drifted"),
        raw("traffic, drifted", probes()),
        policy("restored", args), kernel("after restore"),
        policy("absent planned", absent, check=True), kernel("after absent planned"),
        policy("absent", absent), kernel("after absent"),
        raw("traffic, absent", probes()),
        policy("absent again", absent),
    )
    start, made = Kernel(r["start"]), Kernel(r["made"])
    assert start.foreign_intact() and not start.ours_iptables and not start.ours_nft and not start.filter_table
    assert not diffs_agree(r)

    # check mode changes nothing and predicts the real run exactly
    assert changed(r["planned"]) and Kernel(r["after planned"]) == start
    assert same_plan(r["planned"], r["created"])
    assert [r["planned"][k] for k in ("transactions", "diff", "pods")] == \
        [r["created"][k] for k in ("transactions", "diff", "pods")]
    assert len(r["created"]["actions"]) == 1 and r["created"]["transactions"][0]["backend"] == backend
    assert r["created"]["diff"]["before"] == {"iptables": [], "nftables": []}
    other = "nftables" if backend == "iptables" else "iptables"
    assert r["created"]["diff"]["after"][other] == [] and r["created"]["diff"]["after"][backend]
    assert [p["name"] for p in r["created"]["pods"]] == [p["name"] for p in POLICY]
    assert r["created"]["pods"][3]["ingress"][1] == {
        "peers": ["192.168.20.3/32"],
        "ports": [{"protocol": "tcp", "port": 80, "end_port": None}, {"protocol": "tcp", "port": 8080, "end_port": 8090}]}
    if backend == "iptables":
        assert made.ours_iptables and not made.ours_nft and made.filter_table
        assert '-A FORWARD -m comment --comment "handcni.podnet" -j HANDCNI-POLICY' in made.iptables
    else:
        assert made.ours_nft and not made.ours_iptables and not made.filter_table
    assert made.foreign_intact()

    # the policy, by traffic
    assert answered(r["traffic"]) == EXPECTED

    assert not changed(r["again"]) and r["again"]["actions"] == [] and r["again"]["transactions"] == []
    assert not changed(r["again, other order"])
    assert not changed(r["again, check mode"])

    # a rule of ours deleted by hand lets netns2 reach netns1; the next run puts it back
    assert r["delete ours by hand"]["rc"] == 0, r["delete ours by hand"]
    assert Kernel(r["drifted"]) != made
    assert answered(r["traffic, drifted"])["netns2", "netns1", "80"]
    assert changed(r["restored"]) and Kernel(r["after restore"]) == made

    # absent: everything of ours goes (and with iptables-nft the `table ip filter` our first rule made)
    assert changed(r["absent planned"]) and Kernel(r["after absent planned"]) == made
    assert same_plan(r["absent planned"], r["absent"]) and r["absent"]["pods"] == []
    assert Kernel(r["after absent"]) == start
    assert all(answered(r["traffic, absent"]).values())
    assert not changed(r["absent again"])


def test_switch_backend_netns_and_bad_input(clean):
    few = [POLICY[0]]
    r = clean.play(
        policy("iptables", {"pods": few}),
        policy("nftables", {"backend": "nftables", "pods": few}), kernel("on nftables"),
        policy("back to iptables", {"pods": few, "restore": "62-network-policy"}), kernel("on iptables"),
        raw("restore record", "cat /var/lib/handcni/restore/62-network-policy.json"),
        raw("canary", "iptables -w -t filter -C FORWARD -m comment --comment handcni.podnet -j HANDCNI-POLICY"),
        kernel("before bad input"),
        policy("bad end_port", {"pods": [POLICY[0], dict(POLICY[1], ingress=[
            {"ports": [{"port": 80}, {"port": 80, "end_port": 70}]}])]}),
        policy("bad peer", {"backend": "nftables", "pods": [dict(POLICY[1], egress=[{"peers": ["10.0.0.1/8"]}])]}),
        policy("same ip", {"pods": [POLICY[0], dict(POLICY[1], ip="192.168.10.1")]}),
        kernel("after bad input"),
        policy("in a pod's netns", {"netns": "netns5", "backend": "nftables", "pods": few}),
        raw("netns5's ruleset", "ip netns exec netns5 nft list ruleset"),
        policy("absent in netns5", {"netns": "netns5", "state": "absent"}),
        raw("netns5's ruleset at the end", "ip netns exec netns5 nft list ruleset"),
        policy("empty list", {"pods": []}), kernel("end"),
        policy("absent, with the record", {"state": "absent", "restore": "62-network-policy"}),
        raw("restore record at the end", "ls /var/lib/handcni/restore"),
    )
    assert changed(r["iptables"])
    moved = r["nftables"]
    assert changed(moved) and [a.split(":")[0] for a in moved["actions"]] == ["nft -f", "iptables-restore --noflush"]
    on_nft = Kernel(r["on nftables"])
    assert on_nft.ours_nft and not on_nft.ours_iptables and not on_nft.filter_table
    on_ipt = Kernel(r["on iptables"])
    assert changed(r["back to iptables"]) and on_ipt.ours_iptables and not on_ipt.ours_nft
    # the node-side restore's canary is our jump from FORWARD, and holds while it is there
    record = json.loads(r["restore record"]["stdout"])
    assert record["module"].endswith(".network_policy") and record["canary"]["commands"] == [
        ["iptables", "-w", "-t", "filter", "-C", "FORWARD", "-m", "comment", "--comment", "handcni.podnet",
         "-j", "HANDCNI-POLICY"]]
    assert r["canary"]["rc"] == 0

    for step, message in {
        "bad end_port": "pods[1].ingress[0].ports[1].end_port: 70 is below port 80",
        "bad peer": "pods[0].egress[0].peers[0]: '10.0.0.1/8' is not a valid network",
        "same ip": "pods[1].ip: 192.168.10.1 is also pods[0].ip",
    }.items():
        assert r[step]["failed"] and r[step]["msg"].startswith(message), (step, r[step]["msg"])
    assert Kernel(r["after bad input"]) == Kernel(r["before bad input"])

    assert changed(r["in a pod's netns"]) and "table inet handcni-policy" in r["netns5's ruleset"]["stdout"]
    assert changed(r["absent in netns5"]) and "handcni" not in r["netns5's ruleset at the end"]["stdout"]
    end = Kernel(r["end"])
    assert changed(r["empty list"]) and not end.ours_iptables and not end.ours_nft and not end.filter_table
    assert end.foreign_intact()
    assert changed(r["absent, with the record"]) and r["absent, with the record"]["actions"] == [
        "remove the restore record /var/lib/handcni/restore/62-network-policy.json"]
    assert "62-network-policy" not in r["restore record at the end"]["stdout"]
