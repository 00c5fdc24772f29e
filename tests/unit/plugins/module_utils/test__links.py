"""Unit tests for the pure parts of plugins/module_utils/_links.py."""
from __future__ import annotations

import contextlib
import socket

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _links
from ansible_collections.handcni.podnet.plugins.module_utils._links import (
    LINK_ATTRS,
    apply_change,
    describe_change,
    not_ours,
    owner_alias,
    plan_link,
)
from ansible_collections.handcni.podnet.plugins.module_utils._module import PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils import _bridge as bridge
from ansible_collections.handcni.podnet.plugins.modules import ipip_tunnel, vxlan_fdb

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
    ("proxy_ndp", [], ["fe80::1"], "set br0 proxy_ndp +fe80::1"),
    ("proxy_ndp", ["fe80::1", "fe80::2"], [], "set br0 proxy_ndp -fe80::1 -fe80::2"),
])
def test_describe_change(attr, old, new, text):
    assert describe_change("br0", attr, old, new) == text


class RecordingIPRoute:
    """Keeps the address and neighbour requests made of it."""

    def __init__(self):
        self.calls = []

    def addr(self, op, **kwargs):
        self.calls.append(("addr", op, kwargs))

    def neigh(self, op, **kwargs):
        self.calls.append(("neigh", op, kwargs))


def test_ipv6_addresses_are_added_without_dad_and_ipv4_ones_as_before():
    ipr = RecordingIPRoute()
    apply_change(ipr, "br0", "addresses", None, ["10.0.0.1/24", "fd00::1/64"], index=5)
    assert ipr.calls == [("addr", "add", {"index": 5, "address": "10.0.0.1", "prefixlen": 24}),
                         ("addr", "add", {"index": 5, "address": "fd00::1", "prefixlen": 64, "flags": 2})]


def test_an_ipv6_address_changing_prefix_length_is_removed_first(monkeypatch, tmp_path):
    # IPv6 keys an address by itself (EEXIST otherwise); IPv4 ones keep "new first" (no route flush).
    monkeypatch.setattr(_links, "sysctl_path", lambda name: str(tmp_path / "knob"))
    monkeypatch.setattr(_links, "inside_session", lambda ipr: contextlib.nullcontext())
    ipr = RecordingIPRoute()
    apply_change(ipr, "eth0", "addresses", ["10.0.0.1/24", "fd00::2/64"], ["10.0.0.1/32", "fd00::2/128"], index=5)
    assert [(op, kw["address"], kw["prefixlen"]) for _a, op, kw in ipr.calls] == [
        ("del", "fd00::2", 64), ("add", "10.0.0.1", 32), ("add", "fd00::2", 128), ("del", "10.0.0.1", 24)]


def test_proxy_ndp_adds_and_removes_proxy_entries():
    ipr = RecordingIPRoute()
    apply_change(ipr, "veth1", "proxy_ndp", ["fe80::2", "fe80::3"], ["fe80::1", "fe80::3"], index=5)
    entry = {"ifindex": 5, "flags": 8, "family": socket.AF_INET6}
    assert ipr.calls == [("neigh", "add", dict(entry, dst="fe80::1")), ("neigh", "del", dict(entry, dst="fe80::2"))]


def test_owner_alias():
    assert owner_alias("bridge") == "handcni.podnet bridge"


def test_not_ours():
    err = not_ours("bridges[1].name", "link br0", "netns pod1")
    assert isinstance(err, ValueError)
    assert str(err) == "bridges[1].name: link br0 in netns pod1 exists and was not made by handcni.podnet; it is left alone"


# --- OwnedLinkPlanner, on a namespace faked as {name: (alias, state)} --------------------------

class FakeLink(dict):
    def get_attr(self, key):
        return self.get(key)


class FakeIPRoute:
    def __init__(self, links: dict):
        self.links = links

    def link(self, op: str, **kwargs):
        assert op == "dump", "planning only reads"
        return [FakeLink(index=index, IFLA_IFNAME=name, IFLA_IFALIAS=alias)
                for index, (name, (alias, _kind)) in enumerate(self.links.items(), 1)]


class FakeModule:
    where = "netns n1"
    forget = PodnetModule.forget

    def __init__(self, state: str = "present", prune: bool = False):
        self.params = {"state": state, "prune": prune}
        self.before, self.after = {}, {}


def fake_planner(links: dict, monkeypatch, planner=bridge.BridgePlanner, **params) -> _links.OwnedLinkPlanner:
    monkeypatch.setattr(_links, "link_by_name", lambda ipr, name: FakeLink(name=name) if name in links else None)
    monkeypatch.setattr(_links, "link_state", lambda ipr, link: links[link["name"]][1])
    return planner(FakeModule(**params), FakeIPRoute(links))


def wanted(*names: str, state: str = "present") -> list[dict]:
    return [bridge.normalise({"name": name}, f"bridges[{i}]", state) for i, name in enumerate(names)]


def descriptions(actions) -> list[str]:
    return [action.description for action in actions]


OURS = dict(HAVE, up=True, addresses=[])


def test_planner_creates_the_missing_and_changes_the_existing(monkeypatch):
    planner = fake_planner({"br0": (bridge.ALIAS, dict(OURS, mtu=1400))}, monkeypatch)
    want = wanted("br0", "br1")
    want[0]["mtu"] = 1500
    assert descriptions(planner.plan(want)) == ["set br0 mtu 1400 -> 1500", "create bridge br1"]
    assert planner.module.before == {"br0": {"name": "br0", "mtu": 1400, "addresses": [], "up": True},
                                     "br1": {"name": "br1", "present": False}}
    assert planner.module.after == {"br0": {"name": "br0", "mtu": 1500, "addresses": [], "up": True},
                                    "br1": {"name": "br1", "addresses": [], "up": True}}


def test_planner_deletes_with_state_absent(monkeypatch):
    planner = fake_planner({"br0": (bridge.ALIAS, OURS)}, monkeypatch, state="absent")
    assert descriptions(planner.plan(wanted("br0", "br1", state="absent"))) == ["delete bridge br0"]
    assert planner.module.before == {"br0": {"name": "br0", "present": True}, "br1": {"name": "br1", "present": False}}
    assert planner.module.after == {"br0": {"name": "br0", "present": False}, "br1": {"name": "br1", "present": False}}


def test_planner_prunes_only_owned_links_not_listed(monkeypatch):
    links = {"br0": (bridge.ALIAS, OURS), "br9": (bridge.ALIAS, OURS), "docker0": (None, OURS),
             "vx0": (owner_alias("vxlan_fdb"), OURS)}
    planner = fake_planner(links, monkeypatch, prune=True)
    assert descriptions(planner.plan(wanted("br0"))) == ["delete bridge br9"]
    assert planner.module.after["br9"] == {"name": "br9", "present": False}


@pytest.mark.parametrize("have, message", [
    (dict(OURS, owned=False), "bridges[1].name: link br0 in netns n1 exists and was not made by handcni.podnet; "
                              "it is left alone"),
    (dict(OURS, kind="veth"), "bridges[1].name: br0 in netns n1 is a veth, not a bridge"),
])
def test_planner_refuses_a_link_not_ours_or_of_another_kind(monkeypatch, have, message):
    planner = fake_planner({"br0": (bridge.ALIAS, have)}, monkeypatch)
    with pytest.raises(ValueError) as err:
        planner.plan(wanted("br1", "br0"))
    assert str(err.value) == message


@pytest.mark.parametrize("planner, message", [
    (bridge.BridgePlanner, "bridges[0].name: br0 in netns n1 is a veth, not a bridge"),
    (ipip_tunnel.IpipPlanner, "tunnels[0].name: br0 in netns n1 is a veth, not an ipip tunnel"),
    (vxlan_fdb.VxlanPlanner, "vxlans[0].name: br0 in netns n1 is a veth, not a vxlan device"),
])
def test_each_module_names_its_own_list_and_kind(monkeypatch, planner, message):
    planner = fake_planner({"br0": (planner.alias, dict(OURS, kind="veth"))}, monkeypatch, planner)
    with pytest.raises(ValueError) as err:
        planner.plan(wanted("br0"))
    assert str(err.value) == message
