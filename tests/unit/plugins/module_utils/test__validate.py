"""Unit tests for plugins/module_utils/_validate.py (pure input validation)."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _validate as validate

FIELD = "things[3].field"


def rejects(func, value):
    """Call func(value, FIELD), expect ValueError, and check the message names the field."""
    with pytest.raises(ValueError) as err:
        func(value, FIELD)
    assert str(err.value).startswith(f"{FIELD}")
    return str(err.value)


# --- ifname -------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "eth0",
    "br-pods",
    "veth86f7e437faa",     # exactly 15 bytes
    "a" * 15,
    "é" * 7 + "a",         # 15 bytes of UTF-8
    "a.b",
])
def test_ifname_accepts(value):
    assert validate.ifname(value, FIELD) == value


@pytest.mark.parametrize("value", [
    "",
    None,
    15,
    "a" * 16,              # 16 bytes
    "é" * 8,               # 8 characters but 16 bytes of UTF-8
    "veth/0",
    "eth0:1",
    "eth 0",
    "eth\t0",
    "eth0\n",
    ".",
    "..",
])
def test_ifname_rejects(value):
    rejects(validate.ifname, value)


def test_ifname_too_long_message_mentions_limit():
    assert "15 bytes" in rejects(validate.ifname, "é" * 8)


@pytest.mark.parametrize("value", ["eth\r0", "eth\x0b0", "eth\x0c0"])
def test_ifname_rejects_other_whitespace(value):
    rejects(validate.ifname, value)


# --- netns --------------------------------------------------------------------

@pytest.mark.parametrize("value", ["pod1", "ns_a.b-c", "A" * 64, "0"])
def test_netns_accepts(value):
    assert validate.netns(value, FIELD) == value


@pytest.mark.parametrize("value", ["", None, 1, "A" * 65, "a/b", "a b", "a:b", ".", "..", "pöd"])
def test_netns_rejects(value):
    rejects(validate.netns, value)


def test_netns_rejects_trailing_newline():
    rejects(validate.netns, "pod1\n")


# --- interface ----------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("192.168.10.1/24", "192.168.10.1/24"),
    ("192.168.10.0/24", "192.168.10.0/24"),
    ("10.0.0.1/32", "10.0.0.1/32"),
    ("10.0.0.1/255.255.255.0", "10.0.0.1/24"),
    ("2001:DB8:0::1/64", "2001:db8::1/64"),
])
def test_interface_normalises(value, expected):
    assert validate.interface(value, FIELD) == expected


@pytest.mark.parametrize("value", ["192.168.10.1", "192.168.10.1/33", "300.1.1.1/24", "eth0/24", "", None, 24])
def test_interface_rejects(value):
    rejects(validate.interface, value)


# --- network ------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("default", "0.0.0.0/0"),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("10.0.0.0/8", "10.0.0.0/8"),
    ("192.168.10.1/32", "192.168.10.1/32"),
    ("192.168.10.1", "192.168.10.1/32"),
    ("2001:DB8::/32", "2001:db8::/32"),
])
def test_network_normalises(value, expected):
    assert validate.network(value, FIELD) == expected


@pytest.mark.parametrize("value", ["10.0.0.1/8", "192.168.10.1/24", "2001:db8::1/32", "Default", "10.0.0.0/33", "", None])
def test_network_rejects(value):
    rejects(validate.network, value)


def test_network_host_bits_message():
    assert "host bits" in rejects(validate.network, "192.168.10.1/24")


# --- address ------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("192.168.10.254", "192.168.10.254"),
    ("2001:DB8:0:0::1", "2001:db8::1"),
])
def test_address_normalises(value, expected):
    assert validate.address(value, FIELD) == expected


@pytest.mark.parametrize("value", ["192.168.10.1/24", "192.168.10.256", "gateway", "", None])
def test_address_rejects(value):
    rejects(validate.address, value)


# --- mac ----------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("02:00:00:00:00:01", "02:00:00:00:00:01"),
    ("02:AB:cd:EF:00:FF", "02:ab:cd:ef:00:ff"),
    ("FE:FF:FF:FF:FF:FF", "fe:ff:ff:ff:ff:ff"),
])
def test_mac_normalises(value, expected):
    assert validate.mac(value, FIELD) == expected


@pytest.mark.parametrize("value", [
    "02-00-00-00-00-01",
    "02:00:00:00:00",
    "02:00:00:00:00:01:02",
    "2:0:0:0:0:1",
    "02:00:00:00:00:0g",
    "",
    None,
    0x020000000001,
])
def test_mac_rejects_malformed(value):
    rejects(validate.mac, value)


@pytest.mark.parametrize("value", ["01:00:5e:00:00:01", "33:33:00:00:00:01", "FF:FF:FF:FF:FF:FF", "03:00:00:00:00:00"])
def test_mac_rejects_multicast(value):
    assert "multicast" in rejects(validate.mac, value)


def test_mac_rejects_trailing_newline():
    rejects(validate.mac, "02:00:00:00:00:01\n")


def test_mac_rejects_all_zero():
    rejects(validate.mac, "00:00:00:00:00:00")


# --- mtu ----------------------------------------------------------------------

@pytest.mark.parametrize("value", [68, 1500, 9000, 65535])
def test_mtu_accepts(value):
    assert validate.mtu(value, FIELD) == value


@pytest.mark.parametrize("value", [67, 65536, 0, -1, True, False, "1500", 1500.0, None])
def test_mtu_rejects(value):
    assert "68..65535" in rejects(validate.mtu, value)


# --- unique -------------------------------------------------------------------

def test_unique_accepts_distinct():
    assert validate.unique([{"name": "a"}, {"name": "b"}, {"name": "c"}], "name", "bridges") is None


def test_unique_accepts_empty():
    assert validate.unique([], "name", "bridges") is None


def test_unique_names_the_second_occurrence():
    with pytest.raises(ValueError, match=r"^bridges\[2\]\.name: 'a' is listed twice$"):
        validate.unique([{"name": "a"}, {"name": "b"}, {"name": "a"}], "name", "bridges")
