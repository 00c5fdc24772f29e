"""The whole-inventory check (module_utils/_inventory.py) on bad inventories: each case one change to a
good seed-shaped inventory, and the line that must name its host (where there is one), field and value."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.handcni.podnet.plugins.filter import podnet, verify
from ansible_collections.handcni.podnet.plugins.filter import services as services_filter
from ansible_collections.handcni.podnet.plugins.filter.preflight import podnet_problems, role_options
from ansible_collections.handcni.podnet.plugins.module_utils import _inventory as inventory
from ansible_collections.handcni.podnet.plugins.module_utils import _services as services_model
from ansible_collections.handcni.podnet.plugins.module_utils import _ipam as ipam

ROOT = Path(__file__).resolve().parents[4]
GROUPS = {"workers": ["worker1", "worker2", "worker3"], "leaf": ["leaf03"], "external": ["outside"]}
WEB = {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "protocol": "tcp", "node_port": 32080,
       "target_port": 80, "endpoints": [{"node": "worker1", "pod": "netns3"}, {"node": "worker2", "pod": "netns2"}]}
ECHO = {"name": "echo", "cluster_ip": "11.96.10.7", "port": 7, "protocol": "udp", "node_port": 30007,
        "endpoints": [{"node": "worker2", "pod": "netns1"}, {"ip": "203.0.113.10", "port": 7}]}
EVERYWHERE = {"podnet_node_interface": "enp0s9", "podnet_node_mtu": 9000, "podnet_services": [WEB, ECHO],
              "services_servers": True, "ansible_connection": "handcni.podnet.netns"}
HOSTS = {
    "worker1": {"podnet_node_ip": "192.168.210.21", "podnet_pod_cidr": "192.168.10.0/24",
                "podnet_pods": [{"name": "netns1", "ip": "192.168.10.1", "veth": "veth1"},
                                {"name": "netns3", "ip": "192.168.10.3", "veth": "veth3"}]},
    "worker2": {"podnet_node_ip": "192.168.210.22", "podnet_pod_cidr": "192.168.20.0/24",
                "podnet_pods": [{"name": "netns1"}, {"name": "netns2"}]},
    "worker3": {"podnet_node_ip": "192.168.230.23", "podnet_pod_cidr": "192.168.30.0/24",
                "podnet_pods": [{"name": "netns1", "ip": "192.168.30.1"}, {"name": "netns3", "veth": "veth3"}]},
    "leaf03": {"podnet_leaf_subnets": [{"name": "vlan210", "address": "192.168.210.254/24"},
                                       {"name": "vlan230", "address": "192.168.230.254/24"},
                                       {"name": "vlan113", "address": "203.0.113.254/24"}]},
    "outside": {"podnet_node_ip": "203.0.113.10"},
}
GOOD = {host: dict(copy.deepcopy(EVERYWHERE), **copy.deepcopy(hv)) for host, hv in HOSTS.items()}
DROP = object()


def inventory_with(changes: dict) -> dict:
    """GOOD with changes {"host.var" or "all.var": value (DROP removes it)}."""
    hostvars = copy.deepcopy(GOOD)
    for where, value in changes.items():
        host, name = where.split(".", 1)
        for hv in hostvars.values() if host == "all" else [hostvars[host]]:
            if value is DROP:
                hv.pop(name, None)
            else:
                hv[name] = copy.deepcopy(value)
    return hostvars


def services(*changed, **fields) -> list:
    """The services with the first one's fields changed, or the given list."""
    return list(changed) if changed else [dict(WEB, **fields), ECHO]


def named(lines: list, host: str | None, text: str) -> bool:
    """Some line names `host` (alone or among others) and starts, after the host part, with `text`."""
    for line in lines:
        if host is None and line.startswith(text):
            return True
        hosts, rest = (line.split(": ", 1) + [""])[:2]
        if host and host in hosts.split(", ") and rest.startswith(text):
            return True
    return False


def test_the_seed_inventory_and_its_variants_have_no_problem():
    assert podnet_problems(GOOD, GROUPS) == []
    split = inventory_with({"all.podnet_cluster_cidr": "10.244.0.0/16", "all.podnet_node_prefix": "24",
                            "worker1.podnet_pod_cidr": DROP, "worker2.podnet_pod_cidr": DROP,
                            "worker3.podnet_pod_cidr": DROP, "worker1.podnet_pods": [{"name": "netns1"}, {"name": "netns3"}],
                            "worker3.podnet_pods": [{"name": "netns1"}]})
    assert podnet_problems(split, GROUPS) == []
    as_text = inventory_with({"all.podnet_node_mtu": "1500", "all.cross_node_method": "vxlan",
                              "all.pod_network_hairpin": "yes", "all.egress_no_masquerade_cidrs": "10.0.0.0/8"})
    assert podnet_problems(as_text, GROUPS) == []
    ranged = inventory_with({"all.podnet_service_node_port_range": "8000-9000",
                             "all.podnet_services": services(node_port=8080)[:1]})
    assert podnet_problems(ranged, GROUPS) == []


CASES = [
    # wrong type, out of range, not a choice
    ("all.podnet_node_mtu", "abc", "worker1", "podnet_node_mtu: 'abc' is not a whole number"),
    ("all.podnet_node_mtu", 60, "worker2", "podnet_node_mtu: 60 is out of range 68..65535"),
    ("all.podnet_node_mtu", 70000, "leaf03", "podnet_node_mtu: 70000 is out of range 68..65535"),
    ("worker1.podnet_node_mtu", True, "worker1", "podnet_node_mtu: True is not a whole number"),
    ("worker2.pod_network_mtu", "big", "worker2", "pod_network_mtu: 'big' is not a whole number"),
    ("worker1.pod_network_mode", "bridged", "worker1", "pod_network_mode: 'bridged' is not one of bridge, routed"),
    ("all.pod_network_gateway_style", "calico", "worker3", "pod_network_gateway_style: 'calico' is not one of"),
    ("worker1.pod_network_hairpin", "maybe", "worker1", "pod_network_hairpin: 'maybe' is not true or false"),
    ("worker1.pod_network_ip_forward", [1], "worker1", "pod_network_ip_forward: [1] is not true or false"),
    ("worker1.pod_network_bridge", {"a": 1}, "worker1", "pod_network_bridge: {'a': 1} is not a string"),
    ("all.cross_node_method", "gre", "worker1", "cross_node_method: 'gre' is not one of none, static, ipip, vxlan, bgp"),
    ("all.cross_node_encapsulation", "sometimes", "worker2", "cross_node_encapsulation: 'sometimes' is not one of"),
    ("all.cross_node_vxlan_vni", 0, "worker1", "cross_node_vxlan_vni: 0 is out of range 1..16777215"),
    ("all.cross_node_vxlan_vni", 2 ** 24, "worker1", "cross_node_vxlan_vni: 16777216 is out of range"),
    ("all.cross_node_vxlan_port", 70000, "worker3", "cross_node_vxlan_port: 70000 is out of range 1..65535"),
    ("worker2.cross_node_route_protocol", 201, "worker2", "cross_node_route_protocol: 201 is pod_network's own"),
    ("worker2.cross_node_route_protocol", 300, "worker2", "cross_node_route_protocol: 300 is out of range 5..255"),
    ("worker1.cross_node_underlay_mtu", "x", "worker1", "cross_node_underlay_mtu: 'x' is not a whole number"),
    ("all.egress_enabled", "perhaps", "worker1", "egress_enabled: 'perhaps' is not true or false"),
    ("all.egress_backend", "pf", "worker1", "egress_backend: 'pf' is not one of iptables, nftables"),
    ("all.egress_no_masquerade_cidrs", {"a": 1}, "worker2", "egress_no_masquerade_cidrs: {'a': 1} is not a list"),
    ("all.services_enabled", "sure", "worker3", "services_enabled: 'sure' is not true or false"),
    ("all.services_backend", "ipvs", "worker1", "services_backend: 'ipvs' is not one of iptables, nftables"),
    ("all.podnet_firewall_backend", "ipvs", "outside", "podnet_firewall_backend: 'ipvs' is not one of"),
    ("worker3.cni_config_state", "gone", "worker3", "cni_config_state: 'gone' is not one of present, absent"),
    ("worker3.cni_config_mtu", "wide", "worker3", "cni_config_mtu: 'wide' is not a whole number"),
    ("all.bgp_as_mode", "both", "leaf03", "bgp_as_mode: 'both' is not one of per_node, single"),
    ("all.bgp_leaf_as", 0, "worker1", "bgp_leaf_as: 0 is out of range 1..4294967295"),
    ("all.bgp_hold_time", 1, "worker1", "bgp_hold_time: 1 is out of range 3..65535"),
    ("worker2.bgp_as", "private", "worker2", "bgp_as: 'private' is not a whole number"),
    ("leaf03.bgp_leaf_daemon", "quagga", "leaf03", "bgp_leaf_daemon: 'quagga' is not one of frr, bird"),
    ("outside.verify_whoami_port", 0, "outside", "verify_whoami_port: 0 is out of range 1..65535"),
    ("all.podnet_node_prefix", "x", "worker1", "podnet_node_prefix: 'x' is not a whole number"),
    # unknown variables and keys
    ("worker1.podnet_pod", [{"name": "a"}], "worker1", "podnet_pod: unknown variable (did you mean podnet_pods?)"),
    ("all.pod_network_mdoe", "routed", "worker2", "pod_network_mdoe: unknown variable (did you mean pod_network_mode?)"),
    ("all.cross_node_metod", "vxlan", "leaf03", "cross_node_metod: unknown variable (did you mean cross_node_method?)"),
    ("all.egress_enable", False, "worker1", "egress_enable: unknown variable (did you mean egress_enabled?)"),
    ("worker1.bgp_pasword", "x", "worker1", "bgp_pasword: unknown variable (did you mean bgp_password?)"),
    ("all.podnet_services", services(dict(WEB, clusterip="1.2.3.4")), "worker1",
     "podnet_services[0].clusterip: unknown key (did you mean cluster_ip?)"),
    ("worker1.podnet_pods", [{"name": "a", "addr": "192.168.10.9"}], "worker1", "podnet_pods[0].addr: unknown key"),
    ("all.podnet_services", services(endpoints=[{"host": "worker1", "pod": "netns3"}]), "worker1",
     "podnet_services[0].endpoints[0].host: unknown key"),
    ("leaf03.podnet_leaf_subnets", [{"name": "vlan210", "ip": "192.168.210.254/24"}], "leaf03",
     "podnet_leaf_subnets[0].ip: unknown key"),
    ("worker2.podnet_pods", ["netns1"], "worker2", "podnet_pods[0]: 'netns1' is not a mapping"),
    ("worker2.podnet_pods", {"name": "netns1"}, "worker2", "podnet_pods: {'name': 'netns1'} is not a list"),
    ("worker2.podnet_pods", [{"ip": "192.168.20.5"}], "worker2", "podnet_pods[0].name: required"),
    # pods
    ("worker1.podnet_pods", [{"name": "bad/name"}], "worker1", "podnet_pods[0].name: 'bad/name' is not a valid network namespace"),
    ("worker1.podnet_pods", [{"name": "a", "ip": "x"}], "worker1", "podnet_pods[0].ip: 'x' is not an IP address"),
    ("worker1.podnet_pods", [{"name": "a", "ip": "192.168.11.1"}], "worker1",
     "podnet_pods[0].ip: 192.168.11.1 is not a usable pod address of worker1's pod CIDR 192.168.10.0/24"),
    ("worker1.podnet_pods", [{"name": "a", "ip": "192.168.10.254"}], "worker1", "podnet_pods[0].ip: 192.168.10.254 is not a usable"),
    ("worker1.podnet_pods", [{"name": "a", "ip": "192.168.10.0"}], "worker1", "podnet_pods[0].ip: 192.168.10.0 is not a usable"),
    ("worker3.podnet_pods", [{"name": "a"}, {"name": "a"}], "worker3", "podnet_pods[1].name: a is also podnet_pods[0]'s"),
    ("worker3.podnet_pods", [{"name": "a", "ip": "192.168.30.5"}, {"name": "b", "ip": "192.168.30.5"}], "worker3",
     "podnet_pods[1].ip: 192.168.30.5 is also podnet_pods[0]'s"),
    ("worker3.podnet_pods", [{"name": "a", "veth": "v1"}, {"name": "b", "veth": "v1"}], "worker3",
     "podnet_pods[1].veth: v1 is also podnet_pods[0]'s"),
    ("worker1.podnet_pods", [{"name": "a", "veth": "averyveryverylongname"}], "worker1",
     "podnet_pods[0].veth: interface name 'averyveryverylongname' is longer than 15 bytes"),
    ("worker1.podnet_pods", [{"name": "a", "veth": "veth-host"}], "worker1", "podnet_pods[0].veth: 'veth-host' is reserved"),
    ("worker2.podnet_pod_cidr", "10.9.9.0/30", "worker2", "podnet_pods: 2 pods do not fit in 10.9.9.0/30"),
    # pod CIDRs
    ("worker1.podnet_pod_cidr", "192.168.10.1/24", "worker1", "podnet_pod_cidr: '192.168.10.1/24' is not a valid network"),
    ("worker2.podnet_pod_cidr", "192.168.10.128/25", "worker2",
     "podnet_pod_cidr: 192.168.10.128/25 overlaps worker1's 192.168.10.0/24"),
    ("worker2.podnet_pod_cidr", "192.168.210.0/26", "worker2",
     "podnet_pod_cidr: 192.168.210.0/26 overlaps the underlay subnet 192.168.210.0/24"),
    ("worker2.podnet_pod_cidr", "10.0.0.0/31", "worker2", "podnet_pod_cidr: 10.0.0.0/31 is too small"),
    ("all.podnet_cluster_cidr", "10.0.0.0/8", "worker1", "podnet_pod_cidr: 192.168.10.0/24 is outside podnet_cluster_cidr 10.0.0.0/8"),
    ("worker3.podnet_pod_cidr", DROP, "worker3", "podnet_pod_cidr: not set, and no podnet_cluster_cidr to split"),
    ("all.podnet_cluster_cidr", "10.1.0.1/16", "worker1", "podnet_cluster_cidr: '10.1.0.1/16' is not a valid network"),
    # nodes and the leaf
    ("worker2.podnet_node_ip", DROP, "worker2", "podnet_node_ip: required"),
    ("worker1.podnet_node_ip", "node1", "worker1", "podnet_node_ip: 'node1' is not an IP address"),
    ("worker2.podnet_node_ip", "192.168.210.21", "worker2", "podnet_node_ip: 192.168.210.21 is also worker1's"),
    ("worker2.podnet_node_ip", "192.168.210.254", "worker2", "podnet_node_ip: 192.168.210.254 is also leaf03 (SVI)'s"),
    ("worker3.podnet_node_ip", "10.1.1.1", "worker3", "podnet_node_ip: 10.1.1.1 is in none of the leaf's podnet_leaf_subnets"),
    ("worker3.podnet_node_ip", "192.168.230.255", "worker3", "podnet_node_ip: 192.168.230.255 is not a host address"),
    ("outside.podnet_node_ip", "203.0.113.300", "outside", "podnet_node_ip: '203.0.113.300' is not an IP address"),
    ("leaf03.podnet_leaf_subnets", [{"name": "vlan210", "address": "192.168.210.254"}], "leaf03",
     "podnet_leaf_subnets[0].address: '192.168.210.254' is not an address with a prefix length"),
    ("leaf03.podnet_leaf_subnets", [{"name": "a-very-long-svi-name", "address": "192.168.210.254/24"}], "leaf03",
     "podnet_leaf_subnets[0].name: interface name 'a-very-long-svi-name' is longer than 15 bytes"),
    ("leaf03.podnet_leaf_subnets", HOSTS["leaf03"]["podnet_leaf_subnets"] + [{"name": "v2", "address": "192.168.210.1/25"}],
     "leaf03", "podnet_leaf_subnets[3].address: 192.168.210.1/25 overlaps 192.168.210.254/24"),
    ("leaf03.podnet_leaf_subnets", HOSTS["leaf03"]["podnet_leaf_subnets"] + [{"name": "vlan210", "address": "10.1.1.1/24"}],
     "leaf03", "podnet_leaf_subnets[3].name: vlan210 is listed twice"),
    ("leaf03.podnet_leaf_subnets", [{"name": "vlan210"}], "leaf03", "podnet_leaf_subnets[0].address: required"),
    # MTU
    ("all.cross_node_method", "vxlan", None, None),  # fine alone; with a small MTU below
    ("worker1.podnet_node_mtu", 80, "worker1", None),
    ("worker2.pod_network_mtu", 9001, "worker2", "pod_network_mtu: 9001 does not fit the underlay MTU 9000"),
    # network policies: Kubernetes' shape, named by field
    ("all.podnet_network_policies", [{"metadata": {"name": "p"}, "spec": {"podSelector": {},
                                      "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/40"}}]}]}}], None,
     "podnet_network_policies[0].spec.ingress[0].from[0].ipBlock.cidr: '10.0.0.0/40' is not an IPv4 network"),
    ("all.podnet_network_policies", [{"metadata": {"name": "p"}, "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}}],
     None, "podnet_network_policies[0].spec.ingress[0].ports[0].port: 'http' is a named port, which is not supported"),
    ("all.podnet_network_policies", [{"metadata": {"name": "p"}, "spec": {"podSelectr": {}}}], None,
     "podnet_network_policies[0].spec.podSelectr: unknown key"),
    ("worker1.podnet_pods", [{"name": "a", "labels": {"app": 5}}], "worker1", "podnet_pods[0].labels.app: label values are strings"),
    ("all.podnet_namespaces", {"batch": {"label": {}}}, None, "podnet_namespaces.batch.label: unknown key"),
    # services: types, ranges, overlap, duplicates, dangling references
    ("all.podnet_services", services(cluster_ip="192.168.10.50"), None,
     "podnet_services[0].cluster_ip: 192.168.10.50 is inside worker1's pod CIDR 192.168.10.0/24"),
    ("all.podnet_services", services(cluster_ip="192.168.210.21"), None,
     "podnet_services[0].cluster_ip: 192.168.210.21 is the address of worker1"),
    ("all.podnet_services", services(cluster_ip="203.0.113.254"), None,
     "podnet_services[0].cluster_ip: 203.0.113.254 is the address of leaf03 (SVI)"),
    ("all.podnet_services", services(cluster_ip="192.168.230.77"), None,
     "podnet_services[0].cluster_ip: 192.168.230.77 is inside the underlay subnet 192.168.230.0/24"),
    ("all.podnet_services", services(cluster_ip="x"), None, "podnet_services[0].cluster_ip: 'x' is not a valid IPv4 address"),
    ("all.podnet_services", services(dict(ECHO, cluster_ip=None)), "worker1", "podnet_services[0].cluster_ip: required"),
    ("all.podnet_services", services(port=0), "worker1", "podnet_services[0].port: 0 is out of range 1..65535"),
    ("all.podnet_services", services(port="http"), "worker1", "podnet_services[0].port: 'http' is not a whole number"),
    ("all.podnet_services", services(protocol="sctp"), "worker1", "podnet_services[0].protocol: 'sctp' is not one of tcp, udp"),
    ("all.podnet_services", services(node_port=8080), None,
     "podnet_services[0].node_port: 8080 is outside the node-port range 30000-32767"),
    ("all.podnet_service_node_port_range", "9000-8000", None,
     "podnet_service_node_port_range: '9000-8000' is not a port range like 30000-32767"),
    ("all.podnet_services", services(WEB, dict(ECHO, cluster_ip="11.96.10.3", port=8080, protocol="tcp", node_port=None)),
     None, "podnet_services[1].cluster_ip: 11.96.10.3:8080/tcp is also used by podnet_services[0]"),
    ("all.podnet_services", services(WEB, dict(ECHO, node_port=32080, protocol="tcp")), None,
     "podnet_services[1].node_port: 32080/tcp is also used by podnet_services[0]"),
    ("all.podnet_services", services(WEB, dict(ECHO, name="web")), None, "podnet_services[1].name: web is also used by"),
    ("all.podnet_services", services(name="web server"), None, "podnet_services[0].name: 'web server' is not a valid service name"),
    ("all.podnet_services", services(endpoints=[{"node": "worker9", "pod": "netns1"}]), None,
     "podnet_services[0].endpoints[0].node: 'worker9' is not a worker"),
    ("all.podnet_services", services(endpoints=[{"node": "worker2", "pod": "nope"}]), None,
     "podnet_services[0].endpoints[0].pod: 'nope' is not a pod of worker2"),
    ("all.podnet_services", services(endpoints=[{"node": "worker2", "pod": "netns1", "ip": "1.2.3.4"}]), None,
     "podnet_services[0].endpoints[0]: give {node, pod} or {ip}, not both"),
    ("all.podnet_services", services(endpoints=[{"ip": "300.1.1.1"}]), None,
     "podnet_services[0].endpoints[0].ip: '300.1.1.1' is not a valid IPv4 address"),
    ("all.podnet_services", services(endpoints=[{"ip": "10.1.1.1", "port": 0}]), "worker1",
     "podnet_services[0].endpoints[0].port: 0 is out of range 1..65535"),
    ("all.podnet_services", 5, "worker1", "podnet_services[0]: '5' is not a mapping"),
    ("all.podnet_services", services(endpoints=[{"port": 80}]), None, "podnet_services[0].endpoints[0]: needs {node, pod} or {ip}"),
]
# Two changes at once, where one alone is fine.
PAIRED = {
    "all.cross_node_method": ({"all.podnet_node_mtu": 100, "all.cross_node_method": "vxlan"},
                              "worker1", "podnet_node_mtu: 100 leaves no room for pods with vxlan"),
    "worker1.podnet_node_mtu": ({"worker1.podnet_node_mtu": 80, "worker1.cross_node_method": "ipip"},
                                "worker1", "podnet_node_mtu: 80 leaves no room for pods with ipip"),
}


@pytest.mark.parametrize("where, value, host, text", CASES, ids=[f"{i:02d}-{c[0]}" for i, c in enumerate(CASES)])
def test_a_bad_inventory_is_named_in_one_line(where, value, host, text):
    changes = {where: value}
    if text is None:
        changes, host, text = PAIRED[where]
    found = podnet_problems(inventory_with(changes), GROUPS)
    assert named(found, host, text), found
    for line in found:
        assert "Traceback" not in line and "Error" not in line and "\n" not in line, line


def test_a_problem_of_every_host_is_one_line():
    found = podnet_problems(inventory_with({"all.podnet_node_mtu": "abc"}), GROUPS)
    assert found == ["worker1, worker2, worker3, leaf03, outside: podnet_node_mtu: 'abc' is not a whole number"]


def test_services_in_the_cluster_cidr_are_refused():
    hostvars = inventory_with({"all.podnet_cluster_cidr": "192.168.0.0/16", "all.podnet_services": services(cluster_ip="192.168.99.1")})
    assert named(podnet_problems(hostvars, GROUPS), None,
                 "podnet_services[0].cluster_ip: 192.168.99.1 is inside podnet_cluster_cidr 192.168.0.0/16")


def test_external_addresses_in_a_pod_range_or_twice_and_cluster_ips_outside_the_service_cidr_are_refused():
    hostvars = inventory_with({"all.podnet_service_cidr": "11.96.0.0/16", "all.podnet_services": [
        dict(services()[0], external_ips=["192.168.10.9"], load_balancer_ip="192.168.210.21"),
        dict(services()[0], name="two", cluster_ip="11.97.0.1", node_port=None, external_ips=["198.51.100.1"]),
        dict(services()[0], name="three", cluster_ip="11.96.0.3", node_port=None, external_ips=["198.51.100.1"])]})
    found = podnet_problems(hostvars, GROUPS)
    assert named(found, None, "podnet_services[0].external_ips[0]: 192.168.10.9 is inside worker1's pod CIDR 192.168.10.0/24")
    assert named(found, None, "podnet_services[0].load_balancer_ip: 192.168.210.21 is the address of worker1")
    assert named(found, None, "podnet_services[1].cluster_ip: 11.97.0.1 is outside podnet_service_cidr 11.96.0.0/16")
    assert named(found, None, "podnet_services[2].external_ips: 198.51.100.1 is also used by podnet_services[1]")
    found = podnet_problems(inventory_with({"all.podnet_service_cidr": "192.168.0.0/16"}), GROUPS)
    assert named(found, None, "podnet_service_cidr: 192.168.0.0/16 overlaps worker1's pod CIDR 192.168.10.0/24")


def test_announcing_more_than_the_leaf_accepts_is_refused():
    announced = {"all.cross_node_method": "bgp", "all.bgp_advertise_services": True, "all.bgp_prefix_limit": 2,
                 "all.podnet_services": services(external_ips=["198.51.100.1", "198.51.100.2"])}
    assert named(podnet_problems(inventory_with(announced), GROUPS), "worker1",
                 "bgp_prefix_limit: 2 is less than the 3 prefixes it announces")
    assert podnet_problems(inventory_with(dict(announced, **{"all.bgp_prefix_limit": 3})), GROUPS) == []


def test_split_cluster_cidrs_are_checked_like_given_ones():
    split = {"all.podnet_cluster_cidr": "10.0.0.0/23", "all.podnet_node_prefix": 24, "worker1.podnet_pod_cidr": DROP,
             "worker2.podnet_pod_cidr": DROP, "worker3.podnet_pod_cidr": DROP,
             "worker1.podnet_pods": [{"name": "netns3"}], "worker3.podnet_pods": [{"name": "a"}]}
    found = podnet_problems(inventory_with(split), GROUPS)
    assert found == ["worker3: podnet_cluster_cidr: 10.0.0.0/23 has only 2 /24 blocks, node number 3 needs more"]
    found = podnet_problems(inventory_with(dict(split, **{"all.podnet_node_prefix": 31})), GROUPS)
    assert named(found, "worker1", "podnet_node_prefix: /31 does not fit in 10.0.0.0/23")


def test_bgp_router_ids_are_unique():
    hostvars = inventory_with({"all.cross_node_method": "bgp"})
    assert podnet_problems(hostvars, GROUPS) == []
    hostvars["worker2"]["bgp_router_id"] = "192.168.210.21"
    assert podnet_problems(hostvars, GROUPS) == ["worker2: bgp_router_id: 192.168.210.21 is also worker1's"]


def test_the_known_names_are_the_roles_options_and_the_inventory_fields():
    known = set(role_options()) | set(inventory.FIELDS)
    assert {"pod_network_mode", "cross_node_vxlan_vni", "bgp_password", "services_list", "cni_config_state",
            "egress_backend", "podnet_pods", "podnet_service_node_port_range"} <= known
    assert all(name.startswith(inventory.PREFIXES) for name in known)


def test_at_least_sixty_bad_inventories():
    assert len(CASES) >= 60


# --- property: a random inventory either plans cleanly or fails with field messages ---------------

FIELD_LINE = re.compile(r"^(?:[\w.-]+(?:, [\w.-]+)*: )?[a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*: \S")
PYTHON_TEXT = ("Traceback", "Error", "unhashable", "has no attribute", "invalid literal", "object is not", "NoneType")


def plan(hostvars: dict, groups: dict) -> None:
    """What the roles compute from the inventory, with their defaults: pod CIDRs, MTU, the ipam allocation,
    the pod wiring, the cross-node plan of every worker and the leaf, the service rules as nat_rule checks
    them, and verify.yml's probes. Raises whatever the filters or the modules' own validation raise."""
    workers = groups["workers"]
    cidrs = podnet.worker_pod_cidrs(hostvars, workers)
    assigned = {}
    for host in workers:
        hv = hostvars[host]
        method = hv.get("cross_node_method", "static")
        mtu = int(hv["pod_network_mtu"]) if "pod_network_mtu" in hv else \
            podnet.pod_mtu(hv.get("podnet_node_mtu", 1500), method, hv.get("podnet_node_ip"))
        pods = hv.get("podnet_pods") or []
        ipam_pods = [{key: pod[key] for key in ("name", "ip") if key in pod} for pod in pods]
        allocation = ipam.allocate(cidrs[host], ipam_pods, [podnet.pod_gateway(cidrs[host])], {})
        assigned[host] = [{"name": pod["name"], "ip": allocation[pod["name"]]} for pod in pods]
        podnet.pod_wiring(pods, assigned[host], cidrs[host], hv.get("pod_network_mode", "bridge"),
                          hv.get("pod_network_gateway_style", "host_ip"), hv.get("pod_network_bridge", "br0"), mtu)
        verify.same_node_probes(assigned[host], host, hv["podnet_node_ip"], mtu)
    full = {host: dict(hv, pod_network_assigned=assigned.get(host, [])) for host, hv in hostvars.items()}
    for host in workers + groups["leaf"]:
        hv = hostvars[host]
        settings = {"method": hv.get("cross_node_method", "static"),
                    "encapsulation": hv.get("cross_node_encapsulation", "always"),
                    "vxlan_vni": hv.get("cross_node_vxlan_vni", 100), "vxlan_port": hv.get("cross_node_vxlan_port", 4789),
                    "underlay_mtu": hv.get("podnet_node_mtu", 1500), "underlay_interface": "eth0"}
        podnet.cross_node_plan(host, full, groups, cidrs, settings)
    for host in workers:
        rules = services_filter.service_rules(hostvars[host].get("podnet_services") or [], full)
        services_model.normalise_services(rules, "services")
        verify.cross_node_probes(assigned[host], host, assigned, 1400)


IP = st.one_of(st.sampled_from(["192.168.210.21", "192.168.210.22", "192.168.230.23", "203.0.113.10", "192.168.10.254",
                                "11.96.10.3", "0.0.0.0", "fe80::1", "x", ""]),
               st.builds("192.168.{}.{}".format, st.sampled_from([10, 20, 30, 210, 230]), st.integers(0, 255)))
CIDR = st.one_of(st.builds("192.168.{}.0/{}".format, st.sampled_from([0, 10, 20, 30, 210]), st.integers(14, 32)),
                 st.builds("10.{}.0.0/{}".format, st.integers(0, 3), st.integers(8, 31)),
                 st.sampled_from(["192.168.10.1/24", "pods", "::/0"]))
POD = st.fixed_dictionaries({"name": st.sampled_from(["netns1", "netns2", "netns3", "a", "bad/x", ""])},
                            optional={"ip": IP, "veth": st.sampled_from(["veth1", "veth2", "veth-host", "x" * 16]),
                                      "addr": IP})
ENDPOINT = st.one_of(
    st.fixed_dictionaries({"node": st.sampled_from(GROUPS["workers"] + ["worker9", "leaf03"]),
                           "pod": st.sampled_from(["netns1", "netns2", "netns3", "x"])}),
    st.fixed_dictionaries({"ip": IP}, optional={"port": st.integers(-1, 70000)}))
SERVICE = st.fixed_dictionaries(
    {"name": st.sampled_from(["web", "echo", "a b"]), "cluster_ip": IP, "port": st.integers(-1, 70000)},
    optional={"protocol": st.sampled_from(["tcp", "udp", "sctp", None]), "node_port": st.integers(29990, 32800),
              "target_port": st.integers(0, 65536), "endpoints": st.lists(ENDPOINT, max_size=3)})
SUBNET = st.fixed_dictionaries({"name": st.sampled_from(["vlan210", "vlan230", "x" * 16]),
                                "address": st.builds("{}/{}".format, IP, st.integers(8, 32))})
VALUE = {
    "podnet_node_mtu": st.one_of(st.integers(0, 70000), st.sampled_from(["abc", "1500", None, True])),
    "pod_network_mtu": st.one_of(st.integers(0, 9100), st.sampled_from(["big", None])),
    "podnet_node_ip": IP, "podnet_pod_cidr": CIDR, "podnet_cluster_cidr": CIDR,
    "podnet_node_prefix": st.one_of(st.integers(0, 33), st.sampled_from(["x", "24"])),
    "podnet_pods": st.one_of(st.lists(POD, max_size=4), st.sampled_from([None, "netns1", {"name": "a"}])),
    "podnet_services": st.one_of(st.lists(SERVICE, max_size=3), st.sampled_from([None, 5, "web"])),
    "podnet_leaf_subnets": st.lists(SUBNET, max_size=3),
    "podnet_service_node_port_range": st.sampled_from(["30000-32767", "8000-9000", "9000-8000", "x"]),
    "cross_node_method": st.sampled_from(["static", "ipip", "vxlan", "bgp", "none", "gre", None]),
    "cross_node_encapsulation": st.sampled_from(["always", "cross_subnet", "sometimes"]),
    "cross_node_vxlan_vni": st.one_of(st.integers(-1, 2 ** 24 + 1), st.sampled_from(["x", "100"])),
    "pod_network_mode": st.sampled_from(["bridge", "routed", "bridged", None]),
    "pod_network_gateway_style": st.sampled_from(["host_ip", "proxy_arp", "veth_gateway", "calico"]),
    "podnet_pod": st.just([{"name": "a"}]),
}
CHANGE = st.tuples(st.sampled_from(["all"] + list(HOSTS)), st.sampled_from(sorted(VALUE))).flatmap(
    lambda where: st.tuples(st.just(f"{where[0]}.{where[1]}"), VALUE[where[1]]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CHANGE, min_size=1, max_size=4))
def test_a_random_inventory_plans_cleanly_or_fails_naming_fields(changes):
    hostvars = inventory_with(dict(changes))
    found = podnet_problems(hostvars, GROUPS)
    for line in found:
        assert FIELD_LINE.match(line) and not any(text in line for text in PYTHON_TEXT), line
    if not found:
        plan(hostvars, GROUPS)  # everything the roles compute: no exception at all


# --- the inventory reference in docs/inventory.md is the one the check uses -----------------------

REFERENCE = ROOT / "docs" / "inventory.md"


def _cell(value) -> str:
    """Table cell text: ansible-doc's C(), V(), O() markup as code, pipes escaped."""
    return re.sub(r"\b[CVO]\(([^()]*(?:\([^()]*\)[^()]*)*)\)", r"`\1`", str(value)).replace("|", "\\|").replace("\n", " ")


def reference_rows() -> list:
    """One row per known variable: name, type, range or choices, default, what it is (first sentence)."""
    options = dict(inventory.FIELDS, **role_options())
    rows = []
    for name in sorted(options):
        spec = options[name]
        kind = spec.get("type", "raw") + (f" of {spec['elements']}" if spec.get("elements") else "")
        low_high = spec.get("range") or inventory.RANGES.get(name)
        limits = " ".join(filter(None, [", ".join(map(str, spec["choices"])) if spec.get("choices") else "",
                                        f"{low_high[0]}..{low_high[1]}" if low_high else "",
                                        f"keys: {', '.join(spec['options'])}" if spec.get("options") else ""]))
        text = spec.get("description", "")
        text = " ".join(text) if isinstance(text, list) else text
        first = text.split(". ")[0].rstrip(".")
        default = "required" if spec.get("required") else f"`{spec['default']!r}`" if "default" in spec else "derived"
        rows.append(f"| `{name}` | {kind} | {_cell(limits)} | {_cell(default)} | {_cell(first)} |")
    return rows


def test_the_inventory_reference_lists_every_variable_as_checked():
    table = [line for line in REFERENCE.read_text().splitlines() if line.startswith("| `")]
    assert table == reference_rows(), "docs/inventory.md is stale; its table should read:\n" + "\n".join(reference_rows())


@pytest.mark.parametrize("value, spec, converted", [
    ("42", {"type": "int"}, 42), (42, {"type": "int", "range": None}, 42), ("yes", {"type": "bool"}, True),
    ("a,b", {"type": "list", "elements": "str"}, ["a", "b"]), (5, {"type": "str"}, "5"),
])
def test_values_are_converted_as_ansible_converts_role_arguments(value, spec, converted):
    assert inventory._typed(value, spec, "x") == converted
