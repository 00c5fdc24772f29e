"""Dual stack (podnet_dual_stack): the inventory's IPv6 side checked, and what the filters plan from it."""
from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.filter import podnet, verify
from ansible_collections.handcni.podnet.plugins.filter.preflight import podnet_problems

GROUPS = {"workers": ["worker1", "worker2", "worker3"], "leaf": ["leaf03"], "external": ["outside"]}
HOSTS = {
    "worker1": {"podnet_node_ip": "192.168.210.21", "podnet_node_ip6": "fd00:210::21",
                "podnet_pod_cidr": "192.168.10.0/24", "podnet_pod_cidr6": "fd00:10::/64",
                "podnet_pods": [{"name": "netns1", "ip6": "fd00:10::a"}, {"name": "netns3"}]},
    "worker2": {"podnet_node_ip": "192.168.210.22", "podnet_node_ip6": "fd00:210::22",
                "podnet_pod_cidr": "192.168.20.0/24", "podnet_pod_cidr6": "fd00:20::/64",
                "podnet_pods": [{"name": "netns1"}, {"name": "netns2"}]},
    "worker3": {"podnet_node_ip": "192.168.230.23", "podnet_node_ip6": "fd00:230::23",
                "podnet_pod_cidr": "192.168.30.0/24", "podnet_pod_cidr6": "fd00:30::/64",
                "podnet_pods": [{"name": "netns1"}, {"name": "netns3"}]},
    "leaf03": {"podnet_leaf_subnets": [
        {"name": "vlan210", "address": "192.168.210.254/24", "address6": "fd00:210::254/64"},
        {"name": "vlan230", "address": "192.168.230.254/24", "address6": "fd00:230::254/64"},
        {"name": "vlan113", "address": "203.0.113.254/24", "address6": "2001:db8:113::254/64"}]},
    "outside": {"podnet_node_ip": "203.0.113.10", "podnet_node_ip6": "2001:db8:113::10"},
}
DUAL = {host: dict(hv, podnet_dual_stack=True, ansible_connection="handcni.podnet.netns") for host, hv in HOSTS.items()}
CIDRS = {"worker1": "192.168.10.0/24", "worker2": "192.168.20.0/24", "worker3": "192.168.30.0/24"}
CIDRS6 = {"worker1": "fd00:10::/64", "worker2": "fd00:20::/64", "worker3": "fd00:30::/64"}


def changed(**changes) -> dict:
    """DUAL with {"host__var": value} changes (None removes the variable)."""
    hostvars = copy.deepcopy(DUAL)
    for where, value in changes.items():
        host, name = where.split("__", 1)
        for hv in hostvars.values() if host == "all" else [hostvars[host]]:
            if value is None:
                hv.pop(name, None)
            else:
                hv[name] = value
    return hostvars


def test_a_dual_stack_lab_has_no_problem_and_ipv4_only_ignores_the_ipv6_fields():
    assert podnet_problems(DUAL, GROUPS) == []
    assert podnet_problems(changed(all__cross_node_method="bgp"), GROUPS) == []  # BGP carries both families
    assert podnet_problems(changed(all__cross_node_method="vxlan", worker2__podnet_node_ip6=None), GROUPS) == []
    assert podnet_problems(changed(all__podnet_dual_stack=False), GROUPS) == []
    split = changed(all__podnet_pod_cidr6=None, all__podnet_node_prefix6=64, all__podnet_cluster_cidr6="fd00:99::/62")
    split["worker1"]["podnet_pods"][0]["ip6"] = "fd00:99::a"
    assert podnet_problems(split, GROUPS) == []
    assert podnet.worker_pod_cidrs6(split, GROUPS["workers"]) == {
        "worker1": "fd00:99::/64", "worker2": "fd00:99:0:1::/64", "worker3": "fd00:99:0:2::/64"}
    assert podnet.worker_pod_cidrs6(changed(all__podnet_pod_cidr6=None), GROUPS["workers"])["worker3"] == \
        "fd00:10:244:2::/64"  # the default cluster prefix
    assert podnet.worker_pod_cidrs6(changed(all__podnet_dual_stack=False), GROUPS["workers"]) == {}


@pytest.mark.parametrize("changes, line", [
    ({"worker3__podnet_dual_stack": False}, "podnet_dual_stack: true on worker1, worker2 but not on worker3; every worker or none"),
    ({"all__cross_node_method": "ipip"}, "worker1, worker2, worker3: cross_node_method: ipip carries IPv4 only"),
    ({"all__cross_node_method": "bgp", "worker2__podnet_node_ip6": None},
     "worker2: podnet_node_ip6: required with podnet_dual_stack and cross_node_method bgp (the pods' IPv6 routes go via "
     "the node's IPv6 address, learned over its IPv6 BGP session)"),
    ({"all__cross_node_method": "bgp", "worker2__podnet_node_ip6": "fd00:230::22"},
     "worker2: podnet_node_ip6: fd00:230::22 is not in fd00:210::/64, the IPv6 subnet of the leaf's vlan210 where"),
    ({"all__cross_node_method": "bgp", "leaf03__podnet_leaf_subnets": [
        dict(s, address6=None) if s["name"] == "vlan230" else s for s in HOSTS["leaf03"]["podnet_leaf_subnets"]]},
     "worker3: podnet_node_ip6: fd00:230::23 needs the IPv6 subnet of the leaf's vlan230 (its address6)"),
    ({"worker2__podnet_node_ip6": None}, "worker2: podnet_node_ip6: required with podnet_dual_stack and cross_node_method static"),
    ({"worker2__podnet_node_ip6": "192.168.1.1"}, "worker2: podnet_node_ip6: '192.168.1.1' is not an IPv6 address"),
    ({"worker2__podnet_node_ip6": "fd00:230::22"},
     "worker2: podnet_node_ip6: fd00:230::22 is not in fd00:210::/64, the IPv6 subnet of the leaf's vlan210 where"),
    ({"leaf03__podnet_leaf_subnets": [dict(s, address6=None) if s["name"] == "vlan230" else s
                                      for s in HOSTS["leaf03"]["podnet_leaf_subnets"]]},
     "worker3: podnet_node_ip6: fd00:230::23 needs the IPv6 subnet of the leaf's vlan230"),
    ({"leaf03__podnet_leaf_subnets": [dict(s, address6="fd00:210::1/64") for s in HOSTS["leaf03"]["podnet_leaf_subnets"]]},
     "leaf03: podnet_leaf_subnets[1].address6: fd00:210::1/64 overlaps fd00:210::1/64"),
    ({"worker3__podnet_pod_cidr6": "fd00:10::/64"}, "worker3: podnet_pod_cidr6: fd00:10::/64 overlaps worker1's fd00:10::/64"),
    ({"worker3__podnet_pod_cidr6": "fd00:230::/64"}, "worker3: podnet_pod_cidr6: fd00:230::/64 overlaps the underlay subnet"),
    ({"worker3__podnet_pod_cidr6": "10.0.0.0/24"}, "worker3: podnet_pod_cidr6: 10.0.0.0/24 is not an IPv6 prefix"),
    ({"worker3__podnet_pod_cidr6": "fd00:30::1/64"}, "worker3: podnet_pod_cidr6: 'fd00:30::1/64' is not a valid network"),
    ({"worker3__podnet_pod_cidr6": None, "worker3__podnet_cluster_cidr6": "fd00::/64", "worker3__podnet_node_prefix6": 48},
     "worker3: podnet_node_prefix6: /48 does not fit in fd00::/64"),
    ({"worker3__podnet_pod_cidr": "fd00:30::/64"}, "worker3: podnet_pod_cidr: fd00:30::/64 is not IPv4 (IPv6 pod prefixes go in"),
    ({"all__podnet_network_policies": [{"metadata": {"name": "x"}, "spec": {"podSelector": {}}}]},
     "worker1, worker2, worker3: podnet_network_policies: enforced for IPv4 only so far"),
    ({"all__podnet_dual_stack": "perhaps"}, "worker1, worker2, worker3, leaf03, outside: podnet_dual_stack: 'perhaps' is not true or false"),
])
def test_a_bad_dual_stack_inventory_is_named_in_one_line(changes, line):
    found = podnet_problems(changed(**changes), GROUPS)
    assert any(text.startswith(line) for text in found), found


@pytest.mark.parametrize("ip6, problem", [
    ("fd00:10::1", "is not a usable pod address of worker1's IPv6 pod prefix fd00:10::/64"),  # the gateway
    ("fd00:20::5", "is not a usable pod address"), ("192.168.10.9", "is not a usable pod address"),
    ("nope", "'nope' is not an IP address"),
])
def test_a_pods_fixed_ipv6_address_is_a_usable_one_of_its_node(ip6, problem):
    hostvars = changed()
    hostvars["worker1"]["podnet_pods"][1]["ip6"] = ip6
    found = podnet_problems(hostvars, GROUPS)
    assert any(text.startswith("worker1: podnet_pods[1].ip6: ") and problem in text for text in found), found


ALLOCATION = [{"name": "a", "ip": "192.168.10.1", "ip6": "fd00:10::2"}, {"name": "b", "ip": "192.168.10.2", "ip6": "fd00:10::3"}]
PODS = [{"name": "a", "veth": "va"}, {"name": "b", "veth": "vb"}]


def wiring(mode: str, style: str = "host_ip") -> dict:
    return podnet.pod_wiring(PODS, ALLOCATION, "192.168.10.0/24", mode, style, "br0", 1500, True, "fd00:10::/64")


def test_bridge_mode_gives_each_pod_both_families_and_the_bridge_both_gateways():
    got = wiring("bridge")
    assert got["bridges"][0]["addresses"] == ["192.168.10.254/24", "fd00:10::1/64"]
    assert got["veths"][0]["peer_addresses"] == ["192.168.10.1/24", "fd00:10::2/64"]
    assert got["veths"][0]["peer_routes"] == [{"dst": "default", "via": "192.168.10.254"},
                                              {"dst": "::/0", "via": "fd00:10::1"}]
    assert got["routes"] == [] and "proxy_ndp" not in got["veths"][0]


@pytest.mark.parametrize("style, host_addresses, via6, proxy_ndp", [
    ("host_ip", ["192.168.10.254/32", "fd00:10::1/128"], {"via": "fd00:10::1", "onlink": True}, None),
    ("proxy_arp", [], {"via": "fe80::1"}, ["fe80::1"]),  # Calico: a link-local gateway, answered by proxy NDP
    ("veth_gateway", [], {"via": "fd00:10::1", "onlink": True}, ["fd00:10::1"]),  # held on veth-host
])
def test_routed_styles_route_each_family_through_their_gateway(style, host_addresses, via6, proxy_ndp):
    got = wiring("routed", style)
    pod = got["veths"][0]
    assert pod["peer_addresses"] == ["192.168.10.1/32", "fd00:10::2/128"]
    assert pod["addresses"] == host_addresses
    assert pod["peer_routes"][1] == dict({"dst": "::/0"}, **via6)
    assert pod.get("proxy_ndp") == proxy_ndp
    assert {"dst": "fd00:10::2/128", "dev": "va"} in got["routes"] and {"dst": "192.168.10.1/32", "dev": "va"} in got["routes"]
    if style == "veth_gateway":
        assert got["veths"][-1]["addresses"] == ["192.168.10.254/32", "fd00:10::1/128"]


def test_a_pod_without_its_ipv6_address_is_refused():
    with pytest.raises(AnsibleFilterError, match=r"^podnet_pods\[1\]: pod b has no IPv6 address allocated"):
        podnet.pod_wiring(PODS, [ALLOCATION[0], {"name": "b", "ip": "192.168.10.2"}], "192.168.10.0/24",
                          cidr6="fd00:10::/64")


def plan(host: str, method: str, encapsulation: str = "always") -> dict:
    settings = {"method": method, "encapsulation": encapsulation, "underlay_mtu": 9000}
    return podnet.cross_node_plan(host, DUAL, GROUPS, CIDRS, settings, CIDRS6)


def test_static_routes_carry_ipv6_over_the_ipv6_underlay_on_nodes_and_leaf():
    assert plan("worker1", "static")["routes"][2:] == [
        {"dst": "fd00:20::/64", "via": "fd00:210::22"},    # same subnet: direct
        {"dst": "fd00:30::/64", "via": "fd00:210::254"}]   # other subnet: the leaf's IPv6 SVI
    assert plan("leaf03", "static")["routes"][3:] == [
        {"dst": "fd00:10::/64", "via": "fd00:210::21"}, {"dst": "fd00:20::/64", "via": "fd00:210::22"},
        {"dst": "fd00:30::/64", "via": "fd00:230::23"}]


def test_vxlan_carries_ipv6_over_the_ipv4_underlay_with_a_second_neighbour_entry():
    got = plan("worker1", "vxlan")
    assert got["vxlans"][0]["peers"][0] == {"mac": "0e:00:c0:a8:d2:16", "dst": "192.168.210.22",
                                            "ip": "192.168.20.0", "ip6": "fd00:20::"}
    assert {"dst": "fd00:30::/64", "via": "fd00:30::", "dev": "vxlan100", "onlink": True} in got["routes"]
    direct = plan("worker1", "vxlan", "cross_subnet")["routes"]
    assert {"dst": "fd00:20::/64", "via": "fd00:210::22"} in direct  # same subnet: no tunnel, IPv6 underlay


def test_ipip_refuses_ipv6_pods():
    with pytest.raises(AnsibleFilterError, match=r"^worker1: cross_node_method: ipip carries IPv4 only"):
        plan("worker1", "ipip")


def test_verify_probes_each_family_with_its_own_headers():
    pods = [{"name": "a", "ip": "192.168.10.1", "ip6": "fd00:10::2"}, {"name": "b", "ip": "192.168.10.2", "ip6": "fd00:10::3"}]
    same = verify.same_node_probes(pods, "worker1", "192.168.210.21", 1500, "fd00:210::21")
    six = [p for p in same if p.get("family") == 6]
    assert [p["to"] for p in six] == ["worker1/b fd00:10::3", "worker1 fd00:210::21", "worker1/a fd00:10::2",
                                      "worker1 fd00:210::21", "worker1/b fd00:10::3"]
    assert six[-1]["kind"] == "mtu" and six[-1]["argv"][-4:] == ["do", "-s", "1452", "fd00:10::3"]
    assert [p["argv"][-4:] for p in same if p["kind"] == "mtu" and "family" not in p] == [["do", "-s", "1472", "192.168.10.2"]]
    v4_only = [{"name": "c", "ip": "192.168.20.1"}]
    cross = verify.cross_node_probes(pods, "worker1", {"worker2": v4_only}, 1500)
    assert cross and all("family" not in p for p in cross)  # a family every pod of both ends holds
