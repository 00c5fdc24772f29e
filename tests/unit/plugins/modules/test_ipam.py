"""Unit tests for the ipam module's allocator (pure)."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.modules.ipam import allocate

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
    from ansible_collections.handcni.podnet.plugins.modules.ipam import leased
    for name in ("192.168.10.1", "192.168.10.2", "10.0.0.1", "last_reserved_ip.0", "lock"):
        (tmp_path / name).write_text("cnipod\neth0")
    held = leased([str(tmp_path), str(tmp_path / "missing")], CIDR)
    assert sorted(held) == ["192.168.10.1", "192.168.10.2"]
    assert allocate(CIDR, [{"name": "a"}], GATEWAY + held, {}) == {"a": "192.168.10.3"}
