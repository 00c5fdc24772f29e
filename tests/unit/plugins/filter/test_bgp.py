"""Unit tests for plugins/filter/bgp.py: the cluster's BGP design from the inventory (seed 004 lab 9)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.filter.bgp import FilterModule, bgp_speaker, peer_name
from ansible_collections.handcni.podnet.plugins.module_utils import _bgp as bgp

HOSTVARS = {
    "worker1": {"podnet_node_ip": "192.168.210.21"},
    "worker2": {"podnet_node_ip": "192.168.210.22"},
    "worker3": {"podnet_node_ip": "192.168.230.23"},
    "leaf03": {"podnet_leaf_subnets": [{"name": "vlan210", "address": "192.168.210.254/24"},
                                       {"name": "vlan230", "address": "192.168.230.254/24"},
                                       {"name": "vlan113", "address": "203.0.113.254/24"}]},
    "outside": {"podnet_node_ip": "203.0.113.10"},
}
GROUPS = {"workers": ["worker1", "worker2", "worker3"], "leaf": ["leaf03"], "external": ["outside"]}
CIDRS = {"worker1": "192.168.10.0/24", "worker2": "192.168.20.0/24", "worker3": "192.168.30.0/24"}
SETTINGS = {"as_mode": "per_node", "leaf_as": 65000, "node_as_base": 65000, "cluster_cidrs": list(CIDRS.values()),
            "prefix_limit": 256, "password": "", "hold_time": 9, "keepalive_time": 3, "connect_retry_time": 5,
            "graceful_restart": True}
CLUSTER = [{"prefix": c, "ge": 24, "le": 24} for c in CIDRS.values()]


def speaker(host: str, hostvars: dict | None = None, **settings) -> dict:
    return bgp_speaker(host, hostvars or HOSTVARS, GROUPS, CIDRS, dict(SETTINGS, **settings))


def test_worker2_is_the_seed_node():
    result = speaker("worker2")
    assert result["router_id"] == "192.168.210.22" and result["local_as"] == 65002
    assert result["networks"] == ["192.168.20.0/24"]
    (leaf,) = result["neighbors"]
    assert leaf["name"] == "leaf03" and leaf["address"] == "192.168.210.254" and leaf["remote_as"] == 65000
    assert leaf["source_address"] == "192.168.210.22" and leaf["password"] is None
    assert leaf["export_prefixes"] == [{"prefix": "192.168.20.0/24"}]               # exactly its own
    assert leaf["import_prefixes"] == [{"prefix": "192.168.20.0/24", "action": "deny"}] + CLUSTER
    assert leaf["import_limit"] == 256 and leaf["hold_time"] == 9 and leaf["graceful_restart"]


def test_a_node_on_another_subnet_peers_with_the_leaf_there():
    result = speaker("worker3")
    assert result["local_as"] == 65003 and result["neighbors"][0]["address"] == "192.168.230.254"


def test_the_leaf_learns_exactly_each_nodes_cidr_and_announces_the_others():
    result = speaker("leaf03")
    assert result["router_id"] == "192.168.210.254" and result["local_as"] == 65000 and result["networks"] == []
    by_name = {n["name"]: n for n in result["neighbors"]}
    assert list(by_name) == ["worker1", "worker2", "worker3"]
    assert by_name["worker3"]["address"] == "192.168.230.23" and by_name["worker3"]["remote_as"] == 65003
    assert by_name["worker3"]["source_address"] == "192.168.230.254"
    assert by_name["worker1"]["import_prefixes"] == [{"prefix": "192.168.10.0/24"}]
    assert by_name["worker1"]["export_prefixes"] == [{"prefix": "192.168.10.0/24", "action": "deny"}] + CLUSTER
    assert not by_name["worker1"]["route_reflector_client"] and not by_name["worker1"]["next_hop_self"]


def test_both_ends_of_every_session_agree():
    leaf = {n["address"]: n for n in speaker("leaf03")["neighbors"]}
    for worker in GROUPS["workers"]:
        node = speaker(worker)
        (up,) = node["neighbors"]
        down = leaf[node["router_id"]]
        assert up["remote_as"] == speaker("leaf03")["local_as"] and down["remote_as"] == node["local_as"]
        assert up["address"] == down["source_address"] and down["address"] == up["source_address"]
        assert up["password"] == down["password"]


def test_the_results_validate_as_module_parameters():
    for host in GROUPS["workers"] + GROUPS["leaf"]:
        bgp.speaker(speaker(host, password="s3cret"))


def test_single_as_makes_the_leaf_a_reflector():
    node, leaf = speaker("worker1", as_mode="single"), speaker("leaf03", as_mode="single")
    assert node["local_as"] == 65000 and node["neighbors"][0]["remote_as"] == 65000
    assert all(n["remote_as"] == 65000 and n["route_reflector_client"] and n["next_hop_self"]
               for n in leaf["neighbors"])


def test_host_overrides_for_as_and_password_on_both_sides():
    hostvars = dict(HOSTVARS, worker3=dict(HOSTVARS["worker3"], bgp_as=4200000003, bgp_password="own"))
    assert speaker("worker3", hostvars, password="cluster")["local_as"] == 4200000003
    assert speaker("worker3", hostvars, password="cluster")["neighbors"][0]["password"] == "own"
    leaf = {n["name"]: n for n in speaker("leaf03", hostvars, password="cluster")["neighbors"]}
    assert leaf["worker3"]["remote_as"] == 4200000003 and leaf["worker3"]["password"] == "own"
    assert leaf["worker1"]["password"] == "cluster"


def test_a_cluster_cidr_admits_the_node_blocks_inside_it():
    node = speaker("worker1", cluster_cidrs=["192.168.0.0/16"])
    assert node["neighbors"][0]["import_prefixes"][1:] == [{"prefix": "192.168.0.0/16", "ge": 16, "le": 24}]


@pytest.mark.parametrize("host, settings, message", [
    ("worker1", {"as_mode": "mesh"}, r"^bgp_as_mode: 'mesh'"),
    ("worker1", {"cluster_cidrs": ["192.168.0.1/16"]}, r"^bgp_cluster_cidrs: '192.168.0.1/16'"),
    ("outside", {}, r"^outside: not in the workers or leaf group"),
])
def test_errors_name_the_variable(host, settings, message):
    with pytest.raises(AnsibleFilterError, match=message):
        speaker(host, **settings)


def test_a_node_off_every_leaf_subnet_is_an_error():
    hostvars = dict(HOSTVARS, worker1={"podnet_node_ip": "10.9.9.9"})
    with pytest.raises(AnsibleFilterError, match=r"^worker1: podnet_node_ip 10.9.9.9 is on none"):
        speaker("worker1", hostvars)


@pytest.mark.parametrize("host, name", [("leaf03", "leaf03"), ("leaf-03.dc1", "leaf_03_dc1"), ("1leaf", "n_1leaf")])
def test_peer_names(host, name):
    assert peer_name(host) == name


def test_filter_is_registered():
    assert FilterModule().filters()["bgp_speaker"] is bgp_speaker


def test_bfd_is_graceful_on_the_nodes_side_only():
    """A node keeps what a restarting leaf taught it (graceful restart), BFD or not; the leaf withdraws a node
    whose BFD fails at once. Without graceful restart, neither side is graceful."""
    timers = {"interval": 100, "multiplier": 3}
    node, leaf = speaker("worker2", bfd=timers), speaker("leaf03", bfd=timers)
    assert node["neighbors"][0]["bfd"] == dict(timers, graceful=True)
    assert {n["bfd"]["graceful"] for n in leaf["neighbors"]} == {False}
    assert speaker("worker2", bfd=timers, graceful_restart=False)["neighbors"][0]["bfd"]["graceful"] is False
    assert speaker("worker2")["neighbors"][0]["bfd"] is None


# --- service advertisement (issue 20) -----------------------------------------------------------------

SERVICES = [
    {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "external_ips": ["198.51.100.10"],
     "endpoints": [{"node": "worker1", "pod": "netns3"}, {"node": "worker2", "pod": "netns2"}]},
    {"name": "lb", "cluster_ip": "11.96.10.5", "port": 80, "load_balancer_ip": "198.51.100.11",
     "external_traffic_policy": "Local",
     "endpoints": [{"node": "worker1", "pod": "netns3"}, {"node": "worker3", "pod": "netns3"}]},
]
ADVERTISE = {"advertise_services": True, "services": SERVICES, "service_cidr": "11.96.0.0/16"}


def test_every_node_announces_the_service_cidr_and_cluster_addresses_local_ones_only_with_an_endpoint():
    assert speaker("worker1", **ADVERTISE)["networks"] == ["192.168.10.0/24", "11.96.0.0/16", "198.51.100.10/32",
                                                           "198.51.100.11/32"]
    worker2 = speaker("worker2", **ADVERTISE)
    assert worker2["networks"] == ["192.168.20.0/24", "11.96.0.0/16", "198.51.100.10/32"]
    assert worker2["neighbors"][0]["export_prefixes"] == [{"prefix": p} for p in worker2["networks"]]
    # what a node learns is unchanged: pod CIDRs only
    assert worker2["neighbors"][0]["import_prefixes"] == speaker("worker2")["neighbors"][0]["import_prefixes"]


def test_the_leaf_accepts_exactly_what_each_node_announces_and_installs_every_path():
    leaf = speaker("leaf03", **ADVERTISE)
    by_name = {n["name"]: n for n in leaf["neighbors"]}
    worker2 = ("192.168.20.0/24", "11.96.0.0/16", "198.51.100.10/32")
    assert by_name["worker2"]["import_prefixes"] == [{"prefix": p} for p in worker2]
    assert by_name["worker3"]["export_prefixes"] == speaker("leaf03")["neighbors"][2]["export_prefixes"]
    assert leaf["max_paths"] == 3 and speaker("leaf03")["max_paths"] == 1
    assert bgp.speaker(leaf).max_paths == 3


def test_off_nothing_but_pod_cidrs_is_announced():
    off = dict(ADVERTISE)
    off["advertise_services"] = False
    assert speaker("worker1", **off)["networks"] == ["192.168.10.0/24"]


def test_more_announcements_than_the_leaf_accepts_are_refused():
    with pytest.raises(AnsibleFilterError, match=r"^worker1: bgp_prefix_limit: 3 is less than the 4 prefixes"):
        speaker("worker2", **dict(ADVERTISE, prefix_limit=3))


# --- dual stack (issue 18): an IPv6 session beside each IPv4 one ------------------------------------------

HOSTVARS6 = {
    "worker1": dict(HOSTVARS["worker1"], podnet_node_ip6="fd00:210::21"),
    "worker2": dict(HOSTVARS["worker2"], podnet_node_ip6="fd00:210::22"),
    "worker3": dict(HOSTVARS["worker3"], podnet_node_ip6="fd00:230::23"),
    "leaf03": {"podnet_leaf_subnets": [dict(s, address6=a) for s, a in zip(
        HOSTVARS["leaf03"]["podnet_leaf_subnets"], ("fd00:210::254/64", "fd00:230::254/64", "2001:db8:113::254/64"))]},
    "outside": HOSTVARS["outside"],
}
CIDRS6 = {"worker1": "fd00:10::/64", "worker2": "fd00:20::/64", "worker3": "fd00:30::/64"}
CLUSTER6 = [{"prefix": c, "ge": 64, "le": 64} for c in CIDRS6.values()]


def speaker6(host: str, hostvars: dict | None = None, **settings) -> dict:
    return bgp_speaker(host, hostvars or HOSTVARS6, GROUPS, CIDRS, dict(SETTINGS, **settings), CIDRS6)


def test_a_dual_stack_node_announces_exactly_its_ipv6_prefix_over_an_ipv6_session_with_the_leaf():
    result = speaker6("worker2", password="s3cret", bfd={"interval": 100, "multiplier": 3})
    assert result["router_id"] == "192.168.210.22" and result["networks"] == ["192.168.20.0/24", "fd00:20::/64"]
    four, six = result["neighbors"]
    assert four == speaker("worker2", password="s3cret", bfd={"interval": 100, "multiplier": 3})["neighbors"][0]
    assert six["name"] == "leaf03_v6" and six["address"] == "fd00:210::254" and six["source_address"] == "fd00:210::22"
    assert six["remote_as"] == 65000 and six["password"] == "s3cret" and six["import_limit"] == 256
    assert six["export_prefixes"] == [{"prefix": "fd00:20::/64"}]
    assert six["import_prefixes"] == [{"prefix": "fd00:20::/64", "action": "deny"}] + CLUSTER6
    assert six["bfd"] == {"interval": 100, "multiplier": 3, "graceful": True} and six["graceful_restart"]
    assert speaker6("worker3")["neighbors"][1]["address"] == "fd00:230::254"


def test_the_dual_stack_leaf_learns_each_nodes_ipv6_prefix_and_announces_the_others():
    result = speaker6("leaf03")
    by_name = {n["name"]: n for n in result["neighbors"]}
    assert list(by_name) == ["worker1", "worker2", "worker3", "worker1_v6", "worker2_v6", "worker3_v6"]
    assert by_name["worker3_v6"]["address"] == "fd00:230::23" and by_name["worker3_v6"]["source_address"] == "fd00:230::254"
    assert by_name["worker3_v6"]["remote_as"] == 65003
    assert by_name["worker1_v6"]["import_prefixes"] == [{"prefix": "fd00:10::/64"}]
    assert by_name["worker1_v6"]["export_prefixes"] == [{"prefix": "fd00:10::/64", "action": "deny"}] + CLUSTER6
    single = {n["name"]: n for n in speaker6("leaf03", as_mode="single")["neighbors"]}
    assert single["worker2_v6"]["route_reflector_client"] and single["worker2_v6"]["next_hop_self"]
    for host in GROUPS["workers"] + GROUPS["leaf"]:  # valid module parameters, and both ends agree
        bgp.speaker(speaker6(host, as_mode="single"))
    leaf = {n["address"]: n for n in result["neighbors"]}
    for worker in GROUPS["workers"]:
        up = speaker6(worker)["neighbors"][1]
        assert leaf[up["source_address"]]["source_address"] == up["address"]


def test_services_stay_ipv4_and_an_ipv6_cluster_prefix_admits_the_node_prefixes_inside_it():
    worker2 = speaker6("worker2", **ADVERTISE)
    assert worker2["networks"] == ["192.168.20.0/24", "11.96.0.0/16", "198.51.100.10/32", "fd00:20::/64"]
    assert worker2["neighbors"][1]["export_prefixes"] == [{"prefix": "fd00:20::/64"}]
    assert speaker6("leaf03", **ADVERTISE)["neighbors"][4]["import_prefixes"] == [{"prefix": "fd00:20::/64"}]
    node = speaker6("worker1", cluster_cidrs6=["fd00::/16"])
    assert node["neighbors"][1]["import_prefixes"][1:] == [{"prefix": "fd00::/16", "ge": 16, "le": 64}]


def test_an_ipv4_only_cluster_has_no_ipv6_session():
    assert speaker6("worker1", None) == speaker6("worker1") and bgp_speaker(
        "worker1", HOSTVARS6, GROUPS, CIDRS, SETTINGS, {}) == speaker("worker1", HOSTVARS6)
    assert [n["name"] for n in bgp_speaker("leaf03", HOSTVARS6, GROUPS, CIDRS, SETTINGS)["neighbors"]] == GROUPS["workers"]


def test_a_dual_stack_node_off_the_leafs_ipv6_subnets_is_an_error():
    hostvars = dict(HOSTVARS6, worker1=dict(HOSTVARS6["worker1"], podnet_node_ip6="fd00:999::21"))
    with pytest.raises(AnsibleFilterError, match=r"^worker1: podnet_node_ip6 fd00:999::21 is on none of the leaf's "
                                                 r"podnet_leaf_subnets' address6"):
        speaker6("worker1", hostvars)
    hostvars = dict(HOSTVARS6, worker1=HOSTVARS["worker1"])
    for host in ("worker1", "leaf03"):
        with pytest.raises(AnsibleFilterError, match=r"^worker1: podnet_node_ip6: not set; the node's IPv6 BGP session"):
            speaker6(host, hostvars)


@pytest.mark.parametrize("host, version, name", [("leaf03", 6, "leaf03_v6"), ("x" * 40, 6, "x" * 29 + "_v6"),
                                                 ("1leaf", 6, "n_1leaf_v6")])
def test_ipv6_peer_names(host, version, name):
    assert peer_name(host, version) == name and len(peer_name(host, version)) <= 32
