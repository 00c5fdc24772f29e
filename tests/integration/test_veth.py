"""handcni.podnet.veth through Ansible on a throwaway lab node (worker1): lifecycle, and pods that talk.

Every scenario of this file runs in one ansible-playbook (the `results` fixture); each test reads its part.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import (NODE_IP, changed, diffs_agree, fails_naming, is_up, link_names, module, part, raw, same_plan,
                      scenario, snapshot)

FOREIGN = "fx0"  # someone else's veth pair fx0/fx1 on the node (this kernel has no dummy driver)
FOREIGN_POD = "pf"  # someone else's namespace, with someone else's eth0 in it
BRIDGE = {"bridges": [{"name": "br-it", "mtu": 1500, "addresses": ["10.250.0.254/24"]}]}
PEER_MAC = "02:00:0a:fa:00:01"


def step(name: str, short: str, args: dict, check: bool = False) -> dict:
    return module(name, f"handcni.podnet.{short}", args, check)


def veth(name: str, args: dict, check: bool = False) -> dict:
    return step(name, "veth", args, check)


def pod(letter: str, ip: str, **extra) -> dict:
    """A pod on br-it, as seed lab 3 wires it."""
    return dict({"name": f"vit-{letter}", "peer_netns": f"p{letter}", "master": "br-it", "hairpin": True,
                 "mtu": 1500, "peer_addresses": [f"{ip}/24"],
                 "peer_routes": [{"dst": "default", "via": "10.250.0.254"}]}, **extra)


PODS = {"veths": [pod("a", "10.250.0.1"), pod("b", "10.250.0.2")]}
CHANGED = {"veths": [pod("a", "10.250.0.1", peer_mac=PEER_MAC), pod("b", "10.250.0.2", mtu=1400)]}
GONE = {"veths": [{"name": "vit-a"}, {"name": "vit-b"}], "state": "absent"}
PING = "ip netns exec pa ping -c1 -W2 -n"
LIFECYCLE = scenario(
    "lifecycle",
    step("namespaces", "netns", {"names": ["pa", "pb"]}), step("bridge", "bridge", BRIDGE),
    snapshot("start"), veth("planned", PODS, check=True), snapshot("after planned"),
    veth("create", PODS),
    raw("host sides", "ip -d -o link show vit-a; ip -d -o link show vit-b"),
    raw("pod a", "ip -n pa -d -o link show eth0; ip -n pa -o -4 addr show dev eth0; ip -n pa route"),
    veth("again", PODS),
    raw("pod to pod", f"{PING} 10.250.0.2"), raw("pod to bridge", f"{PING} 10.250.0.254"),
    raw("full MTU", f"{PING} -M do -s 1472 10.250.0.2"), raw("one byte more", f"{PING} -M do -s 1473 10.250.0.2"),
    snapshot("before change planned"), veth("change planned", CHANGED, check=True), snapshot("after change planned"),
    veth("change", CHANGED),
    raw("changed", "ip -n pa -o link show eth0; ip -o link show vit-b; ip -n pb -o link show eth0"),
    raw("b at its MTU", f"{PING} -M do -s 1372 10.250.0.2"), veth("change again", CHANGED),
    snapshot("before absent planned"), veth("absent planned", GONE, check=True), snapshot("after absent planned"),
    veth("absent", GONE), raw("gone", "ip -o link; ip -n pa -o link; ip -n pb -o link"),
    veth("absent again", GONE),
)

ROUTED = {"veths": [{"name": "vit-r", "peer_netns": "pr", "peer_addresses": ["10.251.0.1/32"], "proxy_arp": True,
                     "peer_routes": [{"dst": "default", "via": "169.254.1.1", "onlink": True}]}],
          "restore": "40-veth"}  # with a restore record, as the roles run it on real nodes
TO_POD = {"routes": [{"dst": "10.251.0.1/32", "dev": "vit-r"}]}
ROOT = Path(__file__).resolve().parents[2]
# The node-side restore, as its watcher runs it (issue 24), with the Python the modules ran with.
RESTORE = f"{ROOT}/.venv/bin/python {ROOT}/plugins/module_utils/_restore.py"
# A later sysctl.d file with a glob over every interface, applied by Debian's systemd-sysctl as a restart of
# systemd-sysctl (or udev, for a new link) does: it turns our veth's proxy ARP off (cilium/cilium#10645).
GLOB = "/etc/sysctl.d/99-zzz-proxy-arp-off.conf"
ROUTED_POD = scenario(
    "routed",
    # proxy ARP answers only where the node forwards, as Calico's nodes do
    step("forward", "sysctl", {"sysctls": {"net.ipv4.ip_forward": 1}}),
    veth("planned", ROUTED, check=True), veth("veth", ROUTED), step("route to the pod", "route", TO_POD),
    veth("again", ROUTED),
    raw("proxy_arp", "cat /proc/sys/net/ipv4/conf/vit-r/proxy_arp /proc/sys/net/ipv4/neigh/vit-r/proxy_delay"),
    raw("pod routes", "ip -n pr route"),
    raw("pod to node", f"ip netns exec pr ping -c1 -W2 -n {NODE_IP}"),
    raw("gateway learnt", "ip -n pr neigh show 169.254.1.1"),
    raw("systemd-sysctl", f"printf 'net.ipv4.conf.*.proxy_arp = 0\\n' > {GLOB} && /lib/systemd/systemd-sysctl {GLOB}; "
                          "cat /proc/sys/net/ipv4/conf/vit-r/proxy_arp"),
    raw("check", f"{RESTORE} check"), raw("restore", f"{RESTORE} restore"),
    raw("proxy_arp restored", f"rm {GLOB}; cat /proc/sys/net/ipv4/conf/vit-r/proxy_arp; {RESTORE} check"),
    raw("pod to node again", "ip netns exec pr ip neigh flush all; " f"ip netns exec pr ping -c1 -W2 -n {NODE_IP}"),
    step("route absent", "route", dict(TO_POD, state="absent")),
    veth("absent", {"veths": [{"name": "vit-r"}], "state": "absent", "restore": "40-veth"}),
    raw("record dropped", "ls /var/lib/handcni/restore"),
)

GOOD = {"name": "vit-c", "peer_netns": "pc", "mtu": 1500, "peer_addresses": ["10.250.0.9/24"]}
BAD = {
    "veths[1].name: interface name 'veth-0123456789a' is longer than 15 bytes": {"name": "veth-0123456789a"},
    "veths[1].mtu: MTU 50 is out of range": dict(GOOD, name="vit-d", mtu=50),
    "veths[1].mtu: MTU 70000 is out of range": dict(GOOD, name="vit-d", mtu=70000),
    "veths[1].peer_mac: 'zz:00:00:00:00:01' is not a MAC address": dict(
        GOOD, name="vit-d", peer_mac="zz:00:00:00:00:01"),
    "veths[1].peer_addresses[0]: '10.250.0.300/24' is not a valid address": dict(
        GOOD, name="vit-d", peer_addresses=["10.250.0.300/24"]),
    "veths[1].peer_routes[0].dst: '10.0.0.1/8' is not a valid network": dict(
        GOOD, name="vit-d", peer_routes=[{"dst": "10.0.0.1/8", "via": "10.250.0.254"}]),
    "veths[1].peer_netns: network namespace 'nope' does not exist": dict(GOOD, name="vit-d", peer_netns="nope"),
    "veths[1].name: 'vit-c' is listed twice": GOOD,
    f"veths[1].name: link {FOREIGN} in the host namespace exists and was not made by handcni.podnet": dict(
        GOOD, name=FOREIGN),
    f"veths[1].peer: link eth0 in netns {FOREIGN_POD} exists and was not made by handcni.podnet": dict(
        GOOD, name="vit-d", peer_netns=FOREIGN_POD),
    "veths[1].proxy_ndp[0]: '10.250.0.254' is not an IPv6 address": dict(
        GOOD, name="vit-d", proxy_ndp=["10.250.0.254"]),
    "veths[1].proxy_ndp[1]: 'fe80::1::2' is not a valid IP address": dict(
        GOOD, name="vit-d", proxy_ndp=["fe80::1", "fe80::1::2"]),
}
BAD_INPUT = scenario(
    "bad input",
    snapshot("before"),
    # a good veth listed first: nothing is made when a later one is bad
    *(veth(message, {"veths": [GOOD, item]}) for message, item in BAD.items()),
    veth("no such netns", {"netns": "nope", "veths": [GOOD]}),
    veth("foreign, absent", {"veths": [{"name": FOREIGN}], "state": "absent"}),
    snapshot("after"),
)

GW = "10.254.0.254"
LISTED = {"veths": [{"name": "vit-p1", "peer_netns": "pp1", "addresses": [f"{GW}/32"],
                     "peer_addresses": ["10.254.0.1/32"],
                     "peer_routes": [{"dst": "default", "via": GW, "onlink": True},
                                     {"dst": "10.0.0.0/8", "via": GW, "onlink": True}]}]}
LOCAL_PAIR = {"name": "vit-l", "peer": "vit-lp"}  # both sides on the node
PRUNE = scenario(
    "prune",
    veth("three", {"veths": LISTED["veths"] + [{"name": "vit-p2", "peer_netns": "pp2"}, LOCAL_PAIR]}),
    veth("listed again", LISTED),
    veth("prune planned", dict(LISTED, prune=True), check=True),
    veth("prune", dict(LISTED, prune=True)),
    raw("node", "ip -o link"), raw("pp2", "ip -n pp2 -o link"), raw("foreign pod", f"ip -n {FOREIGN_POD} -o link"),
    veth("prune again", dict(LISTED, prune=True)),
)

# Bugs found and fixed, each kept by its own scenario.
MOVED_AT_5 = {"veths": [pod("e", "10.250.0.5", master=None, hairpin=False)]}
MOVED_AT_6 = {"veths": [pod("e", "10.250.0.6", master=None, hairpin=False)]}
MOVE_ADDRESS = scenario(
    "move address",
    veth("at .5", MOVED_AT_5),
    veth("moved to .6", MOVED_AT_6), raw("routes", "ip -n pe route"), veth("moved again", MOVED_AT_6),
)
UNORDERED = {"veths": [{"name": "vit-o", "peer_netns": "po", "peer_addresses": ["10.249.0.1/32"],
                        "peer_routes": [{"dst": "10.0.0.0/8", "via": "169.254.1.1", "onlink": True},
                                        {"dst": "default", "via": "169.254.1.1", "onlink": True}]}]}
ROUTE_ORDER = scenario(
    "route order",
    veth("create", UNORDERED), veth("again", UNORDERED),
)
MISSING_BRIDGE = scenario(
    "missing bridge",
    snapshot("before"),
    veth("no such bridge", {"veths": [{"name": "vit-m", "peer_netns": "pm", "master": "br-nope"}]}),
    snapshot("after"),
)
# A run stopped between making a pair and marking it (the kernel takes no alias at creation) leaves an
# unmarked pair whose pod end is in our namespace: made again. The same in someone else's namespace is theirs.
CUT = {"veths": [{"name": "vit-k", "peer_netns": "pk", "peer_addresses": ["10.248.0.1/32"]}]}
CUT_SHORT = scenario(
    "cut short",
    step("namespace", "netns", {"names": ["pk"]}),
    raw("half made", "ip link add vit-k type veth peer name eth0 netns pk"),
    veth("made again", CUT), raw("marked", "ip -o link show vit-k; ip -n pk -o link show eth0"),
    veth("again", CUT),
)

# Dual stack: a routed IPv6 pod whose gateway fe80::1 is held by nobody and answered by the host side's proxy NDP
# (Calico style), and two dual-stack pods on a bridge. Proven by traffic, right after creation: no DAD wait.
NODE_IP6 = "fd00:10:246::21"  # an address of the node for the routed pod to reach (on its loopback)
POD6 = "fd00:10:246:1::2"
ROUTED6 = {"name": "vit-r6", "peer_netns": "pr6", "peer_addresses": [f"{POD6}/128"],
           "peer_routes": [{"dst": "::/0", "via": "fe80::1"}], "proxy_ndp": ["fe80::1"]}
BRIDGE6 = {"bridges": [{"name": "br-it6", "mtu": 1500, "addresses": ["10.247.0.254/24", "fd00:10:247::fe/64"]}]}


def pod6(letter: str, host: int) -> dict:
    """A dual-stack pod on br-it6."""
    return {"name": f"vit-6{letter}", "peer_netns": f"p6{letter}", "master": "br-it6", "hairpin": True, "mtu": 1500,
            "peer_addresses": [f"10.247.0.{host}/24", f"fd00:10:247::{host}/64"],
            "peer_routes": [{"dst": "default", "via": "10.247.0.254"}, {"dst": "::/0", "via": "fd00:10:247::fe"}]}


PODS6 = {"veths": [ROUTED6, pod6("a", 1), pod6("b", 2)], "restore": "41-veth6"}
UNPROXIED = dict(PODS6, veths=[dict(ROUTED6, proxy_ndp=[])] + PODS6["veths"][1:])
GONE6 = {"veths": [{"name": v["name"]} for v in PODS6["veths"]], "state": "absent", "restore": "41-veth6"}
PING6 = "ping -6 -c1 -W2 -n"
PINGS6 = f"'pr6 {NODE_IP6}' 'p6a fd00:10:247::2' 'p6a fd00:10:247::fe' 'p6b fd00:10:247::1'"  # pod, then target
CONF6 = "/proc/sys/net/ipv6/conf"
# What snapshots leave out: proxy entries, proxy NDP and forwarding on the node, accept_ra in the pods.
IPV6_STATE = (f"ip -6 neigh show proxy; grep -H . {CONF6}/*/proxy_ndp {CONF6}/*/forwarding",
              f"for ns in pr6 p6a p6b; do ip netns exec $ns grep -H . {CONF6}/*/accept_ra; done 2>/dev/null")
IPV6 = scenario(
    "ipv6",
    # proxy NDP answers only where the node forwards IPv6; the node's own address, without DAD too
    raw("node", "sysctl -qw net.ipv6.conf.all.forwarding=1 && ip link set lo up && "
                f"ip -6 addr add {NODE_IP6}/128 dev lo nodad"),
    step("bridge", "bridge", BRIDGE6),
    snapshot("start", *IPV6_STATE), veth("planned", PODS6, check=True), snapshot("after planned", *IPV6_STATE),
    veth("create", PODS6),
    # every ping in the first step after the create: sooner than DAD (a second at the least) could have ended
    raw("pings at once", f"ip -6 route add {POD6}/128 dev vit-r6; for ping in {PINGS6}; do set -- $ping; "
                         f"ip netns exec $1 {PING6} $2 >/dev/null && echo \"$1 $2 ok\" || echo \"$1 $2 no\"; done"),
    raw("accept_ra", f"for ns in pr6 p6a p6b; do ip netns exec $ns cat {CONF6}/eth0/accept_ra; done"),
    raw("addresses", "ip -n pr6 -6 -o addr show dev eth0 scope global; ip -n p6a -6 -o addr show dev eth0 scope global; "
                     "ip -6 -o addr show dev br-it6 scope global"),
    raw("proxy", f"ip -6 neigh show proxy; cat {CONF6}/vit-r6/proxy_ndp /proc/sys/net/ipv6/neigh/vit-r6/proxy_delay"),
    raw("pod routes", "ip -n pr6 -6 route; ip -n p6a -6 route"),
    raw("gateway learnt", "ip -n pr6 -6 neigh show fe80::1"),
    veth("again", PODS6),
    raw("intact", f"{RESTORE} check"),
    # someone turns proxy NDP off (a sysctl.d glob), adds a proxy entry, and lets a pod take router advertisements
    raw("by hand", "sysctl -qw net.ipv6.conf.vit-r6.proxy_ndp=0 && ip -6 neigh add proxy fe80::2 dev vit-r6 && "
                   "ip netns exec p6a sysctl -qw net.ipv6.conf.eth0.accept_ra=1"),
    raw("broken", f"{RESTORE} check"),
    veth("repair planned", PODS6, check=True), veth("repair", PODS6),
    raw("repaired", f"ip -6 neigh show proxy; cat {CONF6}/vit-r6/proxy_ndp; ip netns exec p6a cat {CONF6}/eth0/accept_ra"),
    snapshot("before unproxy planned", *IPV6_STATE), veth("unproxy planned", UNPROXIED, check=True),
    snapshot("after unproxy planned", *IPV6_STATE),
    veth("unproxy", UNPROXIED),
    raw("unproxied", f"ip -6 neigh show proxy; cat {CONF6}/vit-r6/proxy_ndp"),
    # the pod forgets the gateway's MAC and asks again: nobody answers for fe80::1 now
    raw("denied", f"ip -n pr6 -6 neigh flush dev eth0; ip netns exec pr6 {PING6} {NODE_IP6}"),
    raw("bridged still", f"ip netns exec p6a {PING6} fd00:10:247::2"),
    veth("unproxy again", UNPROXIED),
    veth("absent", GONE6), raw("gone", "ip -o link; ip -6 neigh show proxy"),
)


@pytest.fixture(scope="module")
def results(lab):
    lab.sh("ip", "link", "add", FOREIGN, "type", "veth", "peer", "name", "fx1")
    lab.sh("ip", "netns", "add", FOREIGN_POD)
    lab.sh("ip", "link", "add", "fxp", "type", "veth", "peer", "name", "eth0", "netns", FOREIGN_POD)
    for pod_netns in ("pr", "pc", "pp1", "pp2", "pe", "po", "pm", "pr6", "p6a", "p6b"):  # pods of the later scenarios
        lab.sh("ip", "netns", "add", pod_netns)
    return lab.play(*LIFECYCLE, *ROUTED_POD, *BAD_INPUT, *PRUNE, *MOVE_ADDRESS, *ROUTE_ORDER, *MISSING_BRIDGE,
                    *CUT_SHORT, *IPV6)


def test_lifecycle_of_bridged_pods_that_talk(results):
    r = part(results, "lifecycle")
    assert changed(r["namespaces"]) and changed(r["bridge"])
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the kernel"
    assert changed(r["planned"]) and same_plan(r["planned"], r["create"])
    assert r["create"]["actions"] == ["create veth vit-a <-> pa/eth0", "create veth vit-b <-> pb/eth0"]
    host = r["host sides"]["stdout"].splitlines()
    assert len(host) == 2 and all(is_up(line) for line in host)
    for line in host:
        for fact in ("mtu 1500", "master br-it", "hairpin on", "alias handcni.podnet veth", "link-netns p"):
            assert fact in line, (fact, line)
    pod_a = r["pod a"]["stdout"]
    assert "mtu 1500" in pod_a and "inet 10.250.0.1/24" in pod_a and "default via 10.250.0.254 dev eth0" in pod_a
    assert "alias handcni.podnet veth" in pod_a and is_up(pod_a)

    assert not changed(r["again"]) and r["again"]["actions"] == []
    for check in ("pod to pod", "pod to bridge", "full MTU", "b at its MTU"):
        assert r[check]["rc"] == 0, (check, r[check]["stdout"])
    assert r["one byte more"]["rc"] != 0  # DF at MTU + 1 does not fit

    assert r["before change planned"]["stdout"] == r["after change planned"]["stdout"]
    assert same_plan(r["change planned"], r["change"]) and changed(r["change"])
    assert r["change"]["actions"] == [
        f"set eth0 mac {r['change']['diff']['before']['vit-a']['peer_mac']} -> {PEER_MAC} in netns pa",
        "set vit-b mtu 1500 -> 1400", "set eth0 mtu 1500 -> 1400 in netns pb"]
    pod_a, vit_b, pod_b = r["changed"]["stdout"].splitlines()[:3]
    assert f"link/ether {PEER_MAC}" in pod_a and "mtu 1400" in vit_b and "eth0@" in pod_b and "mtu 1400" in pod_b
    assert not changed(r["change again"])

    assert r["before absent planned"]["stdout"] == r["after absent planned"]["stdout"]
    assert same_plan(r["absent planned"], r["absent"])
    assert r["absent"]["actions"] == ["delete veth vit-a", "delete veth vit-b"]
    assert "vit-" not in r["gone"]["stdout"] and "eth0@" not in r["gone"]["stdout"].split("\n", 2)[-1]
    assert not changed(r["absent again"])
    assert diffs_agree(r) == [], json.dumps({k: r[k].get("diff") for k in diffs_agree(r)})


def test_routed_pod_with_proxy_arp_reaches_the_node(results):
    r = part(results, "routed")
    assert same_plan(r["planned"], r["veth"]) and r["veth"]["actions"] == [
        "create veth vit-r <-> pr/eth0", "save the restore payload /var/lib/handcni/restore/lib/veth.zip",
        "save the restore record /var/lib/handcni/restore/40-veth.json"]
    assert not changed(r["again"])
    assert r["proxy_arp"]["stdout"].split() == ["1", "0"]
    assert "default via 169.254.1.1 dev eth0 proto 201 onlink" in r["pod routes"]["stdout"]
    assert r["pod to node"]["rc"] == 0, r["pod to node"]["stdout"]
    assert "lladdr" in r["gateway learnt"]["stdout"]  # the node answered for 169.254.1.1
    assert changed(r["route absent"]) and changed(r["absent"])
    assert diffs_agree(r) == []


def test_a_sysctl_glob_turning_proxy_arp_off_is_found_and_put_back_by_the_restore(results):
    """systemd-sysctl applies `net.ipv4.conf.*` to every interface, ours too (cilium/cilium#10645): the veth
    record's check names the value, its re-run sets it again, and the pod reaches the node through it."""
    r = part(results, "routed")
    assert r["systemd-sysctl"]["stdout"].split()[-1] == "0", r["systemd-sysctl"]["stdout"]
    assert r["check"]["rc"] == 1 and "40-veth" in r["check"]["stdout"] and "proxy_arp" in r["check"]["stdout"], r["check"]
    assert r["restore"]["rc"] == 0, r["restore"]["stdout"]
    assert r["proxy_arp restored"]["rc"] == 0 and r["proxy_arp restored"]["stdout"].split()[0] == "1"
    assert r["pod to node again"]["rc"] == 0, r["pod to node again"]["stdout"]
    assert "40-veth" not in r["record dropped"]["stdout"]


def test_bad_input_fails_naming_the_field_and_changes_nothing(results):
    r = part(results, "bad input")
    for message in BAD:
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
    assert fails_naming(r["no such netns"], "netns: network namespace 'nope' does not exist")
    assert fails_naming(r["foreign, absent"], f"veths[0].name: link {FOREIGN} in the host namespace exists and was")
    assert r["before"]["stdout"] == r["after"]["stdout"]
    assert "vit-c" not in r["after"]["stdout"]


def test_prune_removes_only_ours(results):
    r = part(results, "prune")
    assert changed(r["three"])
    assert not changed(r["listed again"])
    assert same_plan(r["prune planned"], r["prune"])
    # deleting either side of the local pair deletes both
    assert sorted(r["prune"]["actions"]) in (["delete veth vit-l", "delete veth vit-p2"],
                                             ["delete veth vit-lp", "delete veth vit-p2"])
    assert link_names(r["node"]) >= {"vit-p1", FOREIGN, "fx1", "fxp"}
    assert not link_names(r["node"]) & {"vit-p2", "vit-l", "vit-lp"}
    assert link_names(r["pp2"]) == {"lo"} and "eth0" in link_names(r["foreign pod"])
    assert not changed(r["prune again"])
    assert diffs_agree(r) == [], json.dumps({k: r[k].get("diff") for k in diffs_agree(r)})


def test_moving_a_pod_address_keeps_its_routes(results):
    r = part(results, "move address")
    assert r["moved to .6"]["actions"] == ["set eth0 addresses +10.250.0.6/24 -10.250.0.5/24 in netns pe"]
    assert "default via 10.250.0.254 dev eth0" in r["routes"]["stdout"]
    assert not changed(r["moved again"]), r["moved again"]["actions"]


def test_diff_is_empty_when_nothing_changes_whatever_the_route_order(results):
    r = part(results, "route order")
    assert changed(r["create"]) and not changed(r["again"])
    assert r["again"]["diff"]["before"] == r["again"]["diff"]["after"]


def test_missing_bridge_fails_before_any_change(results):
    r = part(results, "missing bridge")
    assert r["no such bridge"]["failed"] and "br-nope" in r["no such bridge"]["msg"]
    assert r["before"]["stdout"] == r["after"]["stdout"]


def test_a_pair_cut_short_before_its_mark_is_made_again(results):
    r = part(results, "cut short")
    assert r["made again"]["actions"][0] == "delete veth vit-k", r["made again"]["actions"]
    assert r["marked"]["stdout"].count("alias handcni.podnet veth") == 2, r["marked"]["stdout"]
    assert not changed(r["again"])


def kernel(result: dict) -> list:
    """A step's actions but the saving of its restore record."""
    return [action for action in result["actions"] if "restore" not in action]


def test_ipv6_pods_talk_at_once_routed_by_proxy_ndp_and_bridged(results):
    r = part(results, "ipv6")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the kernel"
    assert same_plan(r["planned"], r["create"]) and kernel(r["create"]) == [
        "create veth vit-r6 <-> pr6/eth0", "create veth vit-6a <-> p6a/eth0", "create veth vit-6b <-> p6b/eth0"]
    pings = r["pings at once"]["stdout"].splitlines()
    assert len(pings) == 4 and all(line.endswith(" ok") for line in pings), pings
    assert r["accept_ra"]["stdout"].split() == ["0", "0", "0"]
    addresses = r["addresses"]["stdout"].splitlines()
    assert len(addresses) == 3 and all("nodad" in line and "tentative" not in line for line in addresses), addresses
    assert "fe80::1 dev vit-r6 proxy" in r["proxy"]["stdout"] and r["proxy"]["stdout"].split()[-2:] == ["1", "0"]
    assert "default via fe80::1 dev eth0 proto 201" in r["pod routes"]["stdout"]
    assert "default via fd00:10:247::fe dev eth0 proto 201" in r["pod routes"]["stdout"]
    assert "lladdr" in r["gateway learnt"]["stdout"]  # the node answered for fe80::1
    assert not changed(r["again"]) and r["again"]["actions"] == []
    after = r["create"]["diff"]["after"]
    assert after["vit-r6"]["proxy_ndp"] == ["fe80::1"] and after["vit-r6"]["peer_accept_ra"] == 0
    assert after["vit-6a"]["peer_accept_ra"] == 0 and "proxy_ndp" not in after["vit-6a"]
    assert diffs_agree(r) == [], json.dumps({k: r[k].get("diff") for k in diffs_agree(r)})


def test_ipv6_proxy_ndp_and_accept_ra_are_put_back_and_the_restore_sees_them_gone(results):
    r = part(results, "ipv6")
    assert "41-veth6" not in r["intact"]["stdout"], r["intact"]["stdout"]
    assert r["broken"]["rc"] == 1 and "/proc/sys/net/ipv6/conf/vit-r6/proxy_ndp = 1 (is 0)" in r["broken"]["stdout"]
    assert same_plan(r["repair planned"], r["repair"])
    assert r["repair"]["actions"] == ["set vit-r6 proxy_ndp -fe80::2", "set vit-r6 proxy_ndp_enabled False -> True",
                                      "set p6a/eth0 accept_ra 1 -> 0"]
    assert r["repair"]["diff"]["before"]["vit-r6"]["proxy_ndp"] == ["fe80::1", "fe80::2"]
    assert r["repair"]["diff"]["before"]["vit-r6"]["proxy_ndp_enabled"] is False
    assert r["repaired"]["stdout"].split() == ["fe80::1", "dev", "vit-r6", "proxy", "1", "0"]


def test_removing_proxy_ndp_denies_the_routed_ipv6_pod_its_gateway(results):
    r = part(results, "ipv6")
    assert r["before unproxy planned"]["stdout"] == r["after unproxy planned"]["stdout"], "check mode changed it"
    assert same_plan(r["unproxy planned"], r["unproxy"])
    assert kernel(r["unproxy"]) == ["set vit-r6 proxy_ndp -fe80::1", "set vit-r6 proxy_ndp_enabled True -> False"]
    assert r["unproxied"]["stdout"].split() == ["0"]  # no proxy entry left, proxy NDP off
    assert r["denied"]["rc"] != 0, r["denied"]["stdout"]
    assert r["bridged still"]["rc"] == 0, r["bridged still"]["stdout"]
    assert not changed(r["unproxy again"])
    assert "proxy_ndp" not in r["unproxy"]["diff"]["after"]["vit-r6"]
    assert kernel(r["absent"]) == ["delete veth vit-r6", "delete veth vit-6a", "delete veth vit-6b"]
    assert not link_names(r["gone"]) & {"vit-r6", "vit-6a", "vit-6b"} and "proxy" not in r["gone"]["stdout"]
