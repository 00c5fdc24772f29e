"""Unit tests for the pure parts of plugins/module_utils/_tunnels.py: validation, normalising what
the kernel reports about tunnels and FDB entries, and planning the entry sets."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _tunnels as tunnels

DEVICE = {"vni": 100, "port": 4789}


@pytest.mark.parametrize("value", [1, 100, 16777215])
def test_vni_in_range(value):
    assert tunnels.vni(value, "vxlans[0].vni") == value


@pytest.mark.parametrize("value", [0, -1, 16777216, True, "100", None])
def test_vni_out_of_range_names_the_field(value):
    with pytest.raises(ValueError, match=r"^vxlans\[0\]\.vni: VNI .* is out of range 1\.\.16777215$"):
        tunnels.vni(value, "vxlans[0].vni")


@pytest.mark.parametrize("value", [0, 65536, -4789, False])
def test_port_out_of_range(value):
    with pytest.raises(ValueError, match=r"^vxlans\[0\]\.port: UDP port .* is out of range 1\.\.65535$"):
        tunnels.port(value, "vxlans[0].port")


@pytest.mark.parametrize("value", [0, 64, 255])
def test_ttl(value):
    assert tunnels.ttl(value, "t") == value


def test_ttl_out_of_range():
    with pytest.raises(ValueError, match=r"^tunnels\[0\]\.ttl: TTL 256 is out of range 0\.\.255$"):
        tunnels.ttl(256, "tunnels[0].ttl")


def test_ipv4_only_for_ipip():
    assert tunnels.ipv4("192.168.210.22", "local") == "192.168.210.22"
    with pytest.raises(ValueError, match=r"^tunnels\[0\]\.local: 'fd00::1' is not an IPv4 address"):
        tunnels.ipv4("fd00::1", "tunnels[0].local")
    with pytest.raises(ValueError, match=r"^tunnels\[0\]\.local: '192\.168\.210' is not a valid IP address"):
        tunnels.ipv4("192.168.210", "tunnels[0].local")


def test_same_family():
    tunnels.same_family("192.168.230.23", "192.168.210.22", "dst", "local")
    tunnels.same_family("192.168.230.23", None, "dst", "local")
    with pytest.raises(ValueError, match=r"^peers\[0\]\.dst: fd00::23 is not of the same address family as "
                                         r"vxlans\[0\]\.local 192\.168\.210\.22$"):
        tunnels.same_family("fd00::23", "192.168.210.22", "peers[0].dst", "vxlans[0].local")


@pytest.mark.parametrize("kind, local, overhead", [("ipip", "192.168.210.22", 20), ("vxlan", "192.168.210.22", 50),
                                                   ("vxlan", None, 50), ("vxlan", "fd00::22", 70)])
def test_overhead(kind, local, overhead):
    assert tunnels.overhead(kind, local) == overhead


class FakeAttrs:
    """Just enough of a pyroute2 message: get_attr()."""

    def __init__(self, **attrs):
        self.attrs = attrs

    def get_attr(self, name):
        return self.attrs.get(name)


def link(kind: str, **data):
    return FakeAttrs(IFLA_LINKINFO=FakeAttrs(IFLA_INFO_KIND=kind, IFLA_INFO_DATA=FakeAttrs(**data)))


def test_ipip_params_any_is_none():
    got = tunnels.ipip_params(link("ipip", IFLA_IPIP_LOCAL="192.168.210.22", IFLA_IPIP_REMOTE="0.0.0.0",
                                   IFLA_IPIP_TTL=0))
    assert got == {"local": "192.168.210.22", "remote": None, "ttl": 0}


def test_vxlan_params_names_the_underlay_and_defaults_the_port():
    got = tunnels.vxlan_params(link("vxlan", IFLA_VXLAN_ID=100, IFLA_VXLAN_LINK=2, IFLA_VXLAN_LOCAL="192.168.210.22",
                                    IFLA_VXLAN_LEARNING=0), {2: "enp0s9"})
    assert got == {"vni": 100, "port": 4789, "local": "192.168.210.22", "dev": "enp0s9", "learning": False}
    got = tunnels.vxlan_params(link("vxlan", IFLA_VXLAN_ID=7, IFLA_VXLAN_PORT=8472, IFLA_VXLAN_LOCAL6="fd00::1",
                                    IFLA_VXLAN_LEARNING=1), {})
    assert got == {"vni": 7, "port": 8472, "local": "fd00::1", "dev": None, "learning": True}


def test_fdb_entry_gets_the_vni_and_port_the_kernel_leaves_out():
    # The kernel omits NDA_VNI and NDA_PORT when they equal the device's.
    reported = {"NDA_LLADDR": "0e:00:c0:a8:e6:17", "NDA_DST": "192.168.230.23"}
    expected = {"mac": "0e:00:c0:a8:e6:17", "dst": "192.168.230.23", "port": 4789, "vni": 100}
    assert tunnels.normalise_fdb(reported, DEVICE) == expected
    other = dict(reported, NDA_VNI=200, NDA_PORT=4790)
    assert tunnels.normalise_fdb(other, DEVICE)["vni"] == 200 and tunnels.normalise_fdb(other, DEVICE)["port"] == 4790


W3 = tunnels.fdb_view("0e:00:c0:a8:e6:17", "192.168.230.23", 4789, 100)
W1 = tunnels.fdb_view("0e:00:c0:a8:d2:15", "192.168.210.21", 4789, 100)


def test_plan_fdb_nothing_to_do():
    assert tunnels.plan_fdb({W3["mac"]: W3}, {W3["mac"]: [W3]}, prune=True) == ([], [])


def test_plan_fdb_adds_changes_and_prunes_only_when_asked():
    moved = dict(W3, dst="192.168.230.99")
    have = {W3["mac"]: [moved], W1["mac"]: [W1]}
    assert tunnels.plan_fdb({W3["mac"]: W3}, have, prune=False) == ([W3], [])
    assert tunnels.plan_fdb({W3["mac"]: W3}, have, prune=True) == ([W3], [W1["mac"]])
    # another VNI on an entry is a difference too
    assert tunnels.plan_fdb({W3["mac"]: W3}, {W3["mac"]: [dict(W3, vni=200)]}, prune=False) == ([W3], [])
    # a MAC with two remotes becomes one
    assert tunnels.plan_fdb({W3["mac"]: W3}, {W3["mac"]: [W3, moved]}, prune=False) == ([W3], [])


def test_plan_neighbours():
    want = {"192.168.30.0": W3["mac"], "192.168.10.0": W1["mac"]}
    have = {"192.168.30.0": "0e:00:00:00:00:99", "192.168.40.0": "0e:00:00:00:00:40", "fd00::1": "0e:00:00:00:00:41"}
    put, delete = tunnels.plan_neighbours(want, have, prune=True)
    assert put == [("192.168.10.0", W1["mac"]), ("192.168.30.0", W3["mac"])]
    assert delete == ["192.168.40.0", "fd00::1"]
    assert tunnels.plan_neighbours(want, have, prune=False)[1] == []
    assert tunnels.plan_neighbours(want, dict(want), prune=True) == ([], [])


def test_ip_order_sorts_numerically_ipv4_first():
    assert sorted(["fd00::1", "192.168.100.0", "192.168.30.0"], key=tunnels.ip_order) == \
        ["192.168.30.0", "192.168.100.0", "fd00::1"]
