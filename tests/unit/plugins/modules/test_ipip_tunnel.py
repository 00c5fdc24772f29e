"""Unit tests for the ipip_tunnel module's pure parts."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.modules.ipip_tunnel import describe_params, normalise, public

SEED = {"name": "ipip0", "local": "192.168.210.22", "ttl": 0, "mtu": 8980, "addresses": ["192.168.20.0/32"]}


def test_normalise_the_seed_tunnel():
    want = normalise(SEED, "tunnels[0]", "present")
    assert want == {"name": "ipip0", "local": "192.168.210.22", "remote": None, "ttl": 0, "mtu": 8980,
                    "addresses": ["192.168.20.0/32"], "up": True}
    assert public(want) == {"name": "ipip0", "local": "192.168.210.22", "ttl": 0, "mtu": 8980,
                            "addresses": ["192.168.20.0/32"], "up": True}


@pytest.mark.parametrize("changes, message", [
    ({"local": None}, r"tunnels\[0\]\.local: the node's underlay IPv4 address is required"),
    ({"local": "fd00::22"}, r"tunnels\[0\]\.local: 'fd00::22' is not an IPv4 address"),
    ({"remote": "192.168.230.300"}, r"tunnels\[0\]\.remote: '192\.168\.230\.300' is not a valid IP address"),
    ({"ttl": 256}, r"tunnels\[0\]\.ttl: TTL 256 is out of range 0\.\.255"),
    ({"mtu": 65536}, r"tunnels\[0\]\.mtu: MTU 65536 is out of range"),
    ({"name": "ipip-0123456789ab"}, r"tunnels\[0\]\.name: interface name 'ipip-0123456789ab' is longer than 15 bytes"),
    ({"name": "tunl0"}, r"tunnels\[0\]\.name: tunl0 is the kernel's fallback tunnel"),
    ({"addresses": ["192.168.20.0/33"]}, r"tunnels\[0\]\.addresses\[0\]: '192\.168\.20\.0/33' is not a valid address"),
])
def test_bad_input_names_the_field(changes, message):
    with pytest.raises(ValueError, match="^" + message):
        normalise(dict(SEED, **changes), "tunnels[0]", "present")


def test_describe_params():
    want = normalise(dict(SEED, remote="192.168.230.23", ttl=64), "tunnels[0]", "present")
    assert describe_params(want) == "local 192.168.210.22, remote 192.168.230.23, ttl 64"
    have = {"local": "192.168.210.22", "remote": None, "ttl": 0}
    assert describe_params(want, have) == "remote any -> 192.168.230.23, ttl inherit -> 64"
