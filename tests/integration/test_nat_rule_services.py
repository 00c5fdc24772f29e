"""handcni.podnet.nat_rule's services (kube-proxy style DNAT, seed 004 labs 4 and 5) through Ansible on a
throwaway lab: leaf03 and worker1, with two pods on a bridge made by hand (netns1 192.168.10.1, netns3
192.168.10.3) running servers that answer with their own name; for the IPv6 services (dual stack) the pods get
fd00:10::1 and fd00:10::3 and servers on them, the node fd00:210::21 and the leaf fd00:210::254."""
from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import LEAF_IP, NODE, NODE_IP, ROOT, Lab, changed, diffs_agree, module, raw, same_plan

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root to build namespaces")

PODSERVER = ROOT / "roles/services/files/podserver.py"
WEB = {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "node_port": 32080, "target_port": 80,
       "endpoints": [{"ip": "192.168.10.1"}, {"ip": "192.168.10.3"}]}
ECHO = {"name": "echo", "cluster_ip": "11.96.10.7", "port": 7, "protocol": "udp", "node_port": 30007,
        "endpoints": [{"ip": "192.168.10.1", "port": 7007}, {"ip": "192.168.10.3", "port": 7007}]}
MASQ = {"source": "192.168.10.0/24", "exclude": ["192.168.0.0/19"]}
ARGS = {"services": [WEB, ECHO], "node_addresses": [NODE_IP], "prune": True}
FOREIGN_IPT = "-A PREROUTING -d 10.9.9.9/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.9.9.10:80"
FOREIGN_NFT = "ip daddr 10.9.8.8 tcp dport 80 dnat to 10.9.8.9:80"
IDENTITY = {"192.168.10.1": "netns1", "192.168.10.3": "netns3"}

# The seed's pods (labs 1 and 4) on a bridge with the gateway .254, hairpin on, forwarding on; and
# someone else's DNAT next to ours: one iptables rule, one nft table.
SETUP = [
    ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
    ["ip", "link", "add", "br0", "type", "bridge"],
    ["ip", "address", "add", "192.168.10.254/24", "dev", "br0"],
    ["ip", "link", "set", "br0", "up"],
    *[argv for pod, veth in (("netns1", "veth1"), ("netns3", "veth3")) for argv in (
        ["ip", "netns", "add", pod],
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod],
        ["ip", "link", "set", veth, "master", "br0", "up"],
        ["ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on"],
        ["ip", "-n", pod, "address", "add", f"192.168.10.{pod[-1]}/24", "dev", "eth0"],
        ["ip", "-n", pod, "link", "set", "eth0", "up"],
        ["ip", "-n", pod, "link", "set", "lo", "up"],
        ["ip", "-n", pod, "route", "add", "default", "via", "192.168.10.254"])],
    ["iptables", "-t", "nat", *FOREIGN_IPT.split()],
    ["nft", "add", "table", "ip", "foreign"],
    ["nft", "add", "chain", "ip", "foreign", "pre", "{ type nat hook prerouting priority -50; }"],
    ["nft", "add", "rule", "ip", "foreign", "pre", *FOREIGN_NFT.split()],
]

# Remove ours by hand (not through the module under test), whatever a failed test left.
RESET = r"""
nft delete table ip handcni 2>/dev/null
nft delete table ip6 handcni 2>/dev/null
for tool in iptables ip6tables; do
  $tool-save -t nat | grep -e '-j HANDCNI-' | grep -v '^-A HANDCNI-' | sed 's/^-A /-D /' |
    while read -r rule; do eval "$tool -t nat $rule"; done
  for option in -F -X; do
    for chain in $($tool-save -t nat | sed -n 's/^:\(HANDCNI-[^ ]*\).*/\1/p'); do $tool -t nat $option "$chain"; done
  done
done
conntrack -F 2>/dev/null
conntrack -F -f ipv6 2>/dev/null
true
"""


def nat(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.nat_rule", args, check)


def kernel(name: str) -> dict:
    return raw(name, "iptables-save -t nat | grep -e '^-A' -e '^:HANDCNI'; echo ---; nft list ruleset")


class Kernel:
    def __init__(self, result: dict):
        assert result["rc"] == 0, result
        iptables, nft = result["stdout"].split("---", 1)
        self.nft = re.sub(r"counter packets \d+ bytes \d+", "counter", nft)
        self.iptables = [line.strip() for line in iptables.splitlines() if line.strip()]
        self.ours = any("HANDCNI" in line for line in self.iptables) or "table ip handcni" in self.nft
        self.iptables_services = any("HANDCNI-SERVICES" in line for line in self.iptables)
        self.services = self.iptables_services or "service-ips" in self.nft
        self.masquerade = any("HANDCNI-POSTROUTING" in line for line in self.iptables) or "chain postrouting" in self.nft

    def __eq__(self, other) -> bool:
        """The same rules; a chain deleted and made again may be listed elsewhere, so order is left out."""
        return (sorted(self.iptables), sorted(self.nft.splitlines())) == \
            (sorted(other.iptables), sorted(other.nft.splitlines()))

    def foreign_intact(self) -> bool:
        return FOREIGN_IPT in self.iptables and FOREIGN_NFT in self.nft


def reset(lab: Lab) -> None:
    lab.sh("sh", "-c", RESET)


class Servers:
    """Each pod runs an HTTP server on port 80 (a page with its name, as the seed's http.server) and a UDP
    echo on 7007 answering with its name; started here, stopped by their PIDs."""

    def __init__(self, lab: Lab, workdir: Path):
        self.processes = []
        for pod in IDENTITY.values():
            www = workdir / pod
            www.mkdir()
            (www / "index.html").write_text(f"{pod}\n")
            ip = next(ip for ip, name in IDENTITY.items() if name == pod)
            for argv in (["python3", "-m", "http.server", "--bind", ip, "--directory", str(www), "80"],
                         ["python3", str(PODSERVER), "udp", "--bind", ip, "--port", "7007", "--identity", pod]):
                self.processes.append(subprocess.Popen(lab.enter(NODE) + ["ip", "netns", "exec", pod] + argv,
                                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.lab = lab

    def wait(self) -> None:
        lab = self.lab
        for pod in IDENTITY.values():  # wait until both listen (a loaded machine may take a while)
            lab.sh("ip", "netns", "exec", pod, "sh", "-c",
                   "for i in $(seq 600); do ss -Htln 'sport = :80' | grep -q . && ss -Huln 'sport = :7007' "
                   "| grep -q . && exit 0; sleep 0.1; done; exit 1")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def lab(lab, tmp_path_factory):
    for argv in SETUP:
        lab.sh(*argv)
    servers = Servers(lab, tmp_path_factory.mktemp("www"))
    try:
        servers.wait()
        yield lab
    finally:
        servers.stop()


@pytest.fixture
def clean(lab):
    reset(lab)
    yield lab
    reset(lab)


# --- through Ansible: create, again, change, drift, absent, check mode, both backends ----------------

DELETE_BY_HAND = {
    "iptables": "iptables -t nat -F HANDCNI-NODEPORTS",
    "nftables": "nft delete element ip handcni service-ips '{ 11.96.10.3 . tcp . 8080 }'",
}
BAD = {
    "bad cluster ip": ([WEB, dict(ECHO, cluster_ip="11.96.10.300")], [NODE_IP],
                       "services[1].cluster_ip: '11.96.10.300' is not a valid IPv4 address"),
    "bad endpoint": ([dict(WEB, endpoints=[{"ip": "192.168.10.1", "port": 0}])], [NODE_IP],
                     "services[0].endpoints[0].port: 0 is not a port number"),
    "clash": ([WEB, dict(ECHO, name="web2", protocol="tcp", port=8080, cluster_ip="11.96.10.3")], [NODE_IP],
              "services[1].cluster_ip: 11.96.10.3:8080/tcp is also used by services[0]"),
    "no node address": ([WEB, ECHO], [], "node_addresses: service echo has node_port 30007"),
    "missing port": ([{"name": "x", "cluster_ip": "11.96.0.1"}], [NODE_IP], "services[0].port: required for service x"),
    "unknown key": ([dict(WEB, nodeport=30080)], [NODE_IP], "services[0].nodeport: unknown key"),
    "not a bool": ([dict(WEB, endpoints=[{"ip": "192.168.10.1", "local": "perhaps"}])], [NODE_IP],
                   "services[0].endpoints[0].local: 'perhaps' is not true or false"),
}


def steps() -> list:
    """One run of everything but traffic: iptables first, then the services move to nftables."""
    fewer = dict(ARGS, services=[dict(WEB, endpoints=WEB["endpoints"][1:]), ECHO])
    nft = dict(ARGS, backend="nftables")
    nft_web = {"backend": "nftables", "services": [WEB], "node_addresses": [NODE_IP]}
    absent = {"backend": "nftables", "services": [], "state": "absent"}
    return [
        nat("masquerade of another run", {"masquerade": [MASQ]}),
        kernel("start"),
        nat("planned", ARGS, check=True), kernel("after planned"),
        nat("created", ARGS), kernel("made"),
        nat("again", ARGS),
        *[nat(name, dict(ARGS, services=bad[0], node_addresses=bad[1])) for name, bad in BAD.items()],
        kernel("after bad input"),
        nat("node addresses alone", {"node_addresses": [NODE_IP, "192.168.210.99"]}),
        nat("one endpoint less", fewer), kernel("fewer"),
        raw("delete ours by hand", DELETE_BY_HAND["iptables"]), kernel("drifted"),
        nat("restored", ARGS), kernel("after restore"),
        # to nftables: web listed, echo carried over (not pruned); the masquerade stays where it is
        nat("nftables, web listed, planned", nft_web, check=True),
        nat("nftables, web listed", nft_web), kernel("on nftables"),
        nat("nftables, again", nft),
        raw("nft: delete ours by hand", DELETE_BY_HAND["nftables"]), kernel("nft: drifted"),
        nat("nft: restored", nft), kernel("nft: made"),
        nat("nft: one endpoint less", dict(fewer, backend="nftables")), kernel("nft: fewer"),
        nat("nft: echo absent", {"backend": "nftables", "services": [{"name": "echo"}], "state": "absent"}),
        nat("nft: services absent", absent), kernel("nft: after absent"),
        nat("nft: services absent again", absent),
    ]


@pytest.fixture(scope="module")
def r(lab):
    """The results of steps(), by step name (one ansible-playbook run)."""
    reset(lab)
    try:
        return lab.play(*steps())
    finally:
        reset(lab)


def test_module_results_and_diffs_agree(r):
    assert not diffs_agree(r)


def test_iptables_create_again_check_mode(r):
    start, made = Kernel(r["start"]), Kernel(r["made"])
    assert start.foreign_intact() and start.masquerade and not start.services
    # check mode changes nothing and predicts the real run exactly
    assert Kernel(r["after planned"]) == start and same_plan(r["planned"], r["created"])
    assert [r["created"][k] for k in ("transactions", "diff", "services", "node_addresses")] == \
        [r["planned"][k] for k in ("transactions", "diff", "services", "node_addresses")]
    assert len(r["created"]["transactions"]) == 1 and r["created"]["transactions"][0]["backend"] == "iptables"
    assert [s["name"] for s in r["created"]["services"]] == ["echo", "web"]
    assert r["created"]["services"][1]["endpoints"] == [{"ip": "192.168.10.1", "port": 80},
                                                        {"ip": "192.168.10.3", "port": 80}]
    assert r["created"]["node_addresses"] == [NODE_IP]
    # the other run's masquerade entry is kept and reported; the foreign rules are untouched
    assert r["created"]["masquerade"][0]["source"] == "192.168.10.0/24"
    assert made.foreign_intact() and made.services and made.masquerade
    assert any("-m statistic --mode random --probability 0.50000000000" in line for line in made.iptables)
    assert not changed(r["again"]) and r["again"]["actions"] == []


def test_bad_input_fails_naming_the_field_and_changes_nothing(r):
    for step, bad in BAD.items():
        message = bad[2]
        assert r[step]["failed"] and r[step]["msg"].startswith(message), (step, r[step].get("msg"))
    assert Kernel(r["after bad input"]) == Kernel(r["made"])
    alone = r["node addresses alone"]  # node addresses alone move the node ports and keep the services
    assert changed(alone) and alone["node_addresses"] == [NODE_IP, "192.168.210.99"]
    assert [s["name"] for s in alone["services"]] == ["echo", "web"]


def test_iptables_change_removes_exactly_the_endpoints_rules(r):
    made, fewer = Kernel(r["made"]), Kernel(r["fewer"])
    gone = set(made.iptables) - set(fewer.iptables)
    assert gone and all("192.168.10.1:80" in line or "192.168.10.1/32" in line or "HANDCNI-SEP-" in line
                        or line.startswith("-A HANDCNI-SVC-") for line in gone)
    assert not any("DNAT --to-destination 192.168.10.1:80" in line for line in fewer.iptables)
    assert any("DNAT --to-destination 192.168.10.1:7007" in line for line in fewer.iptables)
    assert not any(a.startswith("conntrack") for a in r["one endpoint less"]["actions"])  # TCP: nothing to flush


def test_iptables_drift_is_repaired(r):
    assert r["delete ours by hand"]["rc"] == 0 and Kernel(r["drifted"]) != Kernel(r["made"])
    assert changed(r["restored"]) and Kernel(r["after restore"]) == Kernel(r["made"])


def test_switch_to_nftables_carries_unlisted_services(r):
    moved = r["nftables, web listed"]
    assert same_plan(r["nftables, web listed, planned"], moved)
    assert changed(moved) and [a.split(":")[0] for a in moved["actions"]] == ["nft -f", "iptables-restore --noflush"]
    assert moved["actions"][0].startswith("nft -f: create table ip handcni")
    assert [s["name"] for s in moved["services"]] == ["echo", "web"]
    on_nft = Kernel(r["on nftables"])
    assert not on_nft.iptables_services and "service-echo" in on_nft.nft and "numgen random mod 2" in on_nft.nft
    assert on_nft.masquerade and on_nft.foreign_intact()  # the masquerade stayed in iptables
    assert not changed(r["nftables, again"])


def test_nftables_drift_change_absent(r):
    assert r["nft: delete ours by hand"]["rc"] == 0 and Kernel(r["nft: drifted"]) != Kernel(r["on nftables"])
    assert changed(r["nft: restored"]) and Kernel(r["nft: made"]) == Kernel(r["on nftables"])
    fewer = Kernel(r["nft: fewer"])
    assert "endpoint-web-192.168.10.1-80" not in fewer.nft and "endpoint-echo-192.168.10.1-7007" in fewer.nft
    assert r["nft: one endpoint less"]["actions"][0].startswith("nft -f: table ip handcni: write chain service-web")
    # removing the UDP service removes its rules and flushes flows to its endpoints (cluster IP and node port)
    echo_gone = r["nft: echo absent"]
    assert changed(echo_gone) and [s["name"] for s in echo_gone["services"]] == ["web"]
    assert sum(a.startswith("conntrack -D") for a in echo_gone["actions"]) == 4
    after = Kernel(r["nft: after absent"])
    assert changed(r["nft: services absent"]) and not after.services and after.masquerade and after.foreign_intact()
    assert r["nft: services absent"]["masquerade"] and r["nft: services absent"]["services"] == []
    assert not changed(r["nft: services absent again"])


# --- traffic ----------------------------------------------------------------------------------

UDP_ASK = ("import socket, sys\n"
           "six = ':' in sys.argv[1]\n"
           "s = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM)\n"
           "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
           "s.bind(('::' if six else '0.0.0.0', int(sys.argv[3])))\n"
           "s.settimeout(5)\n"
           "s.sendto(b'hi', (sys.argv[1], int(sys.argv[2])))\n"
           "print(s.recv(100).decode().strip())\n")


def curl(url: str, pod: str | None = None, times: int = 1) -> str:
    """A command asking an HTTP service `times` times (a new connection each time); over IPv6 for an [address]."""
    return (f"ip netns exec {pod} " if pod else "") + "curl -sS --max-time 5 " + ("-6 " if "[" in url else "") + \
        " ".join([url] * times)


def answers(result: dict) -> set:
    return set(result["stdout"].split())


def quiet(name: str, args: dict) -> dict:
    """A call without diff mode: one changing endpoints alone plans from the record (a partial sync)."""
    return dict(nat(name, args), diff=False)


def traffic(backend: str, ask: Path, port: int) -> list:
    """Services on, traffic, a second UDP endpoint, one endpoint less of each service, traffic again; the
    endpoint changes without diff mode, so planned from the record of the run before, which a last run with
    diff mode (reading the rules) checks."""
    def udp(target: str, service_port: int, source_port: int, pod: str = "netns1") -> str:
        return f"ip netns exec {pod} python3 {ask} {target} {service_port} {source_port}"

    first_echo = dict(ECHO, endpoints=ECHO["endpoints"][:1])  # netns1 only: the UDP flow starts there
    args = dict(ARGS, backend=backend)
    fewer = dict(args, services=[dict(WEB, endpoints=WEB["endpoints"][1:]), dict(ECHO, endpoints=ECHO["endpoints"][1:])])
    return [
        nat("services", dict(args, services=[WEB, first_echo])),
        raw("from a pod", curl("http://11.96.10.3:8080/", "netns1", 20)),
        raw("from the node", curl("http://11.96.10.3:8080/", None, 20)),
        raw("node port from the node", curl(f"http://{NODE_IP}:32080/", None, 10)),
        raw("hairpin", curl("http://11.96.10.3:8080/", "netns3", 20)),
        raw("udp", udp("11.96.10.7", 7, port)),
        raw("udp node port", udp(NODE_IP, 30007, port + 1, "netns3")),
        quiet("second udp endpoint", args),
        raw("udp, same flow", udp("11.96.10.7", 7, port)),
        quiet("fewer", fewer),
        raw("from a pod, fewer", curl("http://11.96.10.3:8080/", "netns1", 20)),
        raw("udp, same flow, fewer", udp("11.96.10.7", 7, port)),
        nat("fewer, read again", fewer),
    ]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_traffic(clean, backend):
    lab = clean
    ask = lab.workdir / "ask.py"
    ask.write_text(UDP_ASK)
    nobody = lab.sh("ip", "netns", "exec", "netns1", "curl", "-sS", "--max-time", "3", "http://11.96.10.3:8080/",
                    check=False)
    assert nobody.returncode != 0  # no service yet: nobody answers
    r = lab.play(*traffic(backend, ask, 40000 + uuid.uuid4().int % 20000))
    assert changed(r["services"])
    # ClusterIP from a pod (PREROUTING) and from the node (OUTPUT): 20 requests reach both endpoints
    assert answers(r["from a pod"]) == {"netns1", "netns3"}
    assert answers(r["from the node"]) == {"netns1", "netns3"}
    assert answers(r["node port from the node"]) <= {"netns1", "netns3"} and r["node port from the node"]["rc"] == 0
    # hairpin: a pod reaching itself through its service (masqueraded, so it can answer)
    assert "netns3" in answers(r["hairpin"])
    # a UDP flow stays with its endpoint, also when another one is added
    assert r["udp"]["stdout"].strip() == "netns1" and r["udp node port"]["stdout"].strip() == "netns1"
    added = r["second udp endpoint"]  # planned from the record, the echo service's own chains alone
    assert added["sync"] == "partial" and len(added["actions"]) == 1, added["actions"]
    assert not re.search(r"SERVICES|NODEPORTS|service-ips|service-nodeports|chain services\b", added["actions"][0])
    assert r["udp, same flow"]["stdout"].strip() == "netns1"
    # one endpoint less: no request reaches it, and the UDP flow moves (its conntrack entry was flushed)
    assert r["fewer"]["sync"] == "partial"
    assert any(a.startswith("conntrack -D") and "--reply-src 192.168.10.1" in a for a in r["fewer"]["actions"])
    assert answers(r["from a pod, fewer"]) == {"netns3"}
    assert r["udp, same flow, fewer"]["stdout"].strip() == "netns3"
    assert not changed(r["fewer, read again"]) and r["fewer, read again"]["sync"] == "read"  # as the whole set plans
    # the node port from outside the node (the leaf)
    leaf = lab.sh("curl", "-sS", "--max-time", "5", *[f"http://{NODE_IP}:32080/"] * 10, node="leaf03", check=False)
    assert set(leaf.stdout.split()) == {"netns3"}


def test_concurrent_runs_do_not_corrupt_the_rules(clean):
    """Two plays at once, each switching between the two services and the web one alone, both ending
    on both services: the rules are exactly one run's (no jump twice), and a third run changes nothing."""
    def steps(prefix: str) -> list:
        one = dict(ARGS, services=[WEB])
        return [nat(f"{prefix} {i}", ARGS if i % 2 else one) for i in range(6)] + [nat(f"{prefix} last", ARGS)]

    started = [clean.start(*steps(prefix)) for prefix in ("p", "q")]  # both at once
    runs = [clean.finish(one) for one in started]
    for run in runs:
        assert not [r.get("msg") for r in run.values() if r["failed"]]
    after = clean.play(kernel("after"), nat("again", ARGS))
    rules = Kernel(after["after"]).iptables
    assert len(rules) == len(set(rules)), [rule for rule in rules if rules.count(rule) > 1]
    assert not changed(after["again"])


# --- external addresses and externalTrafficPolicy (issue 20) ------------------------------------

WHOAMI = ROOT / "playbooks/files/whoami.py"
WHO = {"port": 8081, "endpoints": [{"ip": "192.168.10.1", "local": True}]}
OUTSIDE_ARGS = {"services": [
    dict(WHO, name="who-cluster", cluster_ip="11.96.10.8", external_ips=["198.51.100.20"]),
    dict(WHO, name="who-local", cluster_ip="11.96.10.9", load_balancer_ip="198.51.100.21", external_traffic_policy="Local"),
    dict(WHO, name="who-elsewhere", cluster_ip="11.96.10.10", external_ips=["198.51.100.22"],
         external_traffic_policy="Local", endpoints=[{"ip": "192.168.10.1"}]),
], "node_addresses": [NODE_IP], "cluster_cidrs": ["192.168.10.0/24"], "prune": True}


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_external_addresses_keep_the_client_address_only_with_local_policy(clean, backend):
    """From the leaf (outside the cluster, routing the addresses to the node as BGP would): an external IP of a
    Cluster service is masqueraded, a Local one keeps the leaf's address, a Local one without an endpoint on
    this node gets no answer; the leaf reaching a cluster IP is masqueraded, a pod is not. whoami answers with
    the source it sees."""
    lab = clean
    for prefix in ("198.51.100.20/30", "11.96.10.8/30"):
        lab.sh("ip", "route", "replace", prefix, "via", NODE_IP, node="leaf03")
    pidfile = lab.workdir / f"who-{backend}.pid"
    lab.sh("ip", "netns", "exec", "netns1", "python3", str(WHOAMI), "--port", "8081", "--pidfile", str(pidfile))
    try:
        args = dict(OUTSIDE_ARGS, backend=backend)
        r = lab.play(nat("services", args), nat("again", args))
        assert changed(r["services"]) and not changed(r["again"])  # the real tools' output reads back as written

        def seen(target: str, node: str = "leaf03", pod: str | None = None) -> str:
            argv = (["ip", "netns", "exec", pod] if pod else []) + ["curl", "-sS", "--max-time", "3", f"http://{target}:8081/"]
            result = lab.sh(*argv, node=node, check=False)
            return result.stdout.strip() if result.returncode == 0 else "no answer"

        assert seen("198.51.100.20") == "192.168.10.254"  # Cluster: masqueraded to the node's bridge address
        assert seen("198.51.100.21") == LEAF_IP            # Local: the client's own address
        assert seen("198.51.100.22") == "no answer"        # Local, no endpoint here: not translated
        assert seen("11.96.10.8") == "192.168.10.254"      # a cluster IP from outside the cluster CIDRs
        assert seen("11.96.10.8", NODE, "netns3") == "192.168.10.3"  # ... and from a pod: not masqueraded
    finally:
        lab.sh("sh", "-c", f'kill "$(cat {pidfile})"', check=False)


# --- IPv6 services (dual stack) -------------------------------------------------------------------

NODE_IP6, LEAF_IP6 = "fd00:210::21", "fd00:210::254"
IDENTITY6 = {"fd00:10::1": "netns1", "fd00:10::3": "netns3"}
WEB6 = dict(WEB, cluster_ip="fd00:96::3", endpoints=[{"ip": ip} for ip in IDENTITY6])
ECHO6 = dict(ECHO, cluster_ip="fd00:96::7", endpoints=[{"ip": ip, "port": 7007} for ip in IDENTITY6])
DUAL = {"services": [WEB, WEB6, ECHO, ECHO6], "node_addresses": [NODE_IP, NODE_IP6],
        "cluster_cidrs": ["192.168.10.0/24", "fd00:10::/64"], "prune": True}
SETUP6 = [
    (NODE, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]),
    (NODE, ["ip", "address", "replace", f"{NODE_IP6}/64", "dev", "eth0", "nodad"]),
    (NODE, ["ip", "address", "replace", "fd00:10::fe/64", "dev", "br0", "nodad"]),
    *[(NODE, argv) for ip, pod in IDENTITY6.items() for argv in (
        ["ip", "-n", pod, "address", "replace", f"{ip}/64", "dev", "eth0", "nodad"],
        ["ip", "-n", pod, "-6", "route", "replace", "default", "via", "fd00:10::fe"])],
    ("leaf03", ["ip", "address", "replace", f"{LEAF_IP6}/64", "dev", "vlan210", "nodad"]),
    (NODE, ["ip", "-6", "route", "replace", "default", "via", LEAF_IP6]),  # the node's route to the cluster IPs, as a lab's
]


def ipv6_rules(name: str) -> dict:
    return raw(name, "ip6tables-save -t nat | grep HANDCNI; echo ---; nft list table ip6 handcni 2>/dev/null; true")


def ipv4_rules(name: str) -> dict:
    return raw(name, "iptables-save -t nat | grep HANDCNI; echo ---; nft list table ip handcni 2>/dev/null; true")


@pytest.fixture
def servers6(clean):
    """The pods' IPv6 addresses, and servers on them (HTTP on port 80, UDP echo on 7007) stopped by their PIDs."""
    lab = clean
    for node, argv in SETUP6:
        lab.sh(*argv, node=node)
    processes = []
    try:
        for ip, pod in IDENTITY6.items():
            www = lab.workdir / f"www6-{pod}"
            www.mkdir(exist_ok=True)
            (www / "index.html").write_text(f"{pod}\n")
            for argv in (["python3", "-m", "http.server", "--bind", ip, "--directory", str(www), "80"],
                         ["python3", str(PODSERVER), "udp", "--bind", ip, "--port", "7007", "--identity", pod]):
                processes.append(subprocess.Popen(lab.enter(NODE) + ["ip", "netns", "exec", pod] + argv,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            lab.sh("ip", "netns", "exec", pod, "sh", "-c",
                   f"for i in $(seq 600); do ss -Htln 'src [{ip}]:80' | grep -q . && ss -Huln 'src [{ip}]:7007' "
                   "| grep -q . && exit 0; sleep 0.1; done; exit 1")
        yield lab
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ipv6_services_by_traffic(servers6, backend):
    """A dual-stack Service is an entry per family: the IPv6 one's cluster IP from a pod and from the node, its
    node port on the node's IPv6 address (from the node and from the leaf), hairpin, UDP and its conntrack flush;
    again: no change; back to IPv4 only: no IPv6 rule of ours is left, the IPv4 ones as they were."""
    lab = servers6
    ask = lab.workdir / "ask.py"
    ask.write_text(UDP_ASK)
    port = 40000 + uuid.uuid4().int % 20000
    udp = f"ip netns exec netns1 python3 {ask} fd00:96::7 7 {port}"
    dual, ipv4 = dict(DUAL, backend=backend), dict(ARGS, backend=backend, cluster_cidrs=["192.168.10.0/24"])
    r = lab.play(nat("ipv4 only", ipv4), ipv4_rules("ipv4 rules"), nat("dual stack", dual), nat("dual stack again", dual),
                 ipv6_rules("ipv6 rules"), ipv4_rules("ipv4 rules, dual stack"),
                 raw("from a pod", curl("http://[fd00:96::3]:8080/", "netns1", 20)),
                 raw("from the node", curl("http://[fd00:96::3]:8080/", None, 20)),
                 raw("node port", curl(f"http://[{NODE_IP6}]:32080/", None, 10)),
                 raw("hairpin", curl("http://[fd00:96::3]:8080/", "netns3", 20)),
                 raw("udp", udp))
    assert changed(r["dual stack"]) and not changed(r["dual stack again"]), r["dual stack again"].get("actions")
    six = r["dual stack"]["actions"]
    # one transaction of the IPv6 side alone, then the flushes of UDP flows from before echo's IPv6 side had endpoints
    assert six[0].split(":")[0] == ("ip6tables-restore --noflush" if backend == "iptables" else "nft -f")
    assert six[1:] and all(a.startswith("conntrack -D -f ipv6 -p udp --orig-dst fd00:") for a in six[1:]), six
    rules = r["ipv6 rules"]["stdout"]
    assert "fd00:96::3" in rules and ("[fd00:10::1]:80" in rules)
    # the IPv4 side is what the IPv4-only run made, rule for rule
    assert sorted(r["ipv4 rules, dual stack"]["stdout"].splitlines()) == sorted(r["ipv4 rules"]["stdout"].splitlines())
    assert "HANDCNI-SERVICES" in r["ipv4 rules"]["stdout"] or "service-ips" in r["ipv4 rules"]["stdout"]
    assert answers(r["from a pod"]) == {"netns1", "netns3"} and answers(r["from the node"]) == {"netns1", "netns3"}
    assert r["node port"]["rc"] == 0 and answers(r["node port"]) <= {"netns1", "netns3"}
    assert "netns3" in answers(r["hairpin"])
    first = r["udp"]["stdout"].strip()
    assert first in ("netns1", "netns3"), r["udp"]
    leaf = lab.sh("curl", "-sS", "-6", "--max-time", "5", *[f"http://[{NODE_IP6}]:32080/"] * 10, node="leaf03", check=False)
    assert leaf.returncode == 0 and set(leaf.stdout.split()) <= {"netns1", "netns3"}, leaf.stderr
    # the UDP flow's endpoint removed: its flows flushed (conntrack -f ipv6), the same flow moves to the other one
    gone = next(ip for ip, pod in IDENTITY6.items() if pod == first)
    fewer = dict(dual, services=[WEB, WEB6, ECHO, dict(ECHO6, endpoints=[e for e in ECHO6["endpoints"] if e["ip"] != gone])])
    r = lab.play(nat("fewer", fewer), raw("udp, same flow", udp), nat("ipv4 only again", ipv4), ipv6_rules("after"),
                 nat("ipv4 only, again", ipv4))
    assert any(a.startswith("conntrack -D -f ipv6 -p udp") and f"--reply-src {gone}" in a for a in r["fewer"]["actions"])
    assert r["udp, same flow"]["stdout"].strip() not in ("", first), r["udp, same flow"]
    assert changed(r["ipv4 only again"]) and not changed(r["ipv4 only, again"])
    assert r["after"]["stdout"].split() == ["---"], r["after"]["stdout"]  # no IPv6 rule or table of ours left
