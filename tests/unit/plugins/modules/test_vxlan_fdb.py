"""Unit tests for the vxlan_fdb module's pure parts: normalising and validating input, and the views
its diff is made of."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.modules.vxlan_fdb import describe_params, normalise, public

GOOD = {
    "name": "vxlan100", "vni": 100, "port": 4789, "local": "192.168.210.22", "dev": "enp0s9", "learning": False,
    "mtu": 8950, "mac": "0E:00:C0:A8:D2:16", "addresses": ["192.168.20.0/32"],
    "peers": [{"mac": "0e:00:c0:a8:e6:17", "dst": "192.168.230.23", "ip": "192.168.30.0"},
              {"mac": "0e:00:c0:a8:d2:15", "dst": "192.168.210.21"}],
}


def test_normalise_the_seed_device():
    want = normalise(GOOD, "vxlans[0]", "present")
    assert want["mac"] == "0e:00:c0:a8:d2:16"
    assert want["fdb"] == {
        "0e:00:c0:a8:e6:17": {"mac": "0e:00:c0:a8:e6:17", "dst": "192.168.230.23", "port": 4789, "vni": 100},
        "0e:00:c0:a8:d2:15": {"mac": "0e:00:c0:a8:d2:15", "dst": "192.168.210.21", "port": 4789, "vni": 100},
    }
    assert want["neighbours"] == {"192.168.30.0": "0e:00:c0:a8:e6:17"}  # the second peer has no ip
    view = public(want)
    assert view["fdb"][0]["mac"] == "0e:00:c0:a8:d2:15"  # sorted
    assert view["neighbours"] == [{"ip": "192.168.30.0", "mac": "0e:00:c0:a8:e6:17"}]
    assert "local" in view and view["learning"] is False


def test_absent_needs_only_the_name():
    assert normalise({"name": "vxlan100", "vni": None}, "vxlans[0]", "absent") == {"name": "vxlan100"}


def bad(**changes):
    item = dict(GOOD, **changes)
    return item


@pytest.mark.parametrize("item, message", [
    (bad(vni=None), r"vxlans\[0\]\.vni: a VNI \(1\.\.16777215\) is required"),
    (bad(vni=0), r"vxlans\[0\]\.vni: VNI 0 is out of range"),
    (bad(vni=16777216), r"vxlans\[0\]\.vni: VNI 16777216 is out of range"),
    (bad(port=0), r"vxlans\[0\]\.port: UDP port 0 is out of range 1\.\.65535"),
    (bad(port=65536), r"vxlans\[0\]\.port: UDP port 65536"),
    (bad(name="vxlan-0123456789ab"), r"vxlans\[0\]\.name: interface name 'vxlan-0123456789ab' is longer than 15"),
    (bad(dev="enp0s9-underlay0"), r"vxlans\[0\]\.dev: interface name 'enp0s9-underlay0' is longer"),
    (bad(mac="0e:00:c0:a8:d2"), r"vxlans\[0\]\.mac: '0e:00:c0:a8:d2' is not a MAC address"),
    (bad(local="192.168.210.300"), r"vxlans\[0\]\.local: '192\.168\.210\.300' is not a valid IP address"),
    (bad(mtu=40), r"vxlans\[0\]\.mtu: MTU 40 is out of range"),
    (bad(addresses=["192.168.20.0"]), r"vxlans\[0\]\.addresses\[0\]: '192\.168\.20\.0' is not an address with a prefix"),
    (bad(peers=[{"mac": "zz:00:c0:a8:e6:17", "dst": "192.168.230.23"}]), r"vxlans\[0\]\.peers\[0\]\.mac: 'zz:00"),
    (bad(peers=[{"mac": "01:00:5e:00:00:01", "dst": "192.168.230.23"}]), r"vxlans\[0\]\.peers\[0\]\.mac: .* multicast"),
    (bad(peers=[{"mac": "0e:00:c0:a8:e6:17", "dst": "192.168.230"}]), r"vxlans\[0\]\.peers\[0\]\.dst: '192\.168\.230' is not"),
    (bad(peers=[{"mac": "0e:00:c0:a8:e6:17", "dst": "fd00::23"}]),
     r"vxlans\[0\]\.peers\[0\]\.dst: fd00::23 is not of the same address family as vxlans\[0\]\.local"),
    (bad(peers=[{"mac": "0e:00:c0:a8:e6:17", "dst": "192.168.230.23", "ip": "192.168.30"}]),
     r"vxlans\[0\]\.peers\[0\]\.ip: '192\.168\.30' is not a valid IP address"),
    (bad(peers=[{"mac": "0e:00:c0:a8:e6:17", "dst": "192.168.230.23"}, {"mac": "0E:00:C0:A8:E6:17", "dst": "192.168.230.24"}]),
     r"vxlans\[0\]\.peers\[1\]\.mac: 0e:00:c0:a8:e6:17 is also peers\[0\]'s"),
    (bad(peers=[{"mac": "0e:00:c0:a8:e6:17", "dst": "192.168.230.23", "ip": "192.168.30.0"},
                {"mac": "0e:00:c0:a8:e6:18", "dst": "192.168.230.24", "ip": "192.168.30.0"}]),
     r"vxlans\[0\]\.peers\[1\]\.ip: 192\.168\.30\.0 is listed twice"),
])
def test_bad_input_names_the_field(item, message):
    with pytest.raises(ValueError, match="^" + message):
        normalise(item, "vxlans[0]", "present")


def test_describe_params():
    want = normalise(GOOD, "vxlans[0]", "present")
    assert describe_params(want) == "vni 100, port 4789, local 192.168.210.22, dev enp0s9, nolearning"
    have = {"vni": 200, "port": 4789, "local": "192.168.210.22", "dev": "enp0s9", "learning": True}
    assert describe_params(want, have) == "vni 200 -> 100, learning True -> False"
