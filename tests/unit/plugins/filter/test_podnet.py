"""Unit tests for plugins/filter/podnet.py (IPAM and topology filters)."""
from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.filter.podnet import (
    FilterModule,
    cluster_cidrs,
    cross_node_plan,
    holds,
    node_interfaces,
    node_pod_cidr,
    pod_gateway,
    pod_mtu,
    pod_wiring,
    static_routes,
    sysctl_modules,
    tunnel_address,
    veth_name,
    vtep_mac,
    worker_pod_cidrs,
)

CIDR = "192.168.10.0/24"


# --- pod_gateway --------------------------------------------------------------

@pytest.mark.parametrize("cidr, gateway", [
    ("192.168.10.0/24", "192.168.10.254"),
    ("10.244.1.0/25", "10.244.1.126"),
    ("10.244.0.0/16", "10.244.255.254"),
    ("10.0.0.0/30", "10.0.0.2"),
    ("fd00::/64", "fd00::1"),  # IPv6: the first address, as the CNI bridge plugin
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


@pytest.mark.parametrize("pods, args, names", [
    ([{"name": "pod1"}, {"name": "pod2", "veth": "vp2"}], ("bridge", "br0"), ["br0", veth_name("pod1"), "vp2"]),
    ([{"name": "pod1"}], ("routed", "br0", "veth_gateway", ["vxlan100", ""]),
     sorted([veth_name("pod1"), "veth-host", "veth-net", "vxlan100"])),
    ([{"name": "pod1"}], ("routed", "br0", "proxy_arp", ["ipip0"]), ["ipip0", veth_name("pod1")]),
    ([], ("routed",), []),
])
def test_node_interfaces_names_every_link_of_ours_in_the_nodes_namespace(pods, args, names):
    assert node_interfaces(pods, *args) == names


@pytest.mark.parametrize("sysctls, modules", [
    ({"net.ipv4.ip_forward": 1}, []),
    ({"net.bridge.bridge-nf-call-iptables": 1, "net.bridge.bridge-nf-call-ip6tables": 1}, ["br_netfilter"]),
    ({"net.netfilter.nf_conntrack_tcp_timeout_established": 86400, "net.bridge.bridge-nf-call-iptables": 1},
     ["br_netfilter", "nf_conntrack"]),
    (None, []),
])
def test_sysctl_modules_names_the_modules_a_sysctl_needs_at_boot(sysctls, modules):
    assert sysctl_modules(sysctls) == modules


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"pod_gateway", "veth_name", "node_pod_cidr", "worker_pod_cidrs", "worker_pod_cidrs6", "cluster_cidrs",
                                             "pod_wiring", "node_interfaces", "sysctl_modules", "static_routes", "pod_mtu", "vtep_mac", "tunnel_address",
                                             "cross_node_plan", "holds"}


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
        {"name": veth_name("pod1"), "peer": "eth0", "peer_netns": "pod1", "mtu": 1450, "peer_mac": "0a:58:c0:a8:0a:01",
         "master": "br0", "hairpin": True, "peer_addresses": ["192.168.10.1/24"],
         "peer_routes": [{"dst": "default", "via": "192.168.10.254"}]},
        {"name": "veth-pod2", "peer": "eth0", "peer_netns": "pod2", "mtu": 1450, "peer_mac": "0a:58:c0:a8:0a:02",
         "master": "br0",
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
    veths = pod_wiring([{"name": "pod1"}], [{"name": "pod1", "ip": "fd00::2"}], "fd00::/64")["veths"]
    assert veths[0]["peer_routes"] == [{"dst": "::/0", "via": "fd00::1"}]


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


def test_cluster_cidrs_are_the_cluster_cidr_when_given_else_every_workers():
    assert cluster_cidrs(LAB, LAB_GROUPS["workers"]) == list(LAB_CIDRS.values())
    assert cluster_cidrs(LAB, LAB_GROUPS["workers"], "10.244.0.0/16") == ["10.244.0.0/16"]
    with pytest.raises(AnsibleFilterError, match=r"^worker1: podnet_pod_cidr: not set"):
        cluster_cidrs({"worker1": {}}, ["worker1"])


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


# --- cross-node: pod_mtu, vtep_mac, tunnel_address, cross_node_plan (seed labs 6-8) ----------

@pytest.mark.parametrize("node_mtu, method, node_ip, mtu", [
    (9000, "static", None, 9000), ("9000", "none", None, 9000), (9000, "bgp", None, 9000),
    (9000, "ipip", "192.168.210.22", 8980), (9000, "vxlan", "192.168.210.22", 8950), (1500, "vxlan", None, 1450),
    (9000, "vxlan", "fd00::22", 8930),
])
def test_pod_mtu_leaves_room_for_the_encapsulation(node_mtu, method, node_ip, mtu):
    assert pod_mtu(node_mtu, method, node_ip) == mtu


def test_pod_mtu_errors():
    with pytest.raises(AnsibleFilterError, match=r"^cross_node_method: 'gre' is not one of none, static, ipip, vxlan"):
        pod_mtu(9000, "gre")
    with pytest.raises(AnsibleFilterError, match=r"^podnet_node_mtu: 100 leaves no room for pods with vxlan"):
        pod_mtu(100, "vxlan")
    with pytest.raises(AnsibleFilterError, match=r"^podnet_node_mtu: 'jumbo' is not a whole number"):
        pod_mtu("jumbo", "static")


def test_vtep_mac_is_derived_from_the_node_address_alone():
    # A rebuilt node gets the same MAC, so its peers' FDB entries stay right.
    assert vtep_mac("192.168.210.22") == vtep_mac("192.168.210.22") == "0e:00:c0:a8:d2:16"
    assert vtep_mac("192.168.230.23") == "0e:00:c0:a8:e6:17"
    six = vtep_mac("fd00::22")
    assert re.fullmatch(r"0e(:[0-9a-f]{2}){5}", six) and six != vtep_mac("fd00::23")
    first = int(six[:2], 16)
    assert first & 1 == 0 and first & 2 == 2  # unicast, locally administered
    with pytest.raises(AnsibleFilterError, match=r"^podnet_node_ip: 'worker1' is not an IP address"):
        vtep_mac("worker1")


def test_tunnel_address_is_the_pod_cidr_network_address():
    assert tunnel_address("192.168.20.0/24") == "192.168.20.0"
    assert tunnel_address("fd00:20::/64") == "fd00:20::"
    with pytest.raises(AnsibleFilterError, match=r"^podnet_pod_cidr: '192\.168\.20\.1/24' is not a valid network"):
        tunnel_address("192.168.20.1/24")


def plan(host, method, encapsulation="always", **settings):
    return cross_node_plan(host, LAB, LAB_GROUPS, LAB_CIDRS, dict(
        settings, method=method, encapsulation=encapsulation, underlay_mtu="9000", underlay_interface="enp0s9"))


def test_static_plan_is_lab_8_with_routes_on_the_leaf():
    assert plan("worker1", "static")["routes"] == static_routes("worker1", LAB, LAB_GROUPS, LAB_CIDRS)
    assert plan("worker1", "static")["paths"] == {"worker2": "direct", "worker3": "routed"}
    assert len(plan("leaf03", "static")["routes"]) == 3
    assert plan("leaf03", "static", manage_leaf=False)["routes"] == []
    assert plan("worker3", "static", gateway="192.168.230.1")["routes"][0]["via"] == "192.168.230.1"


@pytest.mark.parametrize("method", ["none", "bgp"])
def test_no_method_of_ours_makes_nothing(method):
    for host in ("worker1", "leaf03"):
        assert plan(host, method) == {"routes": [], "tunnels": [], "vxlans": [], "paths": {}}


def test_ipip_always_is_lab_6_with_every_peer_tunnelled():
    got = plan("worker2", "ipip")
    assert got["tunnels"] == [{"name": "ipip0", "local": "192.168.210.22", "mtu": 8980, "addresses": ["192.168.20.0/32"]}]
    assert got["routes"] == [
        {"dst": "192.168.10.0/24", "via": "192.168.210.21", "dev": "ipip0", "onlink": True},
        {"dst": "192.168.30.0/24", "via": "192.168.230.23", "dev": "ipip0", "onlink": True},
    ]
    assert got["vxlans"] == [] and plan("leaf03", "ipip")["routes"] == []  # the leaf sees node addresses only


def test_ipip_cross_subnet_is_the_seeds_lab_6():
    # seed: ip route add 192.168.10.0/24 via 192.168.210.21 dev enp0s9
    #       ip route add 192.168.30.0/24 via 192.168.230.23 dev ipip0 onlink
    got = plan("worker2", "ipip", "cross_subnet")
    assert got["routes"] == [
        {"dst": "192.168.10.0/24", "via": "192.168.210.21"},
        {"dst": "192.168.30.0/24", "via": "192.168.230.23", "dev": "ipip0", "onlink": True},
    ]
    assert got["paths"] == {"worker1": "direct", "worker3": "ipip0"}
    assert plan("worker3", "ipip", "cross_subnet")["paths"] == {"worker1": "ipip0", "worker2": "ipip0"}


def test_vxlan_is_lab_7_with_a_peer_entry_per_tunnelled_node():
    got = plan("worker2", "vxlan", "cross_subnet", vxlan_vni=100, vxlan_port=4789)
    assert got["vxlans"] == [{
        "name": "vxlan100", "vni": 100, "port": 4789, "local": "192.168.210.22", "dev": "enp0s9", "learning": False,
        "mtu": 8950, "mac": "0e:00:c0:a8:d2:16", "addresses": ["192.168.20.0/32"],
        "peers": [{"mac": "0e:00:c0:a8:e6:17", "dst": "192.168.230.23", "ip": "192.168.30.0"}],
    }]
    assert got["routes"] == [
        {"dst": "192.168.10.0/24", "via": "192.168.210.21"},
        {"dst": "192.168.30.0/24", "via": "192.168.30.0", "dev": "vxlan100", "onlink": True},
    ]
    always = plan("worker2", "vxlan", vxlan_device="vx7", vxlan_vni=7)
    assert [p["dst"] for p in always["vxlans"][0]["peers"]] == ["192.168.210.21", "192.168.230.23"]
    assert always["vxlans"][0]["name"] == "vx7" and always["vxlans"][0]["vni"] == 7
    assert {r["dev"] for r in always["routes"]} == {"vx7"}


def test_a_removed_worker_leaves_no_entry_in_any_plan():
    groups = {"leaf": ["leaf03"], "workers": ["worker1", "worker2"]}
    cidrs = {w: LAB_CIDRS[w] for w in groups["workers"]}
    for method in ("static", "ipip", "vxlan"):
        for host in ("worker1", "worker2", "leaf03"):
            got = cross_node_plan(host, LAB, groups, cidrs, {"method": method, "underlay_mtu": 9000})
            assert "192.168.30." not in str(got) and "192.168.230.23" not in str(got), (method, host, got)


def test_cross_node_plan_errors():
    with pytest.raises(AnsibleFilterError, match=r"^cross_node_encapsulation: 'sometimes' is not one of"):
        plan("worker1", "ipip", "sometimes")
    with pytest.raises(AnsibleFilterError, match=r"^cross_node_method: 'gre' is not one of"):
        plan("worker1", "gre")
    hostvars = {w: dict(LAB[w]) for w in LAB_CIDRS}
    with pytest.raises(AnsibleFilterError, match=r"^worker1: cross_node_encapsulation: cross_subnet needs the "
                                                 r"underlay subnets"):
        cross_node_plan("worker1", hostvars, {"workers": list(LAB_CIDRS)}, LAB_CIDRS,
                        {"method": "vxlan", "encapsulation": "cross_subnet"})


HELD = {"links": {"bridge": ["br0"]}, "route_protocols": [2, 201], "network_policy": [], "restore_records": ["70-ipip"],
        "paths": ["/run/bird/bird.pid"]}


@pytest.mark.parametrize("held, args, kwargs, answer", [
    (HELD, ("links", "bridge"), {}, True),
    (HELD, ("links", "vxlan_fdb"), {}, False),
    ({**HELD, "links": {"provisional": ["hcni-0123456789"]}}, ("links", "vxlan_fdb"), {}, True),  # any maker's
    (HELD, ("route_protocols", 201), {}, True),
    (HELD, ("route_protocols", "202"), {}, False),
    (HELD, ("network_policy",), {}, False),
    (HELD, ("paths", ["/etc/frr/handcni", "/run/bird/bird.pid"]), {}, True),
    (HELD, ("paths", "/etc/frr/handcni"), {}, False),
    (HELD, ("links", "ipip_tunnel"), {"record": "70-ipip"}, True),  # its restore record would make it again
    (HELD, ("links", "ipip_tunnel"), {"record": "71-vxlan"}, False),
    # without node_info's answer the call runs
    (None, ("links", "bridge"), {}, True),
    ({"skipped": True, "changed": False}, ("links", "bridge"), {}, True),
    ({"failed": True, "msg": "x"}, ("network_policy",), {}, True),
    ({"paths": []}, ("links", "bridge"), {}, True),  # objects not read
])
def test_holds_answers_yes_unless_node_info_says_nothing_of_that_kind_is_there(held, args, kwargs, answer):
    assert holds(held, *args, **kwargs) is answer
