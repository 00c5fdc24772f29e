"""handcni.podnet.sysctl through Ansible on a throwaway lab node (worker1).

Every scenario of this file runs in one ansible-playbook (the `results` fixture); each test reads its part.
"""
from __future__ import annotations

import json

import pytest
from conftest import changed, diffs_agree, fails_naming, module, part, raw, same_plan, scenario, snapshot

FORWARD, IGNORE, ANNOUNCE = "net.ipv4.ip_forward", "net.ipv4.conf.eth0.arp_ignore", "net.ipv4.conf.all.arp_announce"
RECORD = "/var/lib/handcni/sysctl.json"
# The values this file is about, then the record of the values found before our changes.
READ = (f"for n in {FORWARD} {IGNORE} {ANNOUNCE}; do echo $n=$(cat /proc/sys/$(echo $n | tr . /)); done; "
        f"echo ---; cat {RECORD} 2>/dev/null || echo '\"no record\"'")


def sysctl(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.sysctl", args, check)


def values(result: dict) -> dict:
    """The sysctl values and the record, as READ printed them."""
    text, record = result["stdout"].rsplit("\n---\n", 1)
    found = dict(line.split("=", 1) for line in text.splitlines() if line.startswith("net.") and "=" in line)
    found["record"] = json.loads(record)
    return found


FIRST = {"sysctls": {FORWARD: 1, IGNORE: 1}}
SECOND = {"sysctls": {FORWARD: True, IGNORE: "2"}}
GONE = {"sysctls": {FORWARD: None, IGNORE: None}, "state": "absent"}
LIFECYCLE = scenario(
    "lifecycle",
    snapshot("start", READ), sysctl("planned", FIRST, check=True), snapshot("after planned", READ),
    sysctl("set", FIRST), raw("made", READ),
    sysctl("again", FIRST),
    snapshot("before change planned", READ), sysctl("change planned", SECOND, check=True),
    snapshot("after change planned", READ),
    sysctl("change", SECOND), raw("changed", READ),
    snapshot("before absent planned", READ), sysctl("absent planned", GONE, check=True),
    snapshot("after absent planned", READ),
    sysctl("absent", GONE), raw("gone", READ),
    sysctl("absent again", GONE),
)

IN_POD = {"netns": "ps", "sysctls": {FORWARD: 1}}
POD_FORWARD = "ip netns exec ps cat /proc/sys/net/ipv4/ip_forward"
NETNS = scenario(
    "netns",
    sysctl("in ps", IN_POD), raw("pod", POD_FORWARD), raw("node", READ), sysctl("again", IN_POD),
    sysctl("absent", dict(IN_POD, state="absent")), raw("pod after", POD_FORWARD), raw("node after", READ),
)

PRUNE = scenario(
    "prune",
    sysctl("two", {"sysctls": {FORWARD: 1, IGNORE: 1}}),
    sysctl("prune planned", {"sysctls": {FORWARD: 1}, "prune": True}, check=True),
    sysctl("prune", {"sysctls": {FORWARD: 1}, "prune": True}), raw("left", READ),
    sysctl("prune again", {"sysctls": {FORWARD: 1}, "prune": True}),
    sysctl("prune everything", {"sysctls": {}, "prune": True}), raw("end", READ),
    # teardown's form, run again on a node with no record: nothing written, not even a lock file
    raw("no record", f"rm -f {RECORD} {RECORD}.lock"), sysctl("nothing to put back", {"sysctls": {}, "prune": True}),
    raw("still no record", f"ls {RECORD}* 2>&1"),
)

BAD = {
    "sysctls: 'kernel.hostname' is not a net.* sysctl name": {FORWARD: 1, "kernel.hostname": "x"},
    "sysctls: 'net.ipv4/../../kernel/hostname' is not a net.* sysctl name": {
        FORWARD: 1, "net.ipv4/../../kernel/hostname": "x"},
    "sysctls: net.ipv4.conf.nope.proxy_arp does not exist in the host namespace": {
        FORWARD: 1, "net.ipv4.conf.nope.proxy_arp": 1},
}
BAD_INPUT = scenario(
    "bad input",
    snapshot("before", READ),
    *(sysctl(message, {"sysctls": args}) for message, args in BAD.items()),
    sysctl("no such netns", {"netns": "nope", "sysctls": {FORWARD: 1}}),
    snapshot("after", READ),
)

# Bugs found and fixed, each kept by its own scenario.
ALL_IGNORE = "net.ipv4.conf.all.arp_ignore"
READ_ALL_IGNORE = "cat /proc/sys/net/ipv4/conf/all/arp_ignore"
REFUSED = scenario(
    "refused",
    raw("before", READ_ALL_IGNORE), sysctl("refused", {"sysctls": {ALL_IGNORE: 1, FORWARD: "abc"}}),
    raw("after", READ_ALL_IGNORE),
    sysctl("put back", {"sysctls": {ALL_IGNORE: 0}, "state": "absent"}), raw("after put back", READ_ALL_IGNORE),
    raw("cleanup", f"sysctl -qw {ALL_IGNORE}=0"),
)
ALREADY = {"sysctls": {"net.ipv4.conf.all.arp_filter": 0}}  # already 0
RECORD_ONLY = scenario(
    "record only",
    sysctl("already so", ALREADY), sysctl("again", ALREADY),
)


@pytest.fixture(scope="module")
def results(lab):
    lab.sh("sysctl", "-qw", f"{ANNOUNCE}=1")  # someone else's setting
    lab.sh("ip", "netns", "add", "ps")
    return lab.play(*LIFECYCLE, *NETNS, *PRUNE, *BAD_INPUT, *REFUSED, *RECORD_ONLY)


def test_lifecycle(results):
    r = part(results, "lifecycle")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the kernel"
    assert values(r["start"]) == {FORWARD: "0", IGNORE: "0", ANNOUNCE: "1", "record": "no record"}
    assert changed(r["planned"]) and same_plan(r["planned"], r["set"])
    assert r["set"]["actions"] == [f"record the previous values in {RECORD}",
                                   f"set {IGNORE} 0 -> 1", f"set {FORWARD} 0 -> 1"]
    assert values(r["made"]) == {FORWARD: "1", IGNORE: "1", ANNOUNCE: "1",
                                 "record": {"": {FORWARD: "0", IGNORE: "0"}}}
    assert not changed(r["again"]) and r["again"]["actions"] == []

    assert r["before change planned"]["stdout"] == r["after change planned"]["stdout"]
    assert same_plan(r["change planned"], r["change"]) and r["change"]["actions"] == [f"set {IGNORE} 1 -> 2"]
    # the record keeps the value found before the first change
    assert values(r["changed"]) == {FORWARD: "1", IGNORE: "2", ANNOUNCE: "1",
                                    "record": {"": {FORWARD: "0", IGNORE: "0"}}}

    assert r["before absent planned"]["stdout"] == r["after absent planned"]["stdout"]
    assert same_plan(r["absent planned"], r["absent"]) and changed(r["absent"])
    assert values(r["gone"]) == {FORWARD: "0", IGNORE: "0", ANNOUNCE: "1", "record": {}}
    assert not changed(r["absent again"])
    assert diffs_agree(r) == []
    assert r["set"]["diff"] == {"before": {FORWARD: "0", IGNORE: "0"}, "after": {FORWARD: "1", IGNORE: "1"}}


def test_netns_option_sets_the_pod_namespace_only(results):
    r = part(results, "netns")
    assert changed(r["in ps"]) and r["pod"]["stdout"].strip() == "1"
    assert values(r["node"])[FORWARD] == "0" and values(r["node"])["record"] == {"ps": {FORWARD: "0"}}
    assert not changed(r["again"])
    assert changed(r["absent"]) and r["pod after"]["stdout"].strip() == "0"
    assert values(r["node after"])["record"] == {}
    assert diffs_agree(r) == []


def test_prune_puts_back_only_ours(results):
    r = part(results, "prune")
    assert changed(r["two"]) and same_plan(r["prune planned"], r["prune"])
    assert r["prune"]["actions"] == [f"set {IGNORE} 1 -> 0", f"drop the values put back from {RECORD}"]
    assert values(r["left"]) == {FORWARD: "1", IGNORE: "0", ANNOUNCE: "1", "record": {"": {FORWARD: "0"}}}
    assert not changed(r["prune again"])
    # someone else's arp_announce=1 is never touched
    assert values(r["end"]) == {FORWARD: "0", IGNORE: "0", ANNOUNCE: "1", "record": {}}
    assert not changed(r["nothing to put back"]) and "No such file" in r["still no record"]["stdout"]
    assert diffs_agree(r) == []


def test_bad_input_fails_naming_the_field_and_changes_nothing(results):
    r = part(results, "bad input")
    for message in BAD:
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
    assert fails_naming(r["no such netns"], "netns: network namespace 'nope' does not exist")
    assert r["before"]["stdout"] == r["after"]["stdout"]


def test_a_refused_value_changes_nothing(results):
    r = part(results, "refused")
    assert r["refused"]["failed"] and FORWARD in r["refused"]["msg"]
    assert r["after"]["stdout"] == r["before"]["stdout"] or r["after put back"]["stdout"] == r["before"]["stdout"]


def test_diff_shows_every_change(results):
    r = part(results, "record only")
    assert not changed(r["again"])
    assert diffs_agree(r) == [], {name: (r[name]["changed"], r[name]["diff"]) for name in diffs_agree(r)}
