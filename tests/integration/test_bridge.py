"""handcni.podnet.bridge through Ansible on a throwaway lab node (worker1).

Every scenario of this file runs in one ansible-playbook (the `results` fixture); each test reads its part.
"""
from __future__ import annotations

import pytest
from ansible_collections.handcni.podnet.plugins.module_utils._links import provisional_name
from conftest import (changed, diffs_agree, fails_naming, is_up, link_names, module, part, raw, same_plan, scenario,
                      snapshot)

# Links someone else made, next to ours. (This kernel has no dummy driver, so the stranger is a veth.)
FOREIGN = "fx0"
FOREIGN_BRIDGE = "brf"
MAC, OTHER_MAC = "02:00:0a:fa:00:fe", "02:00:0a:fa:01:fe"


def bridge(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.bridge", args, check)


def show(name: str, link: str) -> dict:
    return raw(name, f"ip -d -o link show {link} && ip -o -4 addr show dev {link}")


FIRST = {"bridges": [{"name": "br-t", "mtu": 1400, "mac": MAC, "addresses": ["10.250.0.254/24"]}]}
SECOND = {"bridges": [{"name": "br-t", "mtu": 1450, "mac": OTHER_MAC, "addresses": ["10.250.1.254/24"]}]}
GONE = {"bridges": [{"name": "br-t"}], "state": "absent"}
LIFECYCLE = scenario(
    "lifecycle",
    snapshot("start"), bridge("planned", FIRST, check=True), snapshot("after planned"),
    bridge("create", FIRST), show("made", "br-t"),
    bridge("again", FIRST),
    snapshot("before change planned"), bridge("change planned", SECOND, check=True), snapshot("after change planned"),
    bridge("change", SECOND), show("changed", "br-t"),
    snapshot("before absent planned"), bridge("absent planned", GONE, check=True), snapshot("after absent planned"),
    bridge("absent", GONE), raw("gone", "ip -o link show br-t"),
    bridge("absent again", GONE),
)

GOOD = {"name": "br-new", "mtu": 1400, "addresses": ["10.253.0.1/24"]}
BAD = {
    "bridges[1].name: interface name 'br-0123456789abc' is longer than 15 bytes": {"name": "br-0123456789abc"},
    "bridges[1].mac: 'zz:00:00:00:00:01' is not a MAC address": {"name": "br-x", "mac": "zz:00:00:00:00:01"},
    "bridges[1].mtu: MTU 50 is out of range": {"name": "br-x", "mtu": 50},
    "bridges[1].mtu: MTU 70000 is out of range": {"name": "br-x", "mtu": 70000},
    "bridges[1].addresses[0]: '10.1.1.300/24' is not a valid address": {"name": "br-x", "addresses": ["10.1.1.300/24"]},
    "bridges[1].name: 'br-new' is listed twice": GOOD,
    f"bridges[1].name: link {FOREIGN} in the host namespace exists and was not made by handcni.podnet": {
        "name": FOREIGN},
}
BAD_INPUT = scenario(
    "bad input",
    snapshot("before"),
    # a good bridge listed first: nothing is made when a later one is bad
    *(bridge(message, {"bridges": [GOOD, item]}) for message, item in BAD.items()),
    bridge("no such netns", {"netns": "nope", "bridges": [GOOD]}),
    bridge("foreign, absent", {"bridges": [{"name": FOREIGN}], "state": "absent"}),
    snapshot("after"),
)

PRUNE = scenario(
    "prune",
    bridge("two", {"bridges": [{"name": "br-p1"}, {"name": "br-p2"}]}),
    bridge("prune planned", {"bridges": [{"name": "br-p1"}], "prune": True}, check=True),
    bridge("prune", {"bridges": [{"name": "br-p1"}], "prune": True}), raw("left", "ip -o link"),
    bridge("prune again", {"bridges": [{"name": "br-p1"}], "prune": True}),
    bridge("prune everything", {"bridges": [], "prune": True}), raw("end", "ip -o link"),
)

# What a run killed half-way through making br-c and br-d leaves: br-c's bridge made, not yet marked;
# br-d's marked, not yet named.
UNMARKED, UNNAMED = provisional_name("br-c"), provisional_name("br-d")
CUT_SHORT = scenario(
    "cut short",
    raw("left", f"ip link add {UNMARKED} type bridge && ip link add {UNNAMED} type bridge && "
                f"ip link set {UNNAMED} alias 'handcni.podnet bridge' && ip -o link"),
    bridge("planned", {"bridges": [{"name": "br-c"}, {"name": "br-d"}]}, check=True),
    bridge("repair", {"bridges": [{"name": "br-c"}, {"name": "br-d"}]}), raw("repaired", "ip -o link"),
    bridge("again", {"bridges": [{"name": "br-c"}, {"name": "br-d"}]}),
    bridge("provisional name listed", {"bridges": [{"name": UNMARKED}]}),
    bridge("removed", {"bridges": [{"name": "br-c"}, {"name": "br-d"}], "state": "absent"}),
)


@pytest.fixture(scope="module")
def results(lab):
    lab.sh("ip", "link", "add", FOREIGN, "type", "veth", "peer", "name", "fx1")
    lab.sh("ip", "link", "add", FOREIGN_BRIDGE, "type", "bridge")
    return lab.play(*LIFECYCLE, *BAD_INPUT, *PRUNE, *CUT_SHORT)


def test_lifecycle(results):
    r = part(results, "lifecycle")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the kernel"
    assert changed(r["planned"]) and same_plan(r["planned"], r["create"])
    assert r["create"]["actions"] == ["create bridge br-t"]
    made = r["made"]["stdout"]
    for fact in ("mtu 1400", f"link/ether {MAC}", " bridge ", "alias handcni.podnet bridge", "inet 10.250.0.254/24"):
        assert fact in made, (fact, made)
    assert is_up(made)

    assert not changed(r["again"]) and r["again"]["actions"] == []

    assert r["before change planned"]["stdout"] == r["after change planned"]["stdout"]
    assert same_plan(r["change planned"], r["change"]) and changed(r["change"])
    assert r["change"]["actions"] == ["set br-t mtu 1400 -> 1450", f"set br-t mac {MAC} -> {OTHER_MAC}",
                                      "set br-t addresses +10.250.1.254/24 -10.250.0.254/24"]
    now = r["changed"]["stdout"]
    assert "mtu 1450" in now and f"link/ether {OTHER_MAC}" in now and "inet 10.250.1.254/24" in now
    assert "10.250.0.254" not in now

    assert r["before absent planned"]["stdout"] == r["after absent planned"]["stdout"]
    assert same_plan(r["absent planned"], r["absent"]) and r["absent"]["actions"] == ["delete bridge br-t"]
    assert r["gone"]["rc"] != 0
    assert not changed(r["absent again"])

    assert diffs_agree(r) == []
    assert r["change"]["diff"] == {
        "before": {"br-t": {"name": "br-t", "mtu": 1400, "mac": MAC, "addresses": ["10.250.0.254/24"], "up": True}},
        "after": {"br-t": {"name": "br-t", "mtu": 1450, "mac": OTHER_MAC, "addresses": ["10.250.1.254/24"],
                           "up": True}},
    }


def test_bad_input_fails_naming_the_field_and_changes_nothing(results):
    r = part(results, "bad input")
    for message in BAD:
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
    assert fails_naming(r["no such netns"], "netns: network namespace 'nope' does not exist")
    assert fails_naming(r["foreign, absent"], f"bridges[0].name: link {FOREIGN} in the host namespace exists")
    assert r["before"]["stdout"] == r["after"]["stdout"]
    assert FOREIGN in r["after"]["stdout"] and "br-new" not in r["after"]["stdout"]


def test_prune_removes_only_ours(results):
    r = part(results, "prune")
    assert changed(r["two"]) and same_plan(r["prune planned"], r["prune"])
    assert r["prune"]["actions"] == ["delete bridge br-p2"]
    assert {"br-p1", FOREIGN, FOREIGN_BRIDGE} <= link_names(r["left"]) and "br-p2" not in link_names(r["left"])
    assert not changed(r["prune again"])
    assert r["prune everything"]["actions"] == ["delete bridge br-p1"]
    assert link_names(r["end"]) == {"lo", "eth0", FOREIGN, "fx1", FOREIGN_BRIDGE}
    assert diffs_agree(r) == []


def test_a_create_cut_short_is_repaired(results):
    r = part(results, "cut short")
    assert {UNMARKED, UNNAMED} <= link_names(r["left"])
    assert same_plan(r["planned"], r["repair"])
    assert sorted(r["repair"]["actions"]) == sorted([
        f"delete bridge {UNMARKED} (a create cut short)", f"delete bridge {UNNAMED} (a create cut short)",
        "create bridge br-c", "create bridge br-d"])
    names = link_names(r["repaired"])
    assert {"br-c", "br-d"} <= names and not names & {UNMARKED, UNNAMED}
    assert "alias handcni.podnet bridge" in r["repaired"]["stdout"]
    assert not changed(r["again"])
    assert fails_naming(r["provisional name listed"], f"bridges[0].name: {UNMARKED} has the form of the provisional")
    assert changed(r["removed"])
