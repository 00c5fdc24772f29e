"""Unit tests for the ipam module's allocator (pure)."""
from __future__ import annotations

import time

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils._ipam import allocate, families, free_count, record_path

CIDR = "192.168.10.0/29"  # usable .1-.6, gateway .6 reserved below
GATEWAY = ["192.168.10.6"]


def test_fixed_then_lowest_free():
    pods = [{"name": "a"}, {"name": "b", "ip": "192.168.10.1"}, {"name": "c"}]
    assert allocate(CIDR, pods, GATEWAY, {}) == {"b": "192.168.10.1", "a": "192.168.10.2", "c": "192.168.10.3"}


def test_recorded_addresses_are_kept_and_removed_pods_free_theirs():
    recorded = {"a": "192.168.10.4", "gone": "192.168.10.1"}
    result = allocate(CIDR, [{"name": "a"}, {"name": "new"}], GATEWAY, recorded)
    assert result == {"a": "192.168.10.4", "new": "192.168.10.1"}


def test_fixed_address_wins_over_a_recorded_one():
    recorded = {"a": "192.168.10.1"}
    result = allocate(CIDR, [{"name": "a"}, {"name": "b", "ip": "192.168.10.1"}], GATEWAY, recorded)
    assert result == {"b": "192.168.10.1", "a": "192.168.10.2"}


def test_recorded_address_outside_a_new_cidr_is_replaced():
    assert allocate(CIDR, [{"name": "a"}], GATEWAY, {"a": "10.0.0.1"}) == {"a": "192.168.10.1"}


def test_no_two_pods_share_an_address():
    pods = [{"name": str(i)} for i in range(5)]
    result = allocate(CIDR, pods, GATEWAY, {})
    assert len(set(result.values())) == 5 and "192.168.10.6" not in result.values()


@pytest.mark.parametrize("pods, message", [
    ([{"name": str(i)} for i in range(6)], r"^pods\[5\]: no free address left in 192\.168\.10\.0/29"),
    ([{"name": "a", "ip": "192.168.11.1"}], r"^pods\[0\]\.ip: 192\.168\.11\.1 is not a usable address"),
    ([{"name": "a", "ip": "192.168.10.6"}], r"^pods\[0\]\.ip: 192\.168\.10\.6 is not a usable address"),
    ([{"name": "a", "ip": "192.168.10.0"}], r"^pods\[0\]\.ip: .* not a usable address"),
    ([{"name": "a", "ip": "192.168.10.7"}], r"^pods\[0\]\.ip: .* not a usable address"),
    ([{"name": "a", "ip": "192.168.10.1"}, {"name": "b", "ip": "192.168.10.1"}],
     r"^pods\[1\]\.ip: 192\.168\.10\.1 is also given to pod a"),
])
def test_rejects(pods, message):
    with pytest.raises(ValueError, match=message):
        allocate(CIDR, pods, GATEWAY, {})


def test_leases_of_another_allocator_are_never_given(tmp_path):
    from ansible_collections.handcni.podnet.plugins.module_utils._ipam import leased
    for name in ("192.168.10.1", "192.168.10.2", "10.0.0.1", "last_reserved_ip.0", "lock"):
        (tmp_path / name).write_text("cnipod\neth0")
    held = leased([str(tmp_path), str(tmp_path / "missing")], CIDR)
    assert sorted(held) == ["192.168.10.1", "192.168.10.2"]
    assert allocate(CIDR, [{"name": "a"}], GATEWAY + held, {}) == {"a": "192.168.10.3"}


# --- IPv6 (dual stack): the same allocator, once per family ------------------------------

CIDR6 = "fd00:10:244:1::/64"
GATEWAY6 = ["fd00:10:244:1::1"]


def dual(**extra) -> dict:
    """The module's parameters for two pods, dual stack, as AnsibleModule hands them over."""
    return dict({"cidr": CIDR, "cidr6": CIDR6, "reserved": GATEWAY, "reserved6": GATEWAY6, "leases_dirs": [],
                 "pods": [{"name": "a", "ip": None, "ip6": None}, {"name": "b", "ip": None, "ip6": None}]}, **extra)


def test_a_64_gives_the_address_after_its_reserved_gateway_at_once():
    started = time.monotonic()
    pods = [{"name": "a"}, {"name": "b", "ip6": "fd00:10:244:1::5"}, {"name": "c"}]
    result = allocate(CIDR6, pods, GATEWAY6, {"c": "fd00:10:244:1:ffff::9"}, "ip6")
    assert result == {"b": "fd00:10:244:1::5", "c": "fd00:10:244:1:ffff::9", "a": "fd00:10:244:1::2"}
    assert time.monotonic() - started < 1


def test_a_huge_prefix_is_never_enumerated():
    started = time.monotonic()  # 2**96 addresses: enumerating any of them would never end
    assert allocate("fd00::/32", [{"name": str(i)} for i in range(50)], ["fd00::1"], {}, "ip6")["49"] == "fd00::33"
    assert free_count("fd00::/32", ["fd00::1", "fd01::1"], ["fd00::2"]) == 2 ** 96 - 3  # fd01::1 is outside
    assert free_count(CIDR6, GATEWAY6, []) == 2 ** 64 - 2
    assert time.monotonic() - started < 1


def test_free_count_is_what_is_left_to_allocate():
    taken = allocate(CIDR, [{"name": "a"}, {"name": "b"}], GATEWAY, {})
    assert free_count(CIDR, GATEWAY, taken.values()) == 3  # 8 - network, broadcast, gateway, a, b
    assert free_count("fd00::/125", ["fd00::1"], []) == 6  # IPv6 has no broadcast address


@pytest.mark.parametrize("cidr6, pods, message", [
    ("fd00::/126", [{"name": "a"}, {"name": "b"}, {"name": "c"}],
     r"^pods\[2\]\.ip6: no free address left in fd00::/126 for pod c \(3 pods, 1 reserved\)$"),
    ("fd00::/125", [{"name": str(i)} for i in range(7)], r"^pods\[6\]\.ip6: no free address left in fd00::/125"),
    ("fd00::/125", [{"name": "a", "ip6": "fd00:1::2"}], r"^pods\[0\]\.ip6: fd00:1::2 is not a usable address of fd00::/125"),
    ("fd00::/125", [{"name": "a", "ip6": "10.0.0.1"}], r"^pods\[0\]\.ip6: 10\.0\.0\.1 is not a usable address"),
    ("fd00::/125", [{"name": "a", "ip6": "fd00::1"}], r"^pods\[0\]\.ip6: fd00::1 is not a usable address"),
    ("fd00::/125", [{"name": "a", "ip6": "fd00::"}], r"^pods\[0\]\.ip6: fd00:: is not a usable address"),
    ("fd00::/125", [{"name": "a", "ip6": "fd00::2"}, {"name": "b", "ip6": "FD00::2"}],
     r"^pods\[1\]\.ip6: fd00::2 is also given to pod a$"),
])
def test_rejects_ipv6(cidr6, pods, message):
    with pytest.raises(ValueError, match=message):
        allocate(cidr6, pods, ["fd00::1"], {}, "ip6")


def test_each_family_reads_only_its_own_field():
    pods = [{"name": "a", "ip": "192.168.10.3", "ip6": "fd00::3"}]
    assert allocate(CIDR, pods, GATEWAY, {}) == {"a": "192.168.10.3"}
    assert allocate("fd00::/125", pods, [], {}, "ip6") == {"a": "fd00::3"}


def test_record_names_are_valid_file_names():
    assert record_path("/d", "10.244.1.0/24") == "/d/10.244.1.0_24.json"
    assert record_path("/d", CIDR6) == "/d/fd00_10_244_1___64.json"


def test_families_of_the_input():
    v4, v6 = families(dual())
    assert (v4.cidr, v4.key, v4.suffix, v4.reserved) == (CIDR, "ip", "", GATEWAY)
    assert (v6.cidr, v6.key, v6.suffix, v6.reserved) == (CIDR6, "ip6", "6", GATEWAY6)
    for off in (None, ""):
        assert [f.key for f in families(dual(cidr6=off))] == ["ip"]


@pytest.mark.parametrize("changes, message", [
    (dict(cidr6="10.1.0.0/24"), r"^cidr6: '10\.1\.0\.0/24' is not an IPv6 network$"),
    (dict(cidr6="fd00::1/64"), r"^cidr6: 'fd00::1/64' is not a valid network"),
    (dict(cidr="fd01::/64"), r"^cidr: 'fd01::/64' is IPv6 like cidr6 'fd00:10:244:1::/64'; with cidr6, cidr must be"),
    (dict(cidr6=None, pods=[{"name": "a", "ip": None, "ip6": "fd00::5"}]),
     r"^pods\[0\]\.ip6: fd00::5 is given but cidr6 is not"),
    (dict(pods=[{"name": "a", "ip": None, "ip6": "fd00::zz"}]), r"^pods\[0\]\.ip6: 'fd00::zz' is not a valid IP address$"),
    (dict(reserved6=["fd00::zz"]), r"^reserved6\[0\]: 'fd00::zz' is not a valid IP address$"),
])
def test_families_reject(changes, message):
    with pytest.raises(ValueError, match=message):
        families(dual(**changes))


def test_leases_of_the_ipv6_prefix_are_never_given(tmp_path):
    for name in ("fd00:10:244:1::2", "fd00:10:244:2::2", "192.168.10.1"):
        (tmp_path / name).write_text("cnipod\neth0")
    v4, v6 = families(dual(leases_dirs=[str(tmp_path)]))
    assert v4.reserved == GATEWAY + ["192.168.10.1"] and v6.reserved == GATEWAY6 + ["fd00:10:244:1::2"]
    assert allocate(v6.cidr, [{"name": "a"}], v6.reserved, {}, v6.key) == {"a": "fd00:10:244:1::3"}
