"""Unit tests for plugins/filter/services.py: the inventory's services resolved for nat_rule and the servers."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.filter import services as f

HOSTVARS = {
    "worker1": {"podnet_pods": [{"name": "netns1", "ip": "192.168.10.1"}, {"name": "netns3", "ip": "192.168.10.3"}]},
    "worker2": {"podnet_pods": [{"name": "netns2"}],
                "pod_network_assigned": [{"name": "netns2", "ip": "192.168.20.7"}]},
    "worker3": {"podnet_pods": [{"name": "netns3"}]},
}
WEB = {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "protocol": "tcp", "node_port": 32080,
       "target_port": 80, "endpoints": [{"node": "worker1", "pod": "netns3"}, {"node": "worker2", "pod": "netns2"},
                                        {"ip": "10.0.0.9", "port": 8080}]}
ECHO = {"name": "echo", "cluster_ip": "11.96.10.7", "port": 7, "protocol": "udp",
        "endpoints": [{"node": "worker1", "pod": "netns1", "port": 7007}]}


def test_rules_resolve_pods_to_their_addresses():
    outside = {"external_ips": [], "load_balancer_ip": None, "external_traffic_policy": "Cluster"}
    assert f.service_rules([WEB, ECHO], HOSTVARS, "worker1") == [
        {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "protocol": "tcp", "node_port": 32080,
         "target_port": 80, **outside,
         "endpoints": [{"ip": "192.168.10.3", "port": None, "local": True},
                       {"ip": "192.168.20.7", "port": None, "local": False},
                       {"ip": "10.0.0.9", "port": 8080, "local": False}]},
        {"name": "echo", "cluster_ip": "11.96.10.7", "port": 7, "protocol": "udp", "node_port": None,
         "target_port": None, **outside, "endpoints": [{"ip": "192.168.10.1", "port": 7007, "local": True}]},
    ]
    local = dict(WEB, external_ips=["198.51.100.10"], load_balancer_ip="198.51.100.11", external_traffic_policy="Local")
    rule = f.service_rules([local], HOSTVARS, "worker2")[0]
    assert (rule["external_ips"], rule["load_balancer_ip"], rule["external_traffic_policy"]) == \
        (["198.51.100.10"], "198.51.100.11", "Local")
    assert [e["local"] for e in rule["endpoints"]] == [False, True, False]
    assert f.service_rules(None, HOSTVARS) == []


@pytest.mark.parametrize("endpoint, message", [
    ({"node": "worker9", "pod": "netns1"}, "podnet_services[0].endpoints[0].node: 'worker9' is not a host"),
    ({"node": "worker1", "pod": "netns9"}, "podnet_services[0].endpoints[0].pod: worker1 has no pod 'netns9'"),
    ({"node": "worker3", "pod": "netns3"}, "podnet_services[0].endpoints[0].pod: pod netns3 on worker3 has no address"),
    ({"node": "worker1"}, "podnet_services[0].endpoints[0]: a pod endpoint needs both node and pod"),
    ({"port": 80}, "podnet_services[0].endpoints[0]: needs {node, pod} or {ip}"),
    ("10.0.0.1", "podnet_services[0].endpoints[0]: must be {node, pod} or {ip, port}"),
])
def test_rules_fail_naming_the_endpoint(endpoint, message):
    with pytest.raises(AnsibleFilterError) as err:
        f.service_rules([dict(WEB, endpoints=[endpoint])], HOSTVARS)
    assert str(err.value).startswith(message), str(err.value)


def test_rules_need_a_list_of_dicts():
    with pytest.raises(AnsibleFilterError, match=r"^podnet_services: must be a list"):
        f.service_rules({"web": WEB}, HOSTVARS)
    with pytest.raises(AnsibleFilterError, match=r"^podnet_services\[1\]: must be a dict"):
        f.service_rules([WEB, "echo"], HOSTVARS)


def test_servers_of_a_node_are_its_endpoint_pods():
    assert f.service_servers([WEB, ECHO], HOSTVARS, "worker1") == [
        {"pod": "netns1", "kind": "udp", "ip": "192.168.10.1", "port": 7007, "identity": "worker1/netns1"},
        {"pod": "netns3", "kind": "http", "ip": "192.168.10.3", "port": 80, "identity": "worker1/netns3"},
    ]
    assert f.service_servers([WEB, ECHO], HOSTVARS, "worker2") == [
        {"pod": "netns2", "kind": "http", "ip": "192.168.20.7", "port": 80, "identity": "worker2/netns2"}]
    assert f.service_servers([WEB, ECHO], HOSTVARS, "worker3") == []


def test_one_server_per_pod_and_port_even_for_two_services():
    other = dict(WEB, name="web2", cluster_ip="11.96.10.4")
    assert len(f.service_servers([WEB, other], HOSTVARS, "worker1")) == 1


# --- dual stack -------------------------------------------------------------------------

DUAL_HOSTVARS = {
    "worker1": {"podnet_dual_stack": True, "podnet_pods": [{"name": "netns3", "ip": "192.168.10.3", "ip6": "fd00:10::3"}]},
    "worker2": {"podnet_dual_stack": True, "podnet_pods": [{"name": "netns2"}],
                "pod_network_assigned": [{"name": "netns2", "ip": "192.168.20.7", "ip6": "fd00:20::7"}]},
}
WEB2 = {"name": "web", "cluster_ip": "11.96.10.3", "cluster_ips": ["11.96.10.3", "fd00:96::a"],
        "ip_families": ["IPv4", "IPv6"], "port": 8080, "node_port": 32080, "target_port": 80,
        "external_ips": ["198.51.100.10", "2001:db8::10"],
        "endpoints": [{"node": "worker1", "pod": "netns3"}, {"node": "worker2", "pod": "netns2"},
                      {"ip": "fd00:99::9", "port": 8080}]}


def test_a_dual_stack_service_is_an_entry_per_family():
    four, six = f.service_rules([WEB2], DUAL_HOSTVARS, "worker1")
    assert (four["name"], four["cluster_ip"], four["external_ips"]) == ("web", "11.96.10.3", ["198.51.100.10"])
    assert [e["ip"] for e in four["endpoints"]] == ["192.168.10.3", "192.168.20.7"]
    assert (six["name"], six["cluster_ip"], six["external_ips"], six["node_port"]) == \
        ("web", "fd00:96::a", ["2001:db8::10"], 32080)
    assert [(e["ip"], e["local"]) for e in six["endpoints"]] == \
        [("fd00:10::3", True), ("fd00:20::7", False), ("fd00:99::9", False)]
    assert set(four) == set(six) == set(f.service_rules([WEB], HOSTVARS, "worker1")[0])


def test_an_ipv4_only_cluster_keeps_the_ipv4_side_of_a_prefer_dual_stack_service():
    rules = f.service_rules([WEB2], {"worker1": dict(DUAL_HOSTVARS["worker1"], podnet_dual_stack=False),
                                     "worker2": DUAL_HOSTVARS["worker2"]}, "worker1")
    assert [(r["cluster_ip"], r["external_ips"]) for r in rules] == [("11.96.10.3", ["198.51.100.10"])]


@pytest.mark.parametrize("change, message", [
    (dict(ip_family_policy="RequireDualStack"),
     "podnet_services[0].ip_family_policy: RequireDualStack needs a dual-stack cluster (podnet_dual_stack: true)"),
    (dict(ip_families=["IPv6"], cluster_ips=["fd00:96::a"], cluster_ip="fd00:96::a"),
     "podnet_services[0].ip_families: IPv6 needs a dual-stack cluster (podnet_dual_stack: true)"),
])
def test_an_ipv6_service_on_an_ipv4_only_cluster_is_refused(change, message):
    with pytest.raises(AnsibleFilterError) as err:
        f.service_rules([dict(WEB2, **change)], HOSTVARS, "worker1")
    assert str(err.value) == message


def test_pods_of_a_dual_stack_service_listen_on_both_families():
    assert f.service_servers([WEB2], DUAL_HOSTVARS, "worker1") == [
        {"pod": "netns3", "kind": "http", "ip": "192.168.10.3", "ip6": "fd00:10::3", "port": 80,
         "identity": "worker1/netns3"}]
    assert "ip6" not in f.service_servers([WEB], HOSTVARS, "worker1")[0]
