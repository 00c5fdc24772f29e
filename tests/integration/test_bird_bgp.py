"""handcni.podnet.bird_bgp on worker1 and handcni.podnet.frr_bgp on leaf03, peering, through Ansible on a
throwaway lab: create, again (no change, no session reset), change, check mode, bad input, a configuration
that does not parse, a wrong password, absent, absent again. Every daemon runs inside the lab's nodes."""
from __future__ import annotations

import json

import pytest
from conftest import LEAF_IP, NODE_IP, changed, diffs_agree, fails_naming, module, raw, same_plan

SECRET = "s3cret-lab9"
LEAF_NET, NODE_NET = "10.92.0.0/24", "10.91.0.0/24"
# BGP announces a little after the session is up: wait (5 s at most) for the leaf's network in the kernel.
LEARNED = "for _ in $(seq 50); do ip route show proto bird | grep -q 10.92.0.0/24 && break; sleep 0.1; done; "
STATE = "cat /etc/bird/bird.conf 2>/dev/null | md5sum; cat /run/bird/bird.pid 2>/dev/null; ip route show proto bird"


def bird(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.bird_bgp", args, check)


def frr(name: str, args: dict, check: bool = False) -> dict:
    return dict(module(name, "handcni.podnet.frr_bgp", args, check), delegate_to="leaf03")


def node_args(**neighbor) -> dict:
    peer = {"name": "leaf03", "address": LEAF_IP, "remote_as": 65000, "source_address": NODE_IP,
            "password": SECRET, "hold_time": 9, "keepalive_time": 3, "connect_retry_time": 2,
            "import_prefixes": [{"prefix": "10.0.0.0/8", "le": 24}], "export_prefixes": [NODE_NET]}
    peer.update(neighbor)
    return {"router_id": NODE_IP, "local_as": 65001, "networks": [NODE_NET], "neighbors": [peer],
            "wait_established": True, "wait_timeout": 30}


LEAF_ARGS = {"router_id": LEAF_IP, "local_as": 65000, "networks": [LEAF_NET], "hostname": "leaf03",
             "neighbors": [{"name": "worker1", "address": NODE_IP, "remote_as": 65001, "password": SECRET,
                            "hold_time": 9, "keepalive_time": 3, "connect_retry_time": 2,
                            "import_prefixes": [NODE_NET], "export_prefixes": [LEAF_NET]}],
             "wait_established": True, "wait_timeout": 30}


def sessions(result: dict) -> dict:
    return {name: (s["state"], s["since"], s["established_count"]) for name, s in result["sessions"].items()}


@pytest.fixture(scope="module")
def lab(lab):
    lab.sh("ip", "route", "add", "blackhole", "10.77.0.0/16")  # someone else's route: never touched
    return lab


def test_lifecycle(lab):
    moved = node_args(hold_time=12, keepalive_time=4)
    r = lab.play(
        raw("start", STATE),
        bird("planned", node_args(), check=True), raw("after planned", STATE),
        frr("leaf", dict(LEAF_ARGS, wait_established=False)),
        bird("create", node_args()), raw("made", LEARNED + STATE), raw("protocols", "birdc show protocols"),
        bird("again", node_args()), frr("leaf again", LEAF_ARGS),
        bird("bad as", dict(node_args(), local_as=0)),
        bird("bad filter", node_args(import_prefixes=[{"prefix": "10.0.0.0/33"}])),
        bird("no address", node_args(address=None)),
        bird("does not parse", node_args(name="device")),  # a BIRD keyword as protocol name
        raw("after bad input", STATE),
        bird("change planned", moved, check=True), bird("change", moved), bird("change again", moved),
        raw("changed", "grep -c 'hold time 12' /etc/bird/bird.conf; ls -l /etc/bird/bird.conf"),
        bird("wrong password", dict(node_args(password="not-the-one"), wait_timeout=8)),
        bird("right password", node_args()), raw("before absent planned", LEARNED + STATE),
        bird("absent planned", {"state": "absent"}, check=True), raw("after absent planned", STATE),
        bird("absent", {"state": "absent"}), raw("gone", STATE + "; ip route show 10.77.0.0/16; test -e /run/bird && echo RUNDIR-LEFT"),
        bird("absent again", {"state": "absent"}),
        frr("leaf absent", {"state": "absent"}), raw("leaf gone", "ls /etc/frr; ip route show proto bgp; test -e /run/frr && echo RUNDIR-LEFT"),
        frr("leaf absent again", {"state": "absent"}),
    )
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the node"
    assert changed(r["planned"]) and r["planned"]["running"] is False
    assert r["planned"]["actions"] == ["write /etc/bird/bird.conf (checked with bird -p)",
                                       "start bird (-c /etc/bird/bird.conf -s /run/bird/bird.ctl -P /run/bird/bird.pid)"]
    assert same_plan(r["planned"], r["create"])
    assert changed(r["leaf"]) and r["leaf"]["running"]
    assert r["create"]["sessions"]["leaf03"]["established"] and r["create"]["running"]
    assert f"{LEAF_NET} via {LEAF_IP}" in r["made"]["stdout"]  # learned, in the kernel
    assert "Established" in r["protocols"]["stdout"]
    # a second run changes nothing and resets no session, on either side
    assert not changed(r["again"]) and r["again"]["actions"] == []
    assert sessions(r["again"]) == sessions(r["create"])
    assert not changed(r["leaf again"]) and r["leaf again"]["sessions"]["worker1"]["established_count"] == 1
    # bad input fails naming the field, before anything changes
    assert fails_naming(r["bad as"], "local_as:")
    assert fails_naming(r["bad filter"], "neighbors[0].import_prefixes[0].prefix:")
    assert fails_naming(r["no address"], "neighbors[0].address:")
    assert fails_naming(r["does not parse"], "the rendered configuration does not parse (bird -p)")
    assert r["after bad input"]["stdout"] == r["made"]["stdout"]
    # a change: planned as done, the file rewritten and BIRD told, then nothing more
    assert same_plan(r["change planned"], r["change"])
    assert r["change"]["actions"] == ["write /etc/bird/bird.conf (checked with bird -p)", "birdc configure"]
    assert not changed(r["change again"])
    assert r["changed"]["stdout"].startswith("1\n-rw------- 1 root root")
    # the leaf does not have this password: the session stays down and the failure names it
    assert r["wrong password"]["failed"]
    assert r["wrong password"]["msg"].startswith("BGP sessions not established within 8s: leaf03 (192.168.210.254, "
                                                 "AS 65000): BGP state")
    assert r["right password"]["sessions"]["leaf03"]["established"]
    # absent: planned as done, BIRD stopped by its PID file, its routes and config gone, nobody else's
    assert r["after absent planned"]["stdout"] == r["before absent planned"]["stdout"], "check mode stopped BIRD"
    assert same_plan(r["absent planned"], r["absent"])
    assert r["absent"]["actions"][0].startswith("stop bird (PID ")
    assert "proto bird" not in r["gone"]["stdout"] and "blackhole 10.77.0.0/16" in r["gone"]["stdout"]
    assert not changed(r["absent again"]) and r["absent again"]["running"] is False
    assert changed(r["leaf absent"]) and not changed(r["leaf absent again"])
    assert "handcni" not in r["leaf gone"]["stdout"] and "proto bgp" not in r["leaf gone"]["stdout"]
    assert "RUNDIR-LEFT" not in r["gone"]["stdout"] + r["leaf gone"]["stdout"]  # /run/bird, /run/frr: made, removed
    # never a password in any result, diff or action
    assert SECRET not in json.dumps(r) and "not-the-one" not in json.dumps(r)
    assert "<hidden" in r["create"]["diff"]["after"]
    assert diffs_agree({k: v for k, v in r.items() if k not in ("wrong password",)}) == []
