"""Unit tests for plugins/filter/podnet.py (IPAM and topology filters)."""
from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.filter.podnet import FilterModule, pod_gateway, pod_veths, veth_name

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
    assert set(FilterModule().filters()) == {"pod_gateway", "veth_name", "pod_veths"}


# --- pod_veths ----------------------------------------------------------------

def test_pod_veths_happy_path():
    pods = [{"name": "pod1", "ip": "192.168.10.1"}, {"name": "pod2", "ip": "192.168.10.2", "veth": "veth-pod2"}]
    assert pod_veths(pods, CIDR, "br0", 1450) == [
        {
            "name": veth_name("pod1"), "peer": "eth0", "peer_netns": "pod1", "master": "br0",
            "hairpin": True, "mtu": 1450, "peer_addresses": ["192.168.10.1/24"],
            "peer_routes": [{"dst": "default", "via": "192.168.10.254"}],
        },
        {
            "name": "veth-pod2", "peer": "eth0", "peer_netns": "pod2", "master": "br0",
            "hairpin": True, "mtu": 1450, "peer_addresses": ["192.168.10.2/24"],
            "peer_routes": [{"dst": "default", "via": "192.168.10.254"}],
        },
    ]


def test_pod_veths_hairpin_off():
    assert pod_veths([{"name": "pod1", "ip": "192.168.10.1"}], CIDR, "br0", 1500, hairpin=False)[0]["hairpin"] is False


@pytest.mark.parametrize("pods", [None, []])
def test_pod_veths_no_pods(pods):
    assert pod_veths(pods, CIDR, "br0", 1500) == []


def rejects(pods, message, cidr=CIDR):
    with pytest.raises(AnsibleFilterError, match=message):
        pod_veths(pods, cidr, "br0", 1500)


@pytest.mark.parametrize("ip", ["192.168.11.1", "10.0.0.1", "fd00::1"])
def test_pod_veths_rejects_ip_outside_cidr(ip):
    rejects([{"name": "pod1", "ip": ip}], r"^podnet_pods\[0\]\.ip: .* not a usable address of the node's pod CIDR")


@pytest.mark.parametrize("ip", ["192.168.10.0", "192.168.10.255"])
def test_pod_veths_rejects_network_and_broadcast(ip):
    rejects([{"name": "pod1", "ip": ip}], r"^podnet_pods\[0\]\.ip: .* not a usable address")


def test_pod_veths_rejects_gateway():
    rejects([{"name": "pod1", "ip": "192.168.10.254"}], r"^podnet_pods\[0\]\.ip: 192\.168\.10\.254 is the pods' gateway")


@pytest.mark.parametrize("ip", ["pod1", "192.168.10.1/24", None])
def test_pod_veths_rejects_bad_ip(ip):
    rejects([{"name": "pod1", "ip": ip}], r"^podnet_pods\[0\]\.ip: .* is not an IP address")


def test_pod_veths_rejects_duplicate_name():
    pods = [{"name": "pod1", "ip": "192.168.10.1"}, {"name": "pod2", "ip": "192.168.10.2"},
            {"name": "pod1", "ip": "192.168.10.3"}]
    rejects(pods, r"^podnet_pods\[2\]\.name: pod1 is also used by podnet_pods\[0\]$")


def test_pod_veths_rejects_duplicate_ip():
    pods = [{"name": "pod1", "ip": "192.168.10.1"}, {"name": "pod2", "ip": "192.168.10.1"}]
    rejects(pods, r"^podnet_pods\[1\]\.ip: 192\.168\.10\.1 is also used by podnet_pods\[0\]$")


@pytest.mark.parametrize("pod", [{"name": "pod1"}, {"ip": "192.168.10.1"}, {}, "pod1", None])
def test_pod_veths_rejects_missing_keys(pod):
    rejects([{"name": "pod0", "ip": "192.168.10.9"}, pod], r"^podnet_pods\[1\]: each pod needs 'name' and 'ip'")


def test_pod_veths_rejects_bad_cidr_through_pod_gateway():
    rejects([], r"^podnet_pod_cidr: .* too small", cidr="192.168.10.0/31")


@pytest.mark.parametrize("cidr", ["192.168.10.1/24", "pods"])
def test_pod_veths_rejects_malformed_cidr(cidr):
    rejects([], r"^podnet_pod_cidr: ", cidr=cidr)


def test_pod_veths_ipv6_default_route():
    veths = pod_veths([{"name": "pod1", "ip": "fd00::1"}], "fd00::/64", "br0", 1500)
    assert veths[0]["peer_routes"] == [{"dst": "::/0", "via": "fd00::ffff:ffff:ffff:fffe"}]
