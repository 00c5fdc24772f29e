"""handcni.podnet.netns through Ansible on a throwaway lab node (worker1).

Every scenario of this file runs in one ansible-playbook (the `results` fixture); each test reads its part.
"""
from __future__ import annotations

import pytest
from conftest import changed, diffs_agree, fails_naming, module, part, raw, same_plan, scenario, snapshot

FOREIGN = "foreign"  # a namespace someone else made with `ip netns add`


def netns(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.netns", args, check)


def listed(result: dict) -> list:
    return sorted(line.split()[0] for line in result["stdout"].splitlines() if line.strip())


TWO = {"names": ["pa", "pb"]}
CHANGED = {"names": ["pa", "pc"], "prune": True}
GONE = {"names": ["pa", "pc"], "state": "absent"}
LIFECYCLE = scenario(
    "lifecycle",
    snapshot("start"), netns("planned", TWO, check=True), snapshot("after planned"),
    netns("create", TWO), raw("made", "ip netns list"),
    raw("loopbacks", "ip -n pa -d -o link show lo; ip -n pb -d -o link show lo"),
    netns("again", TWO),
    snapshot("before change planned"), netns("change planned", CHANGED, check=True), snapshot("after change planned"),
    netns("change", CHANGED), raw("changed", "ip netns list"),
    snapshot("before absent planned"), netns("absent planned", GONE, check=True), snapshot("after absent planned"),
    netns("absent", GONE), raw("gone", "ip netns list"),
    netns("absent again", GONE),
)

BAD = {
    "names[1]: 'a/b' is not a valid network namespace name": ["pnew", "a/b"],
    f"names[1]: {'x' * 65!r} is not a valid network namespace name": ["pnew", "x" * 65],
    "names[2]": ["pnew", "pz", "pz"],  # listed twice
    f"names[1]: netns {FOREIGN} exists and was not made by handcni.podnet": ["pnew", FOREIGN],
}
BAD_INPUT = scenario(
    "bad input",
    netns("ours", {"names": ["pok"]}), snapshot("before"),
    *(netns(message, {"names": names}) for message, names in BAD.items()),
    netns("foreign, absent", {"names": [FOREIGN], "state": "absent"}),
    netns("foreign, pruned", {"names": ["pok"], "prune": True}),
    snapshot("after"), netns("ours gone", {"names": ["pok"], "state": "absent"}),
)

PRUNE = scenario(
    "prune",
    netns("three", {"names": ["p1", "p2", "p3"]}),
    netns("prune planned", {"names": ["p1"], "prune": True}, check=True),
    netns("prune", {"names": ["p1"], "prune": True}), raw("left", "ip netns list"),
    netns("prune again", {"names": ["p1"], "prune": True}),
    netns("prune everything", {"names": [], "prune": True}), raw("end", "ip netns list"),
)

# A create killed between making /run/netns/NAME and pinning the namespace on it leaves an empty file.
CUT_SHORT = scenario(
    "cut short",
    raw("left", "touch /run/netns/pcut /run/netns/pgone"),
    netns("create over it", {"names": ["pcut"]}), raw("made", "ip -n pcut -d -o link show lo"),
    netns("remove it", {"names": ["pgone"], "state": "absent"}), raw("gone", "ls /run/netns"),
    netns("done", {"names": ["pcut"], "state": "absent"}),
)


@pytest.fixture(scope="module")
def results(lab):
    lab.sh("ip", "netns", "add", FOREIGN)
    return lab.play(*LIFECYCLE, *BAD_INPUT, *PRUNE, *CUT_SHORT)


def test_lifecycle(results):
    r = part(results, "lifecycle")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the kernel"
    assert changed(r["planned"]) and same_plan(r["planned"], r["create"])
    assert r["create"]["actions"] == ["create netns pa", "create netns pb"]
    assert listed(r["made"]) == [FOREIGN, "pa", "pb"]
    # each new namespace has its loopback up and carries our mark
    loopbacks = r["loopbacks"]["stdout"]
    assert loopbacks.count("alias handcni.podnet netns") == 2 and loopbacks.count("<LOOPBACK,UP") == 2

    assert not changed(r["again"]) and r["again"]["actions"] == []

    assert r["before change planned"]["stdout"] == r["after change planned"]["stdout"]
    assert same_plan(r["change planned"], r["change"]) and changed(r["change"])
    assert r["change"]["actions"] == ["create netns pc", "delete netns pb"]
    assert listed(r["changed"]) == [FOREIGN, "pa", "pc"]

    assert r["before absent planned"]["stdout"] == r["after absent planned"]["stdout"]
    assert same_plan(r["absent planned"], r["absent"]) and changed(r["absent"])
    assert listed(r["gone"]) == [FOREIGN]
    assert not changed(r["absent again"])
    assert diffs_agree(r) == []
    assert r["create"]["diff"] == {"before": {"pa": {"name": "pa", "present": False},
                                              "pb": {"name": "pb", "present": False}},
                                   "after": {"pa": {"name": "pa", "present": True},
                                             "pb": {"name": "pb", "present": True}}}


def test_bad_input_fails_naming_the_field_and_changes_nothing(results):
    r = part(results, "bad input")
    for message in BAD:
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
    assert r["names[2]"]["msg"].startswith("names[2]: 'pz' is listed twice")
    assert fails_naming(r["foreign, absent"], f"names[0]: netns {FOREIGN} exists and was not made by handcni.podnet")
    assert not changed(r["foreign, pruned"])  # someone else's namespace is never pruned
    assert r["before"]["stdout"] == r["after"]["stdout"]
    assert changed(r["ours gone"])


def test_prune_removes_only_ours(results):
    r = part(results, "prune")
    assert changed(r["three"])
    assert same_plan(r["prune planned"], r["prune"])
    assert r["prune"]["actions"] == ["delete netns p2", "delete netns p3"]
    assert listed(r["left"]) == [FOREIGN, "p1"]
    assert not changed(r["prune again"])
    assert r["prune everything"]["actions"] == ["delete netns p1"]
    assert listed(r["end"]) == [FOREIGN]
    assert diffs_agree(r) == []


def test_the_empty_file_of_a_create_cut_short_is_replaced_or_removed(results):
    r = part(results, "cut short")
    assert r["create over it"]["actions"] == ["create netns pcut (an empty file left by a create cut short)"]
    assert "alias handcni.podnet netns" in r["made"]["stdout"]
    assert r["remove it"]["actions"] == ["delete netns pgone (an empty file left by a create cut short)"]
    assert "pgone" not in r["gone"]["stdout"].split()
    assert changed(r["done"])
