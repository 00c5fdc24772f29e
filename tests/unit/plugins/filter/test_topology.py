"""Unit tests for the topology picture's Graphviz source."""
from __future__ import annotations

from ansible_collections.handcni.podnet.plugins.filter.topology import topology_dot

HOSTVARS = {
    "leaf03": {"podnet_leaf_subnets": [{"name": "vlan210", "address": "192.168.210.254/24"},
                                       {"name": "vlan230", "address": "192.168.230.254/24"}]},
    "worker1": {"podnet_node_ip": "192.168.210.21", "podnet_pod_cidr": "192.168.10.0/24",
                "podnet_pods": [{"name": "netns1", "ip": "192.168.10.1"}]},
    "worker2": {"podnet_node_ip": "192.168.210.22", "podnet_pod_cidr": "192.168.20.0/24", "podnet_pods": []},
    "worker3": {"podnet_node_ip": "192.168.230.23", "podnet_pod_cidr": "192.168.30.0/24", "podnet_pods": []},
}
GROUPS = {"leaf": ["leaf03"], "workers": ["worker1", "worker2", "worker3"]}


def with_vars(**extra):
    return {host: dict(hv, **extra) for host, hv in HOSTVARS.items()}


def test_nodes_pods_and_subnets():
    dot = topology_dot(HOSTVARS, GROUPS)
    assert dot.startswith("graph podnet {") and dot.rstrip().endswith("}")
    assert '"leaf03" -- "worker1" [label="vlan210"]' in dot
    assert '"leaf03" -- "worker3" [label="vlan230"]' in dot
    assert '"worker1/netns1" [label="netns1\\n192.168.10.1"' in dot
    assert "ipip" not in dot and "vxlan" not in dot


def test_cross_subnet_tunnels_only_between_subnets():
    dot = topology_dot(with_vars(cross_node_method="vxlan", cross_node_encapsulation="cross_subnet"), GROUPS)
    assert '"worker1" -- "worker2" [style=solid, color="#188038", label="direct"' in dot
    assert '"worker1" -- "worker3" [style=dashed, color="#1a73e8", label="vxlan"' in dot
    assert '"worker2" -- "worker3" [style=dashed' in dot


def test_always_tunnels_every_pair_and_bgp_draws_sessions():
    assert topology_dot(with_vars(cross_node_method="ipip"), GROUPS).count('label="ipip"') == 3
    assert topology_dot(with_vars(cross_node_method="bgp"), GROUPS).count('label="BGP"') == 3


def test_quotes_are_escaped():
    hostvars = dict(HOSTVARS, worker1=dict(HOSTVARS["worker1"], podnet_pods=[{"name": 'a"b', "ip": "192.168.10.1"}]))
    assert '"worker1/a\\"b"' in topology_dot(hostvars, GROUPS)
