"""handcni.podnet.pods through Ansible on a throwaway lab node (worker1): a node's whole pod wiring in one run.

Every scenario of this file runs in one ansible-playbook (the `results` fixture); each test reads its part.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import NODE_IP, changed, diffs_agree, fails_naming, module, part, raw, same_plan, scenario, snapshot

ROOT = Path(__file__).resolve().parents[2]
# The node-side restore, as its watcher runs it (issue 24), with the Python the modules ran with.
RESTORE = f"{ROOT}/.venv/bin/python {ROOT}/plugins/module_utils/_restore.py"
FORWARD = {"net.ipv4.ip_forward": 1}


def pods(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.pods", dict(args, prune=True), check)


def wiring(mode: str, *pods_: tuple, **extra) -> dict:
    """Pods on 10.252.0.0/24 (one with a fixed address, one allocated), on br-pt (seed labs 1 and 3) or routed,
    Calico's way (seed lab 2): proxy ARP for 169.254.1.1, a host route each."""
    return dict({"pods": [dict({"name": name, "veth": f"vpt-{name}"}, **({"ip": ip} if ip else {})) for name, ip in pods_],
                 "cidr": "10.252.0.0/24", "mode": mode, "gateway_style": "proxy_arp", "bridge": "br-pt",
                 "sysctls": FORWARD}, **extra)


TWO = (("pta", "10.252.0.1"), ("ptb", None))  # ptb is given the lowest free address: 10.252.0.2
BRIDGED = wiring("bridge", *TWO, restore="10-pods")  # with a restore record, as the role runs it on real nodes
ROUTED = wiring("routed", *TWO, restore="10-pods")
PING = "ip netns exec pta ping -c1 -W2 -n"
LIFECYCLE = scenario(
    "lifecycle",
    snapshot("start"), pods("planned", BRIDGED, check=True), snapshot("after planned"),
    pods("wire", BRIDGED), pods("again", BRIDGED),
    raw("pod to pod", f"{PING} 10.252.0.2"), raw("full MTU", f"{PING} -M do -s 1472 10.252.0.2"),
    raw("one byte more", f"{PING} -M do -s 1473 10.252.0.2"),
    snapshot("before routed planned"), pods("routed planned", ROUTED, check=True), snapshot("after routed planned"),
    pods("routed", ROUTED), pods("routed again", ROUTED),
    raw("routed pod to pod", f"{PING} 10.252.0.2"), raw("routed pod to node", f"{PING} {NODE_IP}"),
    raw("route deleted", f"ip route del 10.252.0.2/32; {RESTORE} check"), raw("restore", f"{RESTORE} restore"),
    raw("restored", f"{RESTORE} check && {PING} 10.252.0.2"),
    # a pod gone from the inventory: its address, namespace, veth (gone with the namespace) and route go in one run
    pods("one pod fewer", wiring("routed", TWO[0], restore="10-pods")),
    raw("left", "ip netns list; ip -o link; ip route; cat /var/lib/handcni/ipam/*.json"),
    pods("none", wiring("routed", sysctls={}, restore="10-pods")), snapshot("end"),
    raw("records", "ls /var/lib/handcni/restore; cat /var/lib/handcni/ipam/*.json"),
)

# Every option is checked, and every address worked out, before anything changes: a bad one leaves nothing behind.
GOOD = wiring("bridge", ("ptc", None))
BAD = {
    "pods[1].name: 'ptc' is listed twice": dict(GOOD, pods=[{"name": "ptc"}, {"name": "ptc"}]),
    "pods[0].ip: 10.99.0.1 is not a usable address of 10.252.0.0/24": dict(GOOD, pods=[{"name": "ptc", "ip": "10.99.0.1"}]),
    "pods[0].veth: 'vpt-0123456789abcdef' is longer than 15 bytes": dict(GOOD, pods=[{"name": "ptc",
                                                                                      "veth": "vpt-0123456789abcdef"}]),
    "sysctls: 'kernel.panic' is not a net.* sysctl name": dict(GOOD, sysctls={"kernel.panic": 1}),
    "bridge: interface name 'br-0123456789abcdef' is longer than 15 bytes": dict(GOOD, bridge="br-0123456789abcdef"),
    "mtu: MTU 50 is out of range": dict(GOOD, mtu=50),
    "cidr: '10.252.0.1/24' is not a valid network": dict(GOOD, cidr="10.252.0.1/24"),
    "cidr6: '10.253.0.0/24' is not an IPv6 network": dict(GOOD, cidr6="10.253.0.0/24"),
    "pods[1]: no free address left in 10.252.0.0/30 for pod ptd": dict(GOOD, cidr="10.252.0.0/30",
                                                                       pods=[{"name": "ptc"}, {"name": "ptd"}]),
}
BAD_INPUT = scenario("bad input", snapshot("before"), *(pods(message, args) for message, args in BAD.items()),
                     snapshot("after"))


@pytest.fixture(scope="module")
def results(lab):
    return lab.play(*LIFECYCLE, *BAD_INPUT)


def test_one_run_wires_pods_that_talk_and_a_second_changes_nothing(results):
    r = part(results, "lifecycle")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the kernel"
    assert same_plan(r["planned"], r["wire"]) and changed(r["wire"])
    actions = r["wire"]["actions"]
    for action in ("allocate 10.252.0.1 to pta", "allocate 10.252.0.2 to ptb", "set net.ipv4.ip_forward 0 -> 1",
                   "create netns pta", "create bridge br-pt",
                   "create veth vpt-pta <-> pta/eth0", "save the restore payload /var/lib/handcni/restore/lib/pods.zip",
                   "save the restore record /var/lib/handcni/restore/10-pods.json"):
        assert action in actions, (action, actions)
    # the parts in their order: addresses, sysctls, namespaces, bridge, veths, then the record
    assert actions.index("allocate 10.252.0.2 to ptb") < actions.index("create netns pta") < actions.index(
        "create bridge br-pt") < actions.index("create veth vpt-pta <-> pta/eth0")
    assert not changed(r["again"]) and r["again"]["actions"] == []
    assert "veths" not in r["again"] and r["again"]["sysctls"] == {"net.ipv4.ip_forward": "1"}
    assert [v["name"] for v in r["again"]["diff"]["after"]["veth"].values()] == ["vpt-pta", "vpt-ptb"]
    assert r["again"]["pods"] == [{"name": "pta", "ip": "10.252.0.1"}, {"name": "ptb", "ip": "10.252.0.2"}]
    for check in ("pod to pod", "full MTU"):
        assert r[check]["rc"] == 0, (check, r[check]["stdout"])
    assert r["one byte more"]["rc"] != 0  # DF at MTU + 1 does not fit
    assert diffs_agree(r) == []


def test_switching_to_routed_removes_the_bridge_and_routes_each_pod(results):
    r = part(results, "lifecycle")
    assert r["before routed planned"]["stdout"] == r["after routed planned"]["stdout"]
    actions, planned = r["routed"]["actions"], r["routed planned"]["actions"]
    # check mode deletes no bridge, so it also plans taking the veths out of it, which the deletion did
    assert [a for a in planned if a not in actions] == ["set vpt-pta master br-pt -> ", "set vpt-ptb master br-pt -> "]
    assert [a for a in planned if a in actions] == actions
    assert "delete bridge br-pt" in actions and "add route 10.252.0.2/32 dev vpt-ptb" in actions, actions
    assert not changed(r["routed again"])
    assert r["routed pod to pod"]["rc"] == 0, r["routed pod to pod"]["stdout"]
    assert r["routed pod to node"]["rc"] == 0, r["routed pod to node"]["stdout"]


def test_the_one_record_puts_back_what_a_manager_removed(results):
    r = part(results, "lifecycle")
    assert r["route deleted"]["rc"] == 1 and "10-pods: route 10.252.0.2/32" in r["route deleted"]["stdout"]
    assert r["restore"]["rc"] == 0 and "10-pods: add route 10.252.0.2/32 dev vpt-ptb" in r["restore"]["stdout"], \
        r["restore"]["stdout"]
    assert r["restored"]["rc"] == 0, r["restored"]["stdout"]


def test_a_pod_gone_from_the_list_is_removed_whole(results):
    r = part(results, "lifecycle")
    assert changed(r["one pod fewer"]), r["one pod fewer"].get("msg")
    assert {"release 10.252.0.2 of ptb", "delete netns ptb"} <= set(r["one pod fewer"]["actions"])
    assert "ptb" not in r["left"]["stdout"] and "10.252.0.2" not in r["left"]["stdout"] and "pta" in r["left"]["stdout"]


def test_no_pods_leaves_nothing_of_ours(results):
    r = part(results, "lifecycle")
    assert changed(r["none"])
    assert r["end"]["stdout"] == r["start"]["stdout"], "something of the pods is left"
    assert '"pods": {}' in r["records"]["stdout"] and "10.252.0.1" not in r["records"]["stdout"]  # every address released


def test_bad_input_in_any_part_fails_naming_it_before_any_change(results):
    r = part(results, "bad input")
    for message in BAD:
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
        assert r[message]["actions"] == [], (message, r[message]["actions"])
    assert r["before"]["stdout"] == r["after"]["stdout"]
