"""Unit tests for the pure parts of plugins/module_utils/_links.py."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils._links import (
    LINK_ATTRS,
    describe_change,
    not_ours,
    owner_alias,
    plan_link,
)
from ansible_collections.handcni.podnet.plugins.modules import bridge

HAVE = {
    "kind": "bridge", "mtu": 1500, "mac": "02:00:00:00:00:01", "up": False, "master": None,
    "addresses": ["192.168.10.254/24"], "owned": True,
}


def test_plan_link_nothing_to_do():
    assert plan_link(HAVE, {"mtu": 1500, "mac": "02:00:00:00:00:01", "addresses": ["192.168.10.254/24"], "up": False}) == []


def test_plan_link_follows_link_attrs_order():
    want = {"up": True, "addresses": ["10.0.0.1/24"], "hairpin": True, "master": "br0", "mac": "02:00:00:00:00:02", "mtu": 9000}
    plan = plan_link(HAVE, want)
    assert [change[0] for change in plan] == list(LINK_ATTRS)
    assert plan == [
        ("mtu", 1500, 9000),
        ("mac", "02:00:00:00:00:01", "02:00:00:00:00:02"),
        ("master", None, "br0"),
        ("hairpin", None, True),
        ("addresses", ["192.168.10.254/24"], ["10.0.0.1/24"]),
        ("up", False, True),
    ]


def test_plan_link_none_means_do_not_care():
    want = {"mtu": None, "mac": None, "master": None, "hairpin": None, "addresses": None, "up": None}
    assert plan_link(HAVE, want) == []


def test_plan_link_ignores_attributes_it_does_not_manage():
    assert plan_link(HAVE, {"kind": "veth", "owned": False}) == []


@pytest.mark.parametrize("attr, value", [("up", False), ("hairpin", False), ("addresses", [])])
def test_plan_link_false_and_empty_are_wanted_values(attr, value):
    have = {"up": True, "hairpin": True, "addresses": ["10.0.0.1/24"]}
    assert plan_link(have, {attr: value}) == [(attr, have[attr], value)]


def test_plan_link_from_nothing():
    assert plan_link({}, {"mtu": 1500, "up": True}) == [("mtu", None, 1500), ("up", None, True)]


def test_plan_link_compares_addresses_as_lists():
    have = {"addresses": ["10.0.0.1/24", "10.0.0.2/24"]}
    assert plan_link(have, {"addresses": ["10.0.0.1/24", "10.0.0.2/24"]}) == []
    assert plan_link(have, {"addresses": ["10.0.0.2/24", "10.0.0.1/24"]}) == [
        ("addresses", ["10.0.0.1/24", "10.0.0.2/24"], ["10.0.0.2/24", "10.0.0.1/24"]),
    ]


def test_plan_link_addresses_as_modules_and_kernel_order_them():
    want = bridge.normalise({"name": "br0", "addresses": ["10.0.0.10/24", "10.0.0.9/24"]}, "bridges[0]", "present")
    have = {"addresses": ["10.0.0.9/24", "10.0.0.10/24"], "up": True}  # as _netlink.link_addresses orders them
    assert plan_link(have, want) == []


@pytest.mark.parametrize("attr, old, new, text", [
    ("mtu", 1500, 9000, "set br0 mtu 1500 -> 9000"),
    ("master", None, "br0", "set br0 master None -> br0"),
    ("up", False, True, "set br0 up False -> True"),
    ("addresses", ["10.0.0.1/24", "10.0.0.2/24"], ["10.0.0.2/24", "10.0.0.3/24"],
     "set br0 addresses +10.0.0.3/24 -10.0.0.1/24"),
    ("addresses", None, ["10.0.0.2/24", "10.0.0.1/24"], "set br0 addresses +10.0.0.1/24 +10.0.0.2/24"),
    ("addresses", ["10.0.0.1/24"], [], "set br0 addresses -10.0.0.1/24"),
])
def test_describe_change(attr, old, new, text):
    assert describe_change("br0", attr, old, new) == text


def test_owner_alias():
    assert owner_alias("bridge") == "handcni.podnet bridge"


def test_not_ours():
    err = not_ours("bridges[1].name", "link br0", "netns pod1")
    assert isinstance(err, ValueError)
    assert str(err) == "bridges[1].name: link br0 in netns pod1 exists and was not made by handcni.podnet; it is left alone"
