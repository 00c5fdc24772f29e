"""Unit tests for plugins/filter/podnet.py (IPAM and topology filters)."""
from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.filter.podnet import (
    FilterModule,
    node_pod_cidr,
    pod_gateway,
    pod_wiring,
    static_routes,
    veth_name,
    worker_pod_cidrs,
)

CIDR = "192.168.10.0/24"


# --- pod_gateway --------------------------------------------------------------

@pytest.mark.parametrize("cidr, gateway", [
    ("192.168.10.0/24", "192.168.10.254"),
    ("10.244.1.0/25", "10.244.1.126"),
    ("10.244.0.0/16", "10.244.255.254"),
    ("10.0.0.0/30", "10.0.0.2"),
    ("fd00::/64", "fd00::ffff:ffff:ffff:fffe"),
])
def test_pod_gateway(cidr, gateway):
    assert pod_gateway(cidr) == gateway


@pytest.mark.parametrize("cidr", ["10.0.0.0/31", "10.0.0.1/32"])
def test_pod_gateway_rejects_too_small(cidr):
    with pytest.raises(AnsibleFilterError, match=r"^podnet_pod_cidr: .* too small"):
        pod_gateway(cidr)


@pytest.mark.parametrize("cidr", ["192.168.10.1/24", "192.168.10.0/33", "pods", ""])
def test_pod_gateway_rejects_bad_cidr(cidr):
    with pytest.raises(AnsibleFilterError, match=r"^podnet_pod_cidr: .* is not a valid network"):
        pod_gateway(cidr)


# --- veth_name ----------------------------------------------------------------

@pytest.mark.parametrize("pod", ["pod1", "a", "a-very-long-pod-name-that-is-much-longer-than-fifteen", "pöd"])
def test_veth_name_shape(pod):
    name = veth_name(pod)
    assert len(name.encode()) == 15
    assert re.fullmatch(r"veth[0-9a-f]{11}", name)


def test_veth_name_is_stable_and_distinct():
    # A fixed value: renaming every pod's veth on upgrade would re-wire every pod.
    assert veth_name("pod1") == veth_name("pod1") == "veth8f48989616b"
    assert veth_name("pod1") != veth_name("pod2")


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"pod_gateway", "veth_name", "node_pod_cidr", "worker_pod_cidrs",
                                             "pod_wiring", "static_routes"}


# --- node_pod_cidr --------------------------------------------------------------

@pytest.mark.parametrize("cluster, prefix, index, cidr", [
    ("10.244.0.0/16", 24, 0, "10.244.0.0/24"),
    ("10.244.0.0/16", 24, 2, "10.244.2.0/24"),
    ("192.168.0.0/16", 26, 5, "192.168.1.64/26"),
    ("fd00:10::/56", 64, 1, "fd00:10:0:1::/64"),
])
def test_node_pod_cidr(cluster, prefix, index, cidr):
    assert node_pod_cidr(cluster, prefix, index) == cidr


@pytest.mark.parametrize("cluster, prefix, index, message", [
    ("10.244.0.1/16", 24, 0, r"^podnet_cluster_cidr: "),
    ("10.244.0.0/16", 8, 0, r"^podnet_node_prefix: "),
    ("10.244.0.0/16", 31, 0, r"^podnet_node_prefix: "),
    ("10.244.0.0/23", 24, 2, r"^podnet_cluster_cidr: .* only 2 /24 blocks"),
])
def test_node_pod_cidr_rejects(cluster, prefix, index, message):
    with pytest.raises(AnsibleFilterError, match=message):
        node_pod_cidr(cluster, prefix, index)


# --- pod_wiring -----------------------------------------------------------------

PODS = [{"name": "pod1"}, {"name": "pod2", "veth": "veth-pod2"}]
ALLOCATION = [{"name": "pod1", "ip": "192.168.10.1"}, {"name": "pod2", "ip": "192.168.10.2"}]


def test_pod_wiring_bridge():
    wiring = pod_wiring(PODS, ALLOCATION, CIDR, "bridge", bridge="br0", mtu=1450)
    assert wiring["bridges"] == [{"name": "br0", "mtu": 1450, "mac": "0a:58:c0:a8:0a:fe",
                                  "addresses": ["192.168.10.254/24"]}]
    assert wiring["routes"] == []
    assert wiring["veths"] == [
        {"name": veth_name("pod1"), "peer": "eth0", "peer_netns": "pod1", "mtu": 1450, "master": "br0",
         "hairpin": True, "peer_addresses": ["192.168.10.1/24"],
         "peer_routes": [{"dst": "default", "via": "192.168.10.254"}]},
        {"name": "veth-pod2", "peer": "eth0", "peer_netns": "pod2", "mtu": 1450, "master": "br0",
         "hairpin": True, "peer_addresses": ["192.168.10.2/24"],
         "peer_routes": [{"dst": "default", "via": "192.168.10.254"}]},
    ]


@pytest.mark.parametrize("style, via, host_addresses, proxy_arp", [
    ("host_ip", "192.168.10.254", ["192.168.10.254/32"], False),
    ("proxy_arp", "169.254.1.1", [], True),
    ("veth_gateway", "192.168.10.254", [], False),
])
def test_pod_wiring_routed(style, via, host_addresses, proxy_arp):
    wiring = pod_wiring(PODS, ALLOCATION, CIDR, "routed", style, mtu=1500)
    assert wiring["bridges"] == []
    assert wiring["routes"] == [{"dst": "192.168.10.1/32", "dev": veth_name("pod1")},
                                {"dst": "192.168.10.2/32", "dev": "veth-pod2"}]
    pod1 = wiring["veths"][0]
    assert "master" not in pod1
    assert pod1["peer_addresses"] == ["192.168.10.1/32"]
    assert pod1["peer_routes"] == [{"dst": "default", "via": via, "onlink": True}]
    assert pod1["addresses"] == host_addresses and pod1["proxy_arp"] is proxy_arp
    extra = wiring["veths"][2:]
    assert extra == ([{"name": "veth-host", "peer": "veth-net", "mtu": 1500, "addresses": ["192.168.10.254/32"]}]
                     if style == "veth_gateway" else [])


def test_pod_wiring_hairpin_off():
    assert pod_wiring(PODS, ALLOCATION, CIDR, hairpin=False)["veths"][0]["hairpin"] is False


@pytest.mark.parametrize("pods", [None, []])
def test_pod_wiring_no_pods(pods):
    bridge = {"name": "br0", "mtu": 1500, "mac": "0a:58:c0:a8:0a:fe", "addresses": ["192.168.10.254/24"]}
    assert pod_wiring(pods, [], CIDR) == {"bridges": [bridge], "veths": [], "routes": []}


def rejects(pods, message, cidr=CIDR, allocation=None, **kwargs):
    with pytest.raises(AnsibleFilterError, match=message):
        pod_wiring(pods, ALLOCATION if allocation is None else allocation, cidr, **kwargs)


def test_pod_wiring_rejects_unknown_mode_and_style():
    rejects(PODS, r"^pod_network_mode: 'overlay'", mode="overlay")
    rejects(PODS, r"^pod_network_gateway_style: 'bgp'", mode="routed", gateway_style="bgp")


def test_pod_wiring_rejects_duplicate_name_and_veth():
    rejects([{"name": "pod1"}, {"name": "pod2"}, {"name": "pod1"}],
            r"^podnet_pods\[2\]\.name: pod1 is also used by podnet_pods\[0\]$")
    rejects([{"name": "pod1", "veth": "v1"}, {"name": "pod2", "veth": "v1"}],
            r"^podnet_pods\[1\]\.veth: v1 is also used by podnet_pods\[0\]$")


@pytest.mark.parametrize("veth", ["veth-0123456789ab", "veth-host"])
def test_pod_wiring_rejects_bad_veth(veth):
    rejects([{"name": "pod1", "veth": veth}], r"^podnet_pods\[0\]\.veth: ")


@pytest.mark.parametrize("pod", [{"ip": "192.168.10.1"}, {}, "pod1", None])
def test_pod_wiring_rejects_missing_name(pod):
    rejects([{"name": "pod1"}, pod], r"^podnet_pods\[1\]: each pod needs a 'name'")


def test_pod_wiring_rejects_unallocated_pod():
    rejects([{"name": "pod9"}], r"^podnet_pods\[0\]: pod pod9 has no address allocated")


@pytest.mark.parametrize("cidr", ["192.168.10.0/31", "192.168.10.1/24", "pods"])
def test_pod_wiring_rejects_bad_cidr(cidr):
    rejects([], r"^podnet_pod_cidr: ", cidr=cidr)


def test_pod_wiring_ipv6_default_route():
    veths = pod_wiring([{"name": "pod1"}], [{"name": "pod1", "ip": "fd00::1"}], "fd00::/64")["veths"]
    assert veths[0]["peer_routes"] == [{"dst": "::/0", "via": "fd00::ffff:ffff:ffff:fffe"}]


# --- worker_pod_cidrs, static_routes ----------------------------------------------

LAB = {
    "leaf03": {"podnet_leaf_subnets": [{"name": "vlan210", "address": "192.168.210.254/24"},
                                       {"name": "vlan230", "address": "192.168.230.254/24"}]},
    "worker1": {"podnet_node_ip": "192.168.210.21", "podnet_pod_cidr": "192.168.10.0/24"},
    "worker2": {"podnet_node_ip": "192.168.210.22", "podnet_pod_cidr": "192.168.20.0/24"},
    "worker3": {"podnet_node_ip": "192.168.230.23", "podnet_pod_cidr": "192.168.30.0/24"},
}
LAB_GROUPS = {"leaf": ["leaf03"], "workers": ["worker1", "worker2", "worker3"]}
LAB_CIDRS = {"worker1": "192.168.10.0/24", "worker2": "192.168.20.0/24", "worker3": "192.168.30.0/24"}


def test_worker_pod_cidrs_given_or_split():
    assert worker_pod_cidrs(LAB, LAB_GROUPS["workers"]) == LAB_CIDRS
    split = {w: {"podnet_cluster_cidr": "10.244.0.0/16"} for w in LAB_GROUPS["workers"]}
    assert worker_pod_cidrs(split, LAB_GROUPS["workers"])["worker3"] == "10.244.2.0/24"
    with pytest.raises(AnsibleFilterError, match=r"^worker1: podnet_pod_cidr: not set"):
        worker_pod_cidrs({"worker1": {}}, ["worker1"])


def test_static_routes_seed_lab_8():
    assert static_routes("worker1", LAB, LAB_GROUPS, LAB_CIDRS) == [
        {"dst": "192.168.20.0/24", "via": "192.168.210.22"},    # same subnet: direct
        {"dst": "192.168.30.0/24", "via": "192.168.210.254"},   # other subnet: through the leaf
    ]
    assert static_routes("worker3", LAB, LAB_GROUPS, LAB_CIDRS) == [
        {"dst": "192.168.10.0/24", "via": "192.168.230.254"},
        {"dst": "192.168.20.0/24", "via": "192.168.230.254"},
    ]
    assert static_routes("leaf03", LAB, LAB_GROUPS, LAB_CIDRS) == [
        {"dst": "192.168.10.0/24", "via": "192.168.210.21"},
        {"dst": "192.168.20.0/24", "via": "192.168.210.22"},
        {"dst": "192.168.30.0/24", "via": "192.168.230.23"},
    ]


def test_static_routes_without_a_leaf_need_a_gateway():
    hostvars = {w: dict(LAB[w]) for w in LAB_CIDRS}
    with pytest.raises(AnsibleFilterError, match=r"^worker1: cross_node_gateway: "):
        static_routes("worker1", hostvars, {"workers": list(LAB_CIDRS)}, LAB_CIDRS)
    hostvars["worker1"]["cross_node_gateway"] = "192.168.210.1"
    assert static_routes("worker1", hostvars, {"workers": list(LAB_CIDRS)}, LAB_CIDRS)[0]["via"] == "192.168.210.1"
