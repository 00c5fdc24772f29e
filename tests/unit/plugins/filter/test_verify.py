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


def cell(probe: dict, rc: int, stdout: str) -> dict:
    return v.probe_cells([{"item": probe, "rc": rc, "stdout": stdout, "stderr": ""}])[0]


def test_cells_check_who_answered():
    probe = v.service_probes([WEB], "worker1", "192.168.210.21", PODS)[0]
    assert cell(probe, 0, "worker2/netns2\n") == {"kind": "clusterip", "from": "worker1/netns1",
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
    probe = v.egress_probes([{"name": "netns1"}], "worker1", "192.168.210.21", "203.0.113.10", 8080)[0]
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
