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
