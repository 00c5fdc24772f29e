"""handcni.podnet.route through Ansible on a throwaway lab node (worker1).

Every scenario of this file runs in one ansible-playbook (the `results` fixture); each test reads its part.
"""
from __future__ import annotations

import pytest
from conftest import LEAF_IP, changed, diffs_agree, fails_naming, module, part, raw, same_plan, scenario, snapshot

OTHER_GW = "192.168.210.22"  # on the node's subnet, so the kernel takes it as a gateway
FOREIGN = f"10.77.0.0/16 via {LEAF_IP} dev eth0"  # someone else's route on the node
OURS = "ip route show table all proto 201"  # ip leaves the proto out of what it filters on


def route(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.route", args, check)


def lines(result: dict) -> list:
    return [line.strip() for line in result["stdout"].splitlines() if line.strip()]


MINE = {"routes": [{"dst": "10.88.0.0/16", "via": LEAF_IP}, {"dst": "10.89.0.0/16", "dev": "eth0"},
                   {"dst": "10.91.0.0/16", "via": LEAF_IP, "table": 100, "metric": 50}]}
MOVED = {"routes": [{"dst": "10.88.0.0/16", "via": OTHER_GW}, {"dst": "10.89.0.0/16", "dev": "eth0"},
                    {"dst": "10.91.0.0/16", "via": LEAF_IP, "table": 100, "metric": 50}]}
GONE = {"routes": [{"dst": "10.88.0.0/16"}, {"dst": "10.89.0.0/16"},
                   {"dst": "10.91.0.0/16", "table": 100, "metric": 50}], "state": "absent"}
IN_POD = {"netns": "nr", "routes": [{"dst": "10.92.0.0/16", "dev": "lo"}]}
LIFECYCLE = scenario(
    "lifecycle",
    snapshot("start"), route("planned", MINE, check=True), snapshot("after planned"),
    route("create", MINE), raw("made", OURS),
    route("again", MINE),
    snapshot("before change planned"), route("change planned", MOVED, check=True), snapshot("after change planned"),
    route("change", MOVED), raw("changed", OURS),
    snapshot("before absent planned"), route("absent planned", GONE, check=True), snapshot("after absent planned"),
    route("absent", GONE), raw("gone", OURS), raw("foreign", "ip route show 10.77.0.0/16"),
    route("absent again", GONE),
    route("in a pod", IN_POD), raw("pod routes", "ip -n nr route"), raw("node routes", "ip route"),
    route("in a pod, absent", dict(IN_POD, state="absent")),
)

GOOD = {"dst": "10.95.0.0/16", "dev": "eth0"}
BAD = {
    f"routes[1]: route {FOREIGN} exists and was not made by handcni.podnet": {"dst": "10.77.0.0/16", "via": OTHER_GW},
    "routes[1].dst: '10.0.0.1/16' is not a valid network": {"dst": "10.0.0.1/16", "dev": "eth0"},
    "routes[1].dst: '10.300.0.0/16' is not a valid network": {"dst": "10.300.0.0/16", "dev": "eth0"},
    "routes[1].dev: interface name 'eth-0123456789ab' is longer than 15 bytes": {
        "dst": "10.5.0.0/16", "dev": "eth-0123456789ab"},
    "routes[1]": GOOD,  # listed twice
}
BAD_INPUT = scenario(
    "bad input",
    snapshot("before"),
    # a good route listed first: nothing is added when a later one is bad
    *(route(message, {"routes": [GOOD, item]}) for message, item in BAD.items()),
    route("daemon protocol", {"routes": [GOOD], "protocol": 186}),
    route("no such netns", {"netns": "nope", "routes": [GOOD]}),
    route("foreign, absent", {"routes": [{"dst": "10.77.0.0/16"}], "state": "absent"}),
    snapshot("after"),
)

OURS_TWO = {"routes": [{"dst": "10.88.0.0/16", "via": LEAF_IP}, {"dst": "10.89.0.0/16", "dev": "eth0"}]}
OTHER_SET = {"routes": [{"dst": "10.90.0.0/16", "dev": "eth0"}], "protocol": 202}
KEEP_ONE = {"routes": [OURS_TWO["routes"][0]], "prune": True}
PRUNE = scenario(
    "prune",
    route("ours", OURS_TWO), route("another protocol's set", OTHER_SET),
    route("prune planned", KEEP_ONE, check=True),
    route("prune", KEEP_ONE), raw("left", "ip route"),
    route("prune again", KEEP_ONE),
    route("prune everything", {"routes": [], "prune": True}), raw("end", "ip route"),
    route("the other set, absent", dict(OTHER_SET, state="absent")),
)

MISSING_DEVICE = scenario(
    "missing device",
    snapshot("before"), route("no such device", {"routes": [GOOD, {"dst": "10.7.0.0/16", "dev": "nope0"}]}),
    snapshot("after"),
)


@pytest.fixture(scope="module")
def results(lab):
    lab.sh("ip", "route", "add", *FOREIGN.split())
    lab.sh("ip", "netns", "add", "nr")
    lab.sh("ip", "-n", "nr", "link", "set", "lo", "up")
    return lab.play(*LIFECYCLE, *BAD_INPUT, *PRUNE, *MISSING_DEVICE)


def test_lifecycle(results):
    r = part(results, "lifecycle")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the kernel"
    assert changed(r["planned"]) and same_plan(r["planned"], r["create"])
    assert r["create"]["actions"] == [f"add route 10.88.0.0/16 via {LEAF_IP}", "add route 10.89.0.0/16 dev eth0",
                                      f"add route 10.91.0.0/16 via {LEAF_IP} table 100 metric 50"]
    assert sorted(lines(r["made"])) == [f"10.88.0.0/16 via {LEAF_IP} dev eth0", "10.89.0.0/16 dev eth0 scope link",
                                        f"10.91.0.0/16 via {LEAF_IP} dev eth0 table 100 metric 50"]
    assert not changed(r["again"]) and r["again"]["actions"] == []

    assert r["before change planned"]["stdout"] == r["after change planned"]["stdout"]
    assert same_plan(r["change planned"], r["change"]) and changed(r["change"])
    assert r["change"]["actions"] == [f"add route 10.88.0.0/16 via {OTHER_GW}"]
    assert f"10.88.0.0/16 via {OTHER_GW} dev eth0" in lines(r["changed"])
    assert len(lines(r["changed"])) == 3  # replaced, not added beside the old one

    assert r["before absent planned"]["stdout"] == r["after absent planned"]["stdout"]
    assert same_plan(r["absent planned"], r["absent"]) and len(r["absent"]["actions"]) == 3
    assert lines(r["gone"]) == [] and lines(r["foreign"]) == [FOREIGN]
    assert not changed(r["absent again"])

    assert changed(r["in a pod"]) and "10.92.0.0/16 dev lo proto 201 scope link" in r["pod routes"]["stdout"]
    assert "10.92.0.0" not in r["node routes"]["stdout"]
    assert changed(r["in a pod, absent"])
    assert diffs_agree(r) == []
    assert r["change"]["diff"]["before"]["routes"][0]["via"] == LEAF_IP
    assert {"dst": "10.88.0.0/16", "via": OTHER_GW, "onlink": False, "table": 254, "metric": 0} in \
        r["change"]["diff"]["after"]["routes"]


def test_bad_input_fails_naming_the_field_and_changes_nothing(results):
    r = part(results, "bad input")
    for message in BAD:
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
    assert r["routes[1]"]["msg"].startswith("routes[1]: the route to ") and "is listed twice" in r["routes[1]"]["msg"]
    assert fails_naming(r["daemon protocol"], "protocol: 186 is not a protocol number for our routes")
    assert fails_naming(r["no such netns"], "netns: network namespace 'nope' does not exist")
    assert fails_naming(r["foreign, absent"], f"routes[0]: route {FOREIGN} was not made by handcni.podnet")
    assert r["before"]["stdout"] == r["after"]["stdout"]
    assert FOREIGN in r["after"]["stdout"] and "10.95.0.0" not in r["after"]["stdout"]


def test_prune_removes_only_ours(results):
    r = part(results, "prune")
    assert changed(r["ours"]) and changed(r["another protocol's set"])
    assert same_plan(r["prune planned"], r["prune"])
    assert r["prune"]["actions"] == ["delete route 10.89.0.0/16 dev eth0"]
    left = r["left"]["stdout"]
    assert "10.88.0.0/16" in left and "10.89.0.0/16" not in left and "10.90.0.0/16" in left and FOREIGN in left
    assert not changed(r["prune again"])
    assert r["prune everything"]["actions"] == [f"delete route 10.88.0.0/16 via {LEAF_IP} dev eth0"]
    end = r["end"]["stdout"]
    assert "10.88.0.0" not in end and "10.90.0.0/16 dev eth0 proto 202" in end and FOREIGN in end
    assert changed(r["the other set, absent"])
    assert diffs_agree(r) == []


def test_missing_device_fails_before_any_change(results):
    r = part(results, "missing device")
    assert fails_naming(r["no such device"], "routes[1].dev: "), r["no such device"]["msg"]
    assert r["before"]["stdout"] == r["after"]["stdout"]
