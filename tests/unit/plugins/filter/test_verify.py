"""Unit tests for the service probes of plugins/filter/verify.py and how their results become cells."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.filter import verify as v

WEB = {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "protocol": "tcp", "node_port": 32080,
       "endpoints": [{"node": "worker1", "pod": "netns3"}, {"node": "worker2", "pod": "netns2"}]}
ECHO = {"name": "echo", "cluster_ip": "11.96.10.7", "port": 7, "protocol": "udp",
        "endpoints": [{"node": "worker3", "pod": "netns3"}]}
PODS = [{"name": "netns1", "ip": "192.168.10.1"}, {"name": "netns3", "ip": "192.168.10.3"}]


def test_service_probes_of_a_worker():
    probes = v.service_probes([WEB, ECHO], "worker1", "192.168.210.21", PODS)
    assert [(p["kind"], p["from"], p["to"]) for p in probes] == [
        ("clusterip", "worker1/netns1", "web 11.96.10.3:8080"),
        ("clusterip", "worker1", "web 11.96.10.3:8080"),
        ("nodeport", "worker1", "web 192.168.210.21:32080"),
        ("hairpin", "worker1/netns3", "web 11.96.10.3:8080"),
        ("udp", "worker1/netns1", "echo 11.96.10.7:7"),
        ("udp", "worker1", "echo 11.96.10.7:7"),
    ]
    assert probes[0]["argv"] == ["ip", "netns", "exec", "netns1", "curl", "-sS", "--max-time", "3",
                                 "http://11.96.10.3:8080/"]
    assert probes[0]["expect_one_of"] == ["worker1/netns3", "worker2/netns2"]
    assert probes[3]["argv"].count("http://11.96.10.3:8080/") == v.HAIRPIN_TRIES
    assert probes[3]["expect_line"] == "worker1/netns3"
    assert probes[5]["argv"][:2] == ["python3", "-c"] and probes[5]["argv"][-3:] == ["11.96.10.7", "7", "3"]


def test_nodeport_probes_from_outside():
    probes = v.nodeport_probes([WEB, ECHO], "outside", {"worker2": "192.168.210.22", "worker1": "192.168.210.21"})
    assert [p["to"] for p in probes] == ["web worker1 192.168.210.21:32080", "web worker2 192.168.210.22:32080"]
    assert probes[0]["argv"][-1] == "http://192.168.210.21:32080/"


WEB2 = dict(WEB, cluster_ips=["11.96.10.3", "fd00:96::3"], ip_families=["IPv4", "IPv6"])
ECHO2 = dict(ECHO, cluster_ips=["11.96.10.7", "fd00:96::7"], ip_families=["IPv4", "IPv6"])
PODS2 = [{"name": "netns1", "ip": "192.168.10.1", "ip6": "fd00:10::1:1"},
         {"name": "netns3", "ip": "192.168.10.3", "ip6": "fd00:10::3"}]


def test_service_probes_of_a_dual_stack_service_over_ipv6_too():
    ipv4 = v.service_probes([WEB, ECHO], "worker1", "192.168.210.21", PODS2)
    probes = v.service_probes([WEB2, ECHO2], "worker1", "192.168.210.21", PODS2, None, True, "fd00:210::21")
    assert probes[:len(ipv4) - 2] == ipv4[:4]  # web's IPv4 side as before
    six = [(p["kind"], p["from"], p["to"]) for p in probes if p.get("family") == 6]
    assert six == [
        ("clusterip", "worker1/netns1", "web [fd00:96::3]:8080"),
        ("clusterip", "worker1", "web [fd00:96::3]:8080"),
        ("nodeport", "worker1", "web [fd00:210::21]:32080"),
        ("hairpin", "worker1/netns3", "web [fd00:96::3]:8080"),
        ("udp", "worker1/netns1", "echo [fd00:96::7]:7"),
        ("udp", "worker1", "echo [fd00:96::7]:7"),
    ]
    assert probes[4]["argv"][-1] == "http://[fd00:96::3]:8080/"
    # an IPv4-only cluster keeps the IPv4 side of a PreferDualStack service alone
    assert v.service_probes([WEB2, ECHO2], "worker1", "192.168.210.21", PODS2) == ipv4


def test_nodeport_probes_over_ipv6_from_outside():
    nodes6 = {"worker1": "fd00:210::21", "worker2": None}
    probes = v.nodeport_probes([WEB2], "outside", {"worker1": "192.168.210.21"}, None, "203.0.113.10", nodes6,
                               "2001:db8:113::10")
    assert [(p["to"], p.get("family", 4)) for p in probes] == [
        ("web worker1 192.168.210.21:32080", 4), ("web worker1 [fd00:210::21]:32080", 6)]
    assert probes[1]["argv"][-1] == "http://[fd00:210::21]:32080/"
    assert len(v.nodeport_probes([WEB2], "outside", {"worker1": "192.168.210.21"}, None, "203.0.113.10", nodes6)) == 1


def cell(probe: dict, rc: int, stdout: str) -> dict:
    return v.probe_cells([{"item": probe, "rc": rc, "stdout": stdout, "stderr": ""}])[0]


def test_cells_check_who_answered():
    probe = v.service_probes([WEB], "worker1", "192.168.210.21", PODS)[0]
    assert cell(probe, 0, "worker2/netns2\n") == {"kind": "clusterip", "family": 4, "from": "worker1/netns1",
                                                  "to": "web 11.96.10.3:8080", "ok": True,
                                                  "detail": "answered by worker2/netns2"}
    assert not cell(probe, 0, "somebody else\n")["ok"]
    assert not cell(probe, 0, "")["ok"]
    assert not cell(probe, 28, "")["ok"]


def test_hairpin_cell_needs_the_pod_itself_among_the_answers():
    probe = v.service_probes([WEB], "worker1", "192.168.210.21", PODS)[3]
    assert cell(probe, 0, "worker2/netns2\nworker1/netns3\n")["ok"]
    assert cell(probe, 0, "worker2/netns2\nworker1/netns3\n")["detail"] == "reached itself (2 answers)"
    assert not cell(probe, 0, "worker2/netns2\nworker2/netns2\n")["ok"]


def test_egress_cells_are_as_before():
    probe = v.egress_probes([{"name": "netns1", "ip": "192.168.10.1"}], "worker1", "192.168.210.21", "203.0.113.10", 8080)[0]
    assert cell(probe, 0, "192.168.210.21\n")["detail"] == "seen as 192.168.210.21 (node address)"
    assert not cell(probe, 0, "192.168.10.1\n")["ok"]


def test_probes_use_the_addresses_the_pods_hold():
    """The probes take the ipam module's pods (addresses given or allocated); an inventory pod without its
    address is named, never a KeyError."""
    same = v.same_node_probes(PODS, "worker1", "192.168.210.21", 1400)
    assert [p["to"] for p in same] == ["worker1/netns3 192.168.10.3", "worker1 192.168.210.21",
                                       "worker1/netns1 192.168.10.1", "worker1 192.168.210.21",
                                       "worker1/netns3 192.168.10.3"]
    assert same[-1]["argv"][-5:] == ["-M", "do", "-s", "1372", "192.168.10.3"]
    cross = v.cross_node_probes(PODS, "worker1", {"worker1": PODS, "worker2": [{"name": "web", "ip": "10.0.0.5"}]}, 1400)
    assert [p["to"] for p in cross] == ["worker2/web 10.0.0.5", "worker2/web 10.0.0.5", "worker2/web 10.0.0.5"]
    for call in (lambda: v.same_node_probes([{"name": "web"}, PODS[0]], "worker1", "192.168.210.21", 1400),
                 lambda: v.cross_node_probes(PODS, "worker1", {"worker2": [{"name": "web"}]}, 1400)):
        with pytest.raises(AnsibleFilterError, match=r"^worker\d: \{'name': 'web'\} is not a pod with its address"):
            call()


# --- services announced by BGP (issue 20) ------------------------------------------------------------

ANNOUNCED_WEB = {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "node_port": 32080,
                 "external_ips": ["198.51.100.10"], "external_traffic_policy": "Local",
                 "endpoints": [{"node": "worker1", "pod": "netns3"}, {"node": "worker3", "pod": "netns3"}]}


def test_bgp_service_probes_ask_every_announced_address_many_times_and_want_several_nodes():
    probes = v.bgp_service_probes([ANNOUNCED_WEB], "outside", "11.96.0.0/16")
    assert [p["to"] for p in probes] == ["web 198.51.100.10:8080", "web 11.96.10.3:8080"]
    assert probes[0]["argv"].count("http://198.51.100.10:8080/") == v.SPREAD_TRIES
    assert probes[0]["expect_nodes"] == 2
    assert [p["to"] for p in v.bgp_service_probes([ANNOUNCED_WEB], "outside")] == ["web 198.51.100.10:8080"]


def test_one_node_answering_is_not_enough_when_the_endpoints_are_on_two():
    probe = v.bgp_service_probes([ANNOUNCED_WEB], "outside")[0]
    cells = v.probe_cells([{"item": probe, "rc": 0, "stdout": "worker1/netns3\n" * 16}])
    assert not cells[0]["ok"] and "answered by 1 node(s), expected 2" in cells[0]["detail"]
    cells = v.probe_cells([{"item": probe, "rc": 0, "stdout": "worker1/netns3\nworker3/netns3\n"}])
    assert cells[0]["ok"]


def test_ecmp_probes_want_one_next_hop_per_announcing_node():
    nodes = {"worker1": "192.168.210.21", "worker2": "192.168.210.22", "worker3": "192.168.230.23"}
    probes = {p["to"]: p for p in v.ecmp_probes([ANNOUNCED_WEB], "leaf03", nodes, "11.96.0.0/16")}
    assert probes["198.51.100.10/32"]["expect_nexthops"] == ["192.168.210.21", "192.168.230.23"]
    assert probes["11.96.0.0/16"]["expect_nexthops"] == sorted(nodes.values())
    multipath = ("198.51.100.10 proto bgp metric 20 \n\tnexthop via 192.168.210.21 dev vlan210 weight 1 \n"
                 "\tnexthop via 192.168.230.23 dev vlan230 weight 1 \n")
    cells = v.probe_cells([{"item": probes["198.51.100.10/32"], "rc": 0, "stdout": multipath}])
    assert cells[0]["ok"] and cells[0]["detail"] == "next hops 192.168.210.21, 192.168.230.23"
    single = "198.51.100.10 nhid 7 via 192.168.210.21 dev vlan210 proto bgp metric 20 \n"
    assert not v.probe_cells([{"item": probes["198.51.100.10/32"], "rc": 0, "stdout": single}])[0]["ok"]


def test_a_local_node_port_is_probed_only_where_an_endpoint_runs():
    nodes = {"worker1": "192.168.210.21", "worker2": "192.168.210.22", "worker3": "192.168.230.23"}
    assert [p["to"].split()[1] for p in v.nodeport_probes([ANNOUNCED_WEB], "outside", nodes)] == ["worker1", "worker3"]
    assert not [p for p in v.service_probes([ANNOUNCED_WEB], "worker2", "192.168.210.22", []) if p["kind"] == "nodeport"]
