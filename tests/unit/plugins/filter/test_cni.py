"""Unit tests for plugins/filter/cni.py (the host-local range set of the CNI config)."""
from __future__ import annotations

import ipaddress

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.filter.cni import FilterModule, cni_ranges

CIDR = "192.168.10.0/24"
GATEWAY = "192.168.10.254"


def spans(ranges):
    return [(r["rangeStart"], r["rangeEnd"]) for r in ranges]


def addresses(ranges):
    """Every address host-local may hand out from these ranges."""
    out = []
    for r in ranges:
        low, high = ipaddress.ip_address(r["rangeStart"]), ipaddress.ip_address(r["rangeEnd"])
        out += [str(low + i) for i in range(int(high) - int(low) + 1)]
    return out


def test_lab_worker1_leaves_holes_for_its_pods_and_gateway():
    ranges = cni_ranges(CIDR, ["192.168.10.1", "192.168.10.3"], GATEWAY)
    assert ranges == [
        {"subnet": CIDR, "rangeStart": "192.168.10.2", "rangeEnd": "192.168.10.2", "gateway": GATEWAY},
        {"subnet": CIDR, "rangeStart": "192.168.10.4", "rangeEnd": "192.168.10.253", "gateway": GATEWAY},
    ]


@pytest.mark.parametrize("reserved", [None, []])
def test_no_pods_gives_the_subnet_minus_the_gateway(reserved):
    assert spans(cni_ranges(CIDR, reserved, GATEWAY)) == [("192.168.10.1", "192.168.10.253")]


@pytest.mark.parametrize("cidr, reserved, gateway, expected", [
    # Reserved at both ends of the usable span: no empty range before or after.
    (CIDR, ["192.168.10.1", "192.168.10.253"], GATEWAY, [("192.168.10.2", "192.168.10.252")]),
    # Adjacent reserved addresses make one hole, not an empty range.
    (CIDR, ["192.168.10.5", "192.168.10.6", "192.168.10.7"], GATEWAY,
     [("192.168.10.1", "192.168.10.4"), ("192.168.10.8", "192.168.10.253")]),
    # Unsorted and duplicated input.
    (CIDR, ["192.168.10.9", "192.168.10.2", "192.168.10.9"], GATEWAY,
     [("192.168.10.1", "192.168.10.1"), ("192.168.10.3", "192.168.10.8"), ("192.168.10.10", "192.168.10.253")]),
    # The gateway listed again, and the network and broadcast addresses: harmless.
    (CIDR, [GATEWAY, "192.168.10.0", "192.168.10.255"], GATEWAY, [("192.168.10.1", "192.168.10.253")]),
    # A gateway in the middle of the subnet.
    ("10.0.0.0/29", [], "10.0.0.3", [("10.0.0.1", "10.0.0.2"), ("10.0.0.4", "10.0.0.6")]),
    # The smallest pod CIDR: one address for pods, one for the gateway.
    ("10.0.0.0/30", [], "10.0.0.2", [("10.0.0.1", "10.0.0.1")]),
    # IPv6 keeps the last address, as host-local does.
    ("fd00::/120", ["fd00::1"], "fd00::fe", [("fd00::2", "fd00::fd"), ("fd00::ff", "fd00::ff")]),
    ("fd00::/64", [], "fd00::ffff:ffff:ffff:fffe",
     [("fd00::1", "fd00::ffff:ffff:ffff:fffd"), ("fd00::ffff:ffff:ffff:ffff", "fd00::ffff:ffff:ffff:ffff")]),
    # The very last IPv6 address reserved: no overflow past the end of the address space.
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
     [("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff01", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd")]),
])
def test_ranges(cidr, reserved, gateway, expected):
    ranges = cni_ranges(cidr, reserved, gateway)
    assert spans(ranges) == expected
    assert all(r["subnet"] == cidr and r["gateway"] == gateway for r in ranges)


def test_ranges_cover_exactly_the_free_addresses():
    network = ipaddress.ip_network(CIDR)
    reserved = [str(network[i]) for i in (1, 2, 3, 17, 100, 101, 200, 253)]
    got = addresses(cni_ranges(CIDR, reserved, GATEWAY))
    want = [str(ip) for ip in network.hosts() if str(ip) not in reserved + [GATEWAY]]
    assert got == want


def test_ranges_are_ordered_and_do_not_overlap():
    # host-local rejects a range set whose ranges overlap.
    ranges = cni_ranges(CIDR, ["192.168.10.50", "192.168.10.10", "192.168.10.11"], GATEWAY)
    bounds = [(ipaddress.ip_address(r["rangeStart"]), ipaddress.ip_address(r["rangeEnd"])) for r in ranges]
    assert all(low <= high for low, high in bounds)
    assert all(prev[1] < nxt[0] for prev, nxt in zip(bounds, bounds[1:]))


def test_filter_is_registered():
    assert FilterModule().filters() == {"cni_ranges": cni_ranges}


# --- bad input: the field is named, nothing is guessed ------------------------

def rejects(message, cidr=CIDR, reserved=(), gateway=GATEWAY):
    with pytest.raises(AnsibleFilterError, match=message):
        cni_ranges(cidr, list(reserved) if isinstance(reserved, tuple) else reserved, gateway)


@pytest.mark.parametrize("cidr", ["192.168.10.1/24", "192.168.10.0/33", "pods", "", None, 24])
def test_rejects_bad_cidr(cidr):
    rejects(r"^cni_config_pod_cidr: .* is not a valid network", cidr=cidr)


@pytest.mark.parametrize("cidr", ["10.0.0.0/31", "10.0.0.1/32", "fd00::1/128"])
def test_rejects_cidr_without_usable_address(cidr):
    rejects(r"^cni_config_pod_cidr: .* has no usable address", cidr=cidr, gateway="10.0.0.1")


@pytest.mark.parametrize("ip", ["pod1", "192.168.10.1/24", "", None, 1, True])
def test_rejects_bad_reserved_ip(ip):
    rejects(r"^cni_config_reserved_ips\[1\]: .* is not an IP address$", reserved=["192.168.10.9", ip])


@pytest.mark.parametrize("ip", ["192.168.11.1", "10.0.0.1", "fd00::1"])
def test_rejects_reserved_ip_outside_cidr(ip):
    rejects(r"^cni_config_reserved_ips\[0\]: .* is not in cni_config_pod_cidr 192\.168\.10\.0/24$", reserved=[ip])


@pytest.mark.parametrize("reserved", ["192.168.10.1", {"ip": "192.168.10.1"}, 3])
def test_rejects_reserved_that_is_not_a_list(reserved):
    rejects(r"^cni_config_reserved_ips: expected a list of addresses", reserved=reserved)


@pytest.mark.parametrize("gateway, message", [
    ("192.168.10.255", "is not a usable address"),
    ("192.168.10.0", "is not a usable address"),
    ("192.168.11.254", "is not in cni_config_pod_cidr"),
    ("router", "is not an IP address"),
    (None, "is not an IP address"),
])
def test_rejects_bad_gateway(gateway, message):
    rejects(rf"^gateway: .* {message}", gateway=gateway)


def test_rejects_a_full_subnet():
    rejects(r"^cni_config_reserved_ips: every usable address of 10\.0\.0\.0/30 is reserved",
            cidr="10.0.0.0/30", reserved=["10.0.0.1"], gateway="10.0.0.2")
