"""handcni.podnet.ipip_tunnel through Ansible on a throwaway lab node (worker1), on this machine's kernel.

This kernel may have no ipip module (the test machine's has none): then what runs here is everything
that needs no IPIP device (validation naming the field, check mode, prune and absent with nothing
of ours, refusing links of others) and the clear failure of a real create. The device's whole
lifecycle, for real, runs in user-mode Linux: tests/uml/ipip_tunnel.yml, in `make test-uml`.
"""
from __future__ import annotations

import pytest
from conftest import NODE_IP, changed, diffs_agree, fails_naming, module, part, raw, scenario, snapshot


def ipip(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.ipip_tunnel", args, check)


TUNNEL = {"tunnels": [{"name": "ipt0", "local": NODE_IP, "mtu": 1480, "addresses": ["10.252.0.0/32"]}]}
PLAN = scenario(
    "plan",
    snapshot("start"),
    ipip("planned", TUNNEL, check=True), snapshot("after planned"),
    ipip("create", TUNNEL), snapshot("after create"),
    ipip("cleanup", {"tunnels": [{"name": "ipt0"}], "state": "absent"}),
    ipip("absent, nothing there", {"tunnels": [{"name": "ipt9"}], "state": "absent"}),
    ipip("prune, nothing of ours", {"tunnels": [], "prune": True}),
    snapshot("end"),
)

GOOD = {"name": "ipg0", "local": NODE_IP}
BAD = {
    "tunnels[1].local: the node's underlay IPv4 address is required": {"name": "ipb0"},
    "tunnels[1].local: 'fd00::21' is not an IPv4 address (IPIP carries IPv4 over IPv4)": {
        "name": "ipb0", "local": "fd00::21"},
    "tunnels[1].remote: '192.168.230.300' is not a valid IP address": dict(GOOD, name="ipb0", remote="192.168.230.300"),
    "tunnels[1].ttl: TTL 256 is out of range 0..255": dict(GOOD, name="ipb0", ttl=256),
    "tunnels[1].mtu: MTU 40 is out of range 68..65535": dict(GOOD, name="ipb0", mtu=40),
    "tunnels[1].name: interface name 'ipip-0123456789a' is longer than 15 bytes": dict(GOOD, name="ipip-0123456789a"),
    "tunnels[1].name: tunl0 is the kernel's fallback tunnel; choose another name": dict(GOOD, name="tunl0"),
    "tunnels[1].addresses[0]: '10.252.0.0' is not an address with a prefix length": dict(
        GOOD, name="ipb0", addresses=["10.252.0.0"]),
    "tunnels[1].name: 'ipg0' is listed twice": GOOD,
    "tunnels[1].name: link eth0 in the host namespace exists and was not made by handcni.podnet": dict(
        GOOD, name="eth0"),
    "tunnels[1].name: brq in the host namespace is a bridge, not an ipip tunnel": dict(GOOD, name="brq"),
}
BAD_INPUT = scenario(
    "bad input",
    module("a bridge of ours", "handcni.podnet.bridge", {"bridges": [{"name": "brq"}]}),
    snapshot("before"),
    *(ipip(message, {"tunnels": [GOOD, item]}) for message, item in BAD.items()),
    ipip("no such netns", {"netns": "nope", "tunnels": [GOOD]}),
    ipip("prune leaves the bridge", {"tunnels": [], "prune": True}),
    snapshot("after"),
    module("remove the bridge", "handcni.podnet.bridge", {"bridges": [{"name": "brq"}], "state": "absent"}),
)


@pytest.fixture(scope="module")
def results(lab):
    return lab.play(*PLAN, *BAD_INPUT, raw("kernel has ipip", "ip link add ipip-probe type ipip local 10.0.0.1 "
                                                              "&& ip link del ipip-probe"))


def test_check_mode_plans_the_create_and_changes_nothing(results):
    r = part(results, "plan")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the kernel"
    assert changed(r["planned"]) and r["planned"]["actions"] == [f"create ipip ipt0 (local {NODE_IP})"]
    assert r["planned"]["diff"]["before"] == {"ipt0": {"name": "ipt0", "present": False}}
    assert r["planned"]["diff"]["after"] == {"ipt0": {"name": "ipt0", "local": NODE_IP, "ttl": 0, "mtu": 1480,
                                                      "addresses": ["10.252.0.0/32"], "up": True}}
    assert not changed(r["absent, nothing there"]) and r["absent, nothing there"]["actions"] == []
    assert not changed(r["prune, nothing of ours"]) and r["prune, nothing of ours"]["actions"] == []
    assert r["start"]["stdout"] == r["end"]["stdout"]


def test_a_real_create_works_or_says_the_kernel_cannot(results):
    r = part(results, "plan")
    if results["kernel has ipip"]["failed"]:
        message = (f"create ipip ipt0 (local {NODE_IP}) in the host namespace: this kernel cannot make ipip devices "
                   "(no ipip module: modprobe ipip)")
        assert fails_naming(r["create"], message)
        assert r["create"]["actions"] == [f"create ipip ipt0 (local {NODE_IP})"] and not r["create"]["changed"]
        assert r["after create"]["stdout"] == r["start"]["stdout"], "a failed create left something behind"
    else:  # a kernel with ipip: the device is there, and goes again
        assert changed(r["create"]) and " ipt0@NONE:" in r["after create"]["stdout"]
        assert changed(r["cleanup"])


def test_bad_input_fails_naming_the_field_and_changes_nothing(results):
    r = part(results, "bad input")
    assert changed(r["a bridge of ours"])
    for message in BAD:
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
    assert fails_naming(r["no such netns"], "netns: network namespace 'nope' does not exist")
    assert not changed(r["prune leaves the bridge"]), "prune touched a link of another kind"
    assert r["before"]["stdout"] == r["after"]["stdout"] and " brq:" in r["after"]["stdout"]
    assert diffs_agree(r) == []
