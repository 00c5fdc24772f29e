"""Unit tests for the whole-inventory checks site.yml runs before touching any node."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.handcni.podnet.plugins.filter.preflight import podnet_problems

GROUPS = {"workers": ["worker1", "worker2"]}
GOOD = {
    "worker1": {"podnet_node_ip": "192.168.210.21", "podnet_pod_cidr": "192.168.10.0/24", "podnet_node_mtu": 9000,
                "podnet_pods": [{"name": "netns1", "ip": "192.168.10.1"}, {"name": "web"}]},
    "worker2": {"podnet_node_ip": "192.168.210.22", "podnet_pod_cidr": "192.168.20.0/24", "podnet_node_mtu": 9000,
                "podnet_pods": [{"name": "netns1", "ip": "192.168.20.1"}]},
}


def problems_with(host: str, **changes) -> list:
    hostvars = copy.deepcopy(GOOD)
    hostvars[host].update(changes)
    return podnet_problems(hostvars, GROUPS)


def test_a_consistent_inventory_has_no_problem():
    assert podnet_problems(GOOD, GROUPS) == []


def test_cluster_cidr_split_is_checked_like_a_given_one():
    hostvars = {h: {k: v for k, v in hv.items() if k != "podnet_pod_cidr"} for h, hv in GOOD.items()}
    for hv in hostvars.values():
        hv["podnet_cluster_cidr"] = "192.168.0.0/16"
        hv["podnet_pods"] = [{"name": "a"}]
    assert podnet_problems(hostvars, GROUPS) == []


@pytest.mark.parametrize("host, changes, problem", [
    ("worker2", {"podnet_pod_cidr": "192.168.10.128/25"}, "worker2: podnet_pod_cidr: 192.168.10.128/25 overlaps worker1's"),
    ("worker1", {"podnet_pod_cidr": "192.168.10.1/24"}, "worker1: podnet_pod_cidr: '192.168.10.1/24' is not a valid"),
    ("worker1", {"podnet_pods": [{"name": "a", "ip": "192.168.11.1"}]}, "worker1: podnet_pods[0].ip: 192.168.11.1 is not a usable"),
    ("worker1", {"podnet_pods": [{"name": "a", "ip": "192.168.10.254"}]}, "worker1: podnet_pods[0].ip: 192.168.10.254 is not a usable"),
    ("worker2", {"podnet_pods": [{"name": "a", "ip": "192.168.10.1"}]}, "worker2: podnet_pods[0].ip: 192.168.10.1 is not a usable"),
    ("worker1", {"podnet_pods": [{"name": "a"}, {"name": "a"}]}, "worker1: podnet_pods[1].name: a is listed twice"),
    ("worker1", {"podnet_pods": [{"ip": "192.168.10.1"}]}, "worker1: podnet_pods[0]: each pod needs a name"),
    ("worker2", {"podnet_node_ip": "192.168.210.21"}, "worker2: podnet_node_ip: 192.168.210.21 is also worker1's"),
    ("worker1", {"podnet_node_ip": "node1"}, "worker1: podnet_node_ip: 'node1' is not an IP address"),
    ("worker1", {"pod_network_mtu": 9001}, "worker1: pod_network_mtu: 9001 does not fit the underlay MTU 9000"),
    ("worker1", {"pod_network_mtu": 8960, "cross_node_method": "vxlan"},
     "worker1: pod_network_mtu: 8960 does not fit the underlay MTU 9000 with 50 bytes of vxlan"),
    ("worker1", {"pod_network_mtu": 8981, "cross_node_method": "ipip"},
     "worker1: pod_network_mtu: 8981 does not fit the underlay MTU 9000 with 20 bytes of ipip"),
    ("worker1", {"podnet_cluster_cidr": "10.0.0.0/8"}, "worker1: podnet_pod_cidr: 192.168.10.0/24 is outside podnet_cluster_cidr"),
])
def test_each_problem_names_host_and_field(host, changes, problem):
    found = problems_with(host, **changes)
    assert any(p.startswith(problem) for p in found), found


def test_duplicate_pod_ip_across_nodes():
    hostvars = copy.deepcopy(GOOD)
    hostvars["worker2"]["podnet_pod_cidr"] = "192.168.10.0/25"
    hostvars["worker1"]["podnet_pod_cidr"] = "192.168.10.128/25"
    hostvars["worker1"]["podnet_pods"] = [{"name": "a", "ip": "192.168.10.129"}]
    hostvars["worker2"]["podnet_pods"] = [{"name": "b", "ip": "192.168.10.129"}]
    assert "worker2: podnet_pods[0].ip: 192.168.10.129 is also pod worker1/a" in podnet_problems(hostvars, GROUPS)


@pytest.mark.parametrize("endpoints, problem", [
    ([{"node": "worker9", "pod": "netns1"}], "podnet_services[0].endpoints[0].node: worker9 is not a worker"),
    ([{"node": "worker1", "pod": "web"}, {"node": "worker2", "pod": "nope"}],
     "podnet_services[0].endpoints[1].pod: nope is not a pod of worker2"),
])
def test_a_service_endpoint_must_name_a_pod(endpoints, problem):
    services = [{"name": "web", "cluster_ip": "11.96.0.1", "port": 80, "endpoints": endpoints}]
    hostvars = copy.deepcopy(GOOD)
    for hv in hostvars.values():
        hv["podnet_services"] = services
    assert podnet_problems(hostvars, GROUPS) == [problem]


def test_bgp_router_ids_are_unique():
    hostvars = copy.deepcopy(GOOD)
    for hv in hostvars.values():
        hv["cross_node_method"] = "bgp"
    assert podnet_problems(hostvars, GROUPS) == []
    hostvars["worker2"]["bgp_router_id"] = "192.168.210.21"
    assert podnet_problems(hostvars, GROUPS) == ["worker2: bgp_router_id: 192.168.210.21 is also worker1's"]
