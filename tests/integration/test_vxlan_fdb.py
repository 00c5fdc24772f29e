"""handcni.podnet.vxlan_fdb through Ansible on a throwaway lab node (worker1, underlay eth0, MTU 1500).

Every scenario of this file runs in one ansible-playbook (the `results` fixture); each test reads its part.
"""
from __future__ import annotations

import pytest
from ansible_collections.handcni.podnet.plugins.module_utils._links import provisional_name
from conftest import LEAF_IP, NODE_IP, changed, diffs_agree, fails_naming, module, part, raw, same_plan, scenario, snapshot

MAC = "0e:00:0a:fb:00:00"
P1 = {"mac": "0e:00:0a:fb:00:01", "dst": "192.168.210.31", "ip": "10.251.1.0"}
P2 = {"mac": "0e:00:0a:fb:00:02", "dst": "192.168.210.32", "ip": "10.251.2.0"}
P3 = {"mac": "0e:00:0a:fb:00:03", "dst": "192.168.210.33"}  # an FDB entry without a neighbour entry
P1_MOVED = dict(P1, dst="192.168.210.41")
# Someone else's: a VXLAN device with its entries, a learned (not permanent) neighbour on ours, a route.
FOREIGN_ROUTE = f"10.77.0.0/16 via {LEAF_IP} dev eth0"
STRANGER_MAC = "0e:00:0a:fb:09:09"


def vxlan(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.vxlan_fdb", args, check)


def device(**changes) -> dict:
    return {"vxlans": [dict({"name": "vxt", "vni": 42, "local": NODE_IP, "dev": "eth0", "mtu": 1400, "mac": MAC,
                             "addresses": ["10.251.0.0/32"], "peers": [P1, P2]}, **changes)]}


def kernel(name: str, dev: str = "vxt") -> dict:
    """The device, its FDB and its permanent neighbours, as ip and bridge show them."""
    return raw(name, f"ip -d -o link show {dev}; ip -o -4 addr show dev {dev}; bridge fdb show dev {dev}; "
                     f"ip neigh show dev {dev} nud permanent")


def entries(name: str) -> dict:
    """Every FDB entry and permanent neighbour of the node's VXLAN devices, for before/after comparisons."""
    return snapshot(name, "bridge fdb show | grep -E 'dev (vxt|vxf) '; ip neigh show nud permanent")


FIRST = device()
SECOND = device(mtu=1450, peers=[P1_MOVED, P3])
GONE = {"vxlans": [{"name": "vxt"}], "state": "absent"}
LIFECYCLE = scenario(
    "lifecycle",
    entries("start"), vxlan("planned", FIRST, check=True), entries("after planned"),
    vxlan("create", FIRST), kernel("made"), raw("mac set at creation", "cat /sys/class/net/vxt/addr_assign_type"),
    vxlan("again", FIRST),
    entries("before change planned"), vxlan("change planned", SECOND, check=True), entries("after change planned"),
    vxlan("change", SECOND), kernel("changed"), vxlan("change again", SECOND),
    vxlan("prune planned", dict(SECOND, prune=True), check=True),
    vxlan("prune", dict(SECOND, prune=True)), kernel("pruned"),
    vxlan("new vni", dict(device(vni=43, mtu=1450, peers=[P1_MOVED, P3]), prune=True)), kernel("replaced"),
    entries("before absent planned"), vxlan("absent planned", GONE, check=True), entries("after absent planned"),
    vxlan("absent", GONE), raw("gone", "ip -o link show vxt; bridge fdb show dev vxt"),
    vxlan("absent again", GONE),
)

VNI = scenario(
    "vni",
    vxlan("create", device(peers=[P1])),
    # An entry of ours changed by hand to another VNI: the kernel now reports it (it omits only the device's own).
    raw("by hand", f"bridge fdb replace {P1['mac']} dev vxt dst {P1['dst']} vni 99 self permanent && "
                   "bridge fdb show dev vxt"),
    vxlan("repair", device(peers=[P1])), kernel("repaired"),
    vxlan("repair again", device(peers=[P1])),
    vxlan("cleanup", GONE),
)

GOOD = {"name": "vxg", "vni": 7, "local": NODE_IP, "dev": "eth0", "peers": [P1]}
BAD = {
    "vxlans[1].vni: VNI 0 is out of range 1..16777215": dict(GOOD, name="vxb", vni=0),
    "vxlans[1].vni: VNI 16777216 is out of range 1..16777215": dict(GOOD, name="vxb", vni=16777216),
    "vxlans[1].vni: a VNI (1..16777215) is required": {"name": "vxb"},
    "vxlans[1].port: UDP port 0 is out of range 1..65535": dict(GOOD, name="vxb", port=0),
    "vxlans[1].port: UDP port 65536 is out of range 1..65535": dict(GOOD, name="vxb", port=65536),
    "vxlans[1].name: interface name 'vxlan-0123456789' is longer than 15 bytes": dict(GOOD, name="vxlan-0123456789"),
    "vxlans[1].mac: 'zz:00:0a:fb:00:00' is not a MAC address": dict(GOOD, name="vxb", mac="zz:00:0a:fb:00:00"),
    "vxlans[1].local: '192.168.210.300' is not a valid IP address": dict(GOOD, name="vxb", local="192.168.210.300"),
    "vxlans[1].peers[0].mac: '0e:00:0a:fb:00' is not a MAC address": dict(
        GOOD, name="vxb", peers=[dict(P1, mac="0e:00:0a:fb:00")]),
    "vxlans[1].peers[0].dst: '192.168.210' is not a valid IP address": dict(
        GOOD, name="vxb", peers=[dict(P1, dst="192.168.210")]),
    "vxlans[1].peers[0].ip: 'ten' is not a valid IP address": dict(GOOD, name="vxb", peers=[dict(P1, ip="ten")]),
    "vxlans[1].peers[0].dst: fd00::31 is not of the same address family as vxlans[1].local": dict(
        GOOD, name="vxb", peers=[dict(P1, dst="fd00::31")]),
    "vxlans[1].dev: no link named nope0 in the host namespace": dict(GOOD, name="vxb", dev="nope0"),
    "vxlans[1].mtu: 1451 does not fit the underlay eth0 (MTU 1500) with 50 bytes of VXLAN; at most 1450": dict(
        GOOD, name="vxb", mtu=1451),
    "vxlans[1].name: 'vxg' is listed twice": GOOD,
    "vxlans[1].name: link eth0 in the host namespace exists and was not made by handcni.podnet": dict(
        GOOD, name="eth0"),
    "vxlans[1].name: link vxf in the host namespace exists and was not made by handcni.podnet": dict(
        GOOD, name="vxf"),
}
BAD_INPUT = scenario(
    "bad input",
    entries("before"),
    # a good device listed first: nothing is made when a later one is bad
    *(vxlan(message, {"vxlans": [GOOD, item]}) for message, item in BAD.items()),
    vxlan("no such netns", {"netns": "nope", "vxlans": [GOOD]}),
    vxlan("foreign, absent", {"vxlans": [{"name": "vxf"}], "state": "absent"}),
    entries("after"),
)

PRUNE = scenario(
    "prune",
    vxlan("two devices", {"vxlans": [dict(GOOD, name="vxp1"), dict(GOOD, name="vxp2", vni=8, peers=[P2])]}),
    raw("a learned neighbour on ours", f"ip neigh add 10.251.9.9 lladdr {STRANGER_MAC} dev vxp1 nud stale"),
    vxlan("prune planned", {"vxlans": [dict(GOOD, name="vxp1", peers=[])], "prune": True}, check=True),
    vxlan("prune", {"vxlans": [dict(GOOD, name="vxp1", peers=[])], "prune": True}),
    raw("left", "ip -o link; bridge fdb show | grep -E 'dev (vxp1|vxp2|vxf) '; ip neigh show nud all; ip route"),
    vxlan("prune again", {"vxlans": [dict(GOOD, name="vxp1", peers=[])], "prune": True}),
    vxlan("prune everything", {"vxlans": [], "prune": True}),
    raw("end", "ip -o link; bridge fdb show dev vxf; ip neigh show dev vxf; ip route"),
)

IN_NETNS = scenario(
    "in a netns",
    vxlan("create", {"netns": "nv", "vxlans": [{"name": "vxn", "vni": 5, "peers": [P1]}]}),
    raw("there", "ip -n nv -d -o link show vxn; bridge -n nv fdb show dev vxn; ip -n nv neigh show dev vxn"),
    raw("not here", "ip -o link show vxn"),
    vxlan("again", {"netns": "nv", "vxlans": [{"name": "vxn", "vni": 5, "peers": [P1]}]}),
    vxlan("absent", {"netns": "nv", "vxlans": [{"name": "vxn"}], "state": "absent"}),
)

# What a run killed after making vxc, before naming it, leaves: a device on vxc's VNI and port under a
# provisional name, which the kernel would not let a second device share.
LEFT = provisional_name("vxc")
CUT_SHORT = scenario(
    "cut short",
    raw("left", f"ip link add {LEFT} type vxlan id 44 dstport 4789 local {NODE_IP} dev eth0 && ip -o link"),
    vxlan("repair", {"vxlans": [{"name": "vxc", "vni": 44, "local": NODE_IP, "dev": "eth0"}]}),
    raw("repaired", "ip -d -o link show type vxlan"),
    vxlan("removed", {"vxlans": [{"name": "vxc"}], "state": "absent"}),
)


@pytest.fixture(scope="module")
def results(lab):
    lab.sh("ip", "link", "add", "vxf", "type", "vxlan", "id", "99", "dstport", "4789", "local", NODE_IP, "dev", "eth0")
    lab.sh("bridge", "fdb", "add", STRANGER_MAC, "dev", "vxf", "dst", "192.168.210.99")
    lab.sh("ip", "neigh", "add", "10.251.99.0", "lladdr", STRANGER_MAC, "dev", "vxf")
    lab.sh("ip", "route", "add", *FOREIGN_ROUTE.split())
    lab.sh("ip", "netns", "add", "nv")
    return lab.play(*LIFECYCLE, *VNI, *BAD_INPUT, *PRUNE, *IN_NETNS, *CUT_SHORT)


def test_lifecycle(results):
    r = part(results, "lifecycle")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the kernel"
    assert changed(r["planned"]) and same_plan(r["planned"], r["create"])
    assert r["create"]["actions"] == [
        f"create vxlan vxt (vni 42, port 4789, local {NODE_IP}, dev eth0, nolearning)",
        f"add fdb {P1['mac']} dst {P1['dst']} dev vxt", f"add fdb {P2['mac']} dst {P2['dst']} dev vxt",
        f"add neigh {P1['ip']} lladdr {P1['mac']} dev vxt", f"add neigh {P2['ip']} lladdr {P2['mac']} dev vxt",
    ]
    made = r["made"]["stdout"]
    assert f"vxlan id 42 local {NODE_IP} dev eth0" in made and "nolearning" in made and "dstport 4789" in made
    assert "mtu 1400" in made and f"link/ether {MAC}" in made and "alias handcni.podnet vxlan_fdb" in made
    assert "inet 10.251.0.0/32" in made
    # NET_ADDR_SET (3), not random: udev's MACAddressPolicy=persistent leaves the VTEP MAC alone (flannel#1155)
    assert r["mac set at creation"]["stdout"].strip() == "3"
    assert f"{P1['mac']} dst {P1['dst']} self permanent" in made and "vni" not in made.split("alias")[1]
    assert f"{P2['ip']} lladdr {P2['mac']} PERMANENT" in made
    # The kernel leaves the device's own VNI out of its FDB entries: normalised, the second run sees no change.
    assert not changed(r["again"]) and r["again"]["actions"] == []

    assert r["before change planned"]["stdout"] == r["after change planned"]["stdout"]
    assert same_plan(r["change planned"], r["change"])
    assert r["change"]["actions"] == [
        "set vxt mtu 1400 -> 1450",
        f"replace fdb {P1['mac']} dst {P1_MOVED['dst']} dev vxt", f"add fdb {P3['mac']} dst {P3['dst']} dev vxt",
    ]
    assert f"{P1['mac']} dst {P1_MOVED['dst']} self permanent" in r["changed"]["stdout"]
    assert P2["mac"] in r["changed"]["stdout"], "without prune, an entry no longer listed stays"
    assert not changed(r["change again"])

    assert same_plan(r["prune planned"], r["prune"])
    assert r["prune"]["actions"] == [f"delete neigh {P2['ip']} dev vxt", f"delete fdb {P2['mac']} dev vxt"]
    pruned = r["pruned"]["stdout"]
    assert P2["mac"] not in pruned and P2["ip"] not in pruned and P1["ip"] in pruned and P3["mac"] in pruned

    assert r["new vni"]["actions"] == [
        "replace vxlan vxt (vni 42 -> 43)",
        f"add fdb {P1['mac']} dst {P1_MOVED['dst']} dev vxt", f"add fdb {P3['mac']} dst {P3['dst']} dev vxt",
        f"add neigh {P1['ip']} lladdr {P1['mac']} dev vxt",
    ]
    replaced = r["replaced"]["stdout"]
    assert "vxlan id 43" in replaced and "mtu 1450" in replaced and f"{P1['mac']} dst {P1_MOVED['dst']}" in replaced

    assert r["before absent planned"]["stdout"] == r["after absent planned"]["stdout"]
    assert same_plan(r["absent planned"], r["absent"]) and r["absent"]["actions"] == ["delete vxlan vxt"]
    assert r["gone"]["stdout"].strip() == "" or "does not exist" in r["gone"]["stdout"] + r["gone"].get("stderr", "")
    assert not changed(r["absent again"])

    assert diffs_agree(r) == []
    before, after = r["change"]["diff"]["before"]["vxt"], r["change"]["diff"]["after"]["vxt"]
    assert before["mtu"] == 1400 and after["mtu"] == 1450
    assert {"mac": P1["mac"], "dst": P1["dst"], "port": 4789, "vni": 42} in before["fdb"]
    assert {"mac": P1["mac"], "dst": P1_MOVED["dst"], "port": 4789, "vni": 42} in after["fdb"]
    assert r["create"]["diff"]["before"]["vxt"] == {"name": "vxt", "present": False}


def test_an_entry_on_another_vni_is_put_back(results):
    r = part(results, "vni")
    assert "vni 99" in r["by hand"]["stdout"]
    assert r["repair"]["actions"] == [f"replace fdb {P1['mac']} dst {P1['dst']} dev vxt"]
    assert "vni 99" not in r["repaired"]["stdout"] and f"{P1['mac']} dst {P1['dst']}" in r["repaired"]["stdout"]
    assert not changed(r["repair again"])
    before = r["repair"]["diff"]["before"]["vxt"]["fdb"]
    assert before == [{"mac": P1["mac"], "dst": P1["dst"], "port": 4789, "vni": 99}]


def test_bad_input_fails_naming_the_field_and_changes_nothing(results):
    r = part(results, "bad input")
    for message in BAD:
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
    assert fails_naming(r["no such netns"], "netns: network namespace 'nope' does not exist")
    assert fails_naming(r["foreign, absent"], "vxlans[0].name: link vxf in the host namespace exists and was not made")
    assert r["before"]["stdout"] == r["after"]["stdout"]
    assert "vxg" not in r["after"]["stdout"] and "vxb" not in r["after"]["stdout"]


def test_prune_removes_only_ours(results):
    r = part(results, "prune")
    assert changed(r["two devices"])
    assert same_plan(r["prune planned"], r["prune"])
    assert r["prune"]["actions"] == [
        f"delete neigh {P1['ip']} dev vxp1", f"delete fdb {P1['mac']} dev vxp1", "delete vxlan vxp2"]
    left = r["left"]["stdout"]
    assert " vxp1:" in left and " vxp2:" not in left
    assert f"10.251.9.9 dev vxp1 lladdr {STRANGER_MAC} STALE" in left, "a learned neighbour on ours is not ours"
    assert f"{STRANGER_MAC} dev vxf dst 192.168.210.99 self permanent" in left
    assert f"10.251.99.0 dev vxf lladdr {STRANGER_MAC} PERMANENT" in left and FOREIGN_ROUTE in left
    assert not changed(r["prune again"])
    assert r["prune everything"]["actions"] == ["delete vxlan vxp1"]
    end = r["end"]["stdout"]
    assert " vxp1:" not in end and " vxf:" in end and "192.168.210.99" in end and "10.251.99.0" in end
    assert FOREIGN_ROUTE in end
    assert diffs_agree(r) == []


def test_in_a_netns(results):
    r = part(results, "in a netns")
    assert changed(r["create"])
    assert "vxlan id 5" in r["there"]["stdout"] and f"{P1['mac']} dst {P1['dst']}" in r["there"]["stdout"]
    assert f"{P1['ip']} lladdr {P1['mac']} PERMANENT" in r["there"]["stdout"]
    assert "vxn" not in r["not here"]["stdout"]
    assert not changed(r["again"]) and changed(r["absent"])


def test_a_create_cut_short_is_repaired(results):
    r = part(results, "cut short")
    assert LEFT in r["left"]["stdout"]
    assert r["repair"]["actions"][:2] == [f"delete vxlan {LEFT} (a create cut short)",
                                          f"create vxlan vxc (vni 44, port 4789, local {NODE_IP}, dev eth0, nolearning)"]
    repaired = r["repaired"]["stdout"]
    assert LEFT not in repaired and "vxc:" in repaired and "id 44" in repaired
    assert changed(r["removed"])
