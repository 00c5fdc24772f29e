"""netns, bridge, veth, route, sysctl and ipam through Ansible on a throwaway lab node (worker1).

Every module goes through: check mode (predicts the real run, kernel untouched) → create → again (no
change) → change → absent → absent again, plus bad input (fails naming the field, kernel untouched),
objects someone else made next to ours (never touched), and traffic where there is traffic to send.
"""
from __future__ import annotations

import json
import subprocess

import pytest
from conftest import NODE_IP, ROOT, changed, module, raw, throwaway_lab

SNAPSHOT = ("ip -d -o link | sed 's/ promiscuity.*//'; ip -o addr; ip route show table all; ip netns list; "
            "for n in $(ip netns list | cut -d' ' -f1); do echo \"== $n\"; ip -n $n -o addr; ip -n $n route; done")


def snap(name: str) -> dict:
    return raw(name, SNAPSHOT)


def step(name: str, short: str, args: dict, check: bool = False) -> dict:
    return module(name, f"handcni.podnet.{short}", args, check)


def fails_naming(result: dict, field: str) -> bool:
    return result["failed"] and result["msg"].startswith(field)


def same_plan(planned: dict, real: dict) -> bool:
    return planned["changed"] == real["changed"] and planned["actions"] == real["actions"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with throwaway_lab(tmp_path_factory, "links") as made:
        made.sh("ip", "netns", "add", "foreign")          # made by someone else
        made.sh("ip", "link", "add", "fx0", "type", "veth", "peer", "name", "fx1")
        made.sh("ip", "route", "add", "10.77.0.0/16", "via", "192.168.210.254")
        yield made


def test_netns(lab):
    two, three = {"names": ["pa", "pb"]}, {"names": ["pa", "pb", "pc"]}
    r = lab.play(
        snap("start"), step("planned", "netns", two, check=True), snap("after planned"),
        step("create", "netns", two), raw("lo up", "ip -n pa -d link show lo"),
        step("again", "netns", two), step("add one", "netns", three),
        step("prune", "netns", {"names": ["pa"], "prune": True}), raw("listed", "ip netns list"),
        step("absent", "netns", {"names": ["pa"], "state": "absent"}),
        step("absent again", "netns", {"names": ["pa"], "state": "absent"}),
        snap("before bad"),
        step("foreign", "netns", {"names": ["foreign"]}),
        step("bad name", "netns", {"names": ["ok", "a/b"]}),
        step("twice", "netns", {"names": ["pz", "pz"]}),
        snap("after bad"),
    )
    assert r["start"]["stdout"] == r["after planned"]["stdout"]
    assert changed(r["planned"]) and same_plan(r["planned"], r["create"])
    assert "UP" in r["lo up"]["stdout"] and "alias handcni.podnet netns" in r["lo up"]["stdout"]
    assert not changed(r["again"]) and r["add one"]["actions"] == ["create netns pc"]
    assert sorted(r["prune"]["actions"]) == ["delete netns pb", "delete netns pc"]
    assert "foreign" in r["listed"]["stdout"] and "pb" not in r["listed"]["stdout"]
    assert changed(r["absent"]) and not changed(r["absent again"])
    assert fails_naming(r["foreign"], "names[0]: netns foreign exists and was not made by handcni.podnet")
    assert fails_naming(r["bad name"], "names[1]: 'a/b' is not a valid network namespace name")
    assert fails_naming(r["twice"], "names[1].name: 'pz' is listed twice")
    assert r["before bad"]["stdout"] == r["after bad"]["stdout"]


BRIDGE = {"bridges": [{"name": "br-it", "mtu": 1500, "addresses": ["10.250.0.254/24"]}]}


def pod(letter: str, ip: str, **extra) -> dict:
    return dict({"name": f"vit-{letter}", "peer_netns": f"p{letter}", "master": "br-it", "hairpin": True,
                 "mtu": 1500, "peer_addresses": [f"{ip}/24"],
                 "peer_routes": [{"dst": "default", "via": "10.250.0.254"}]}, **extra)


def test_bridge_and_veth_wire_pods_that_talk(lab):
    pods = {"veths": [pod("a", "10.250.0.1"), pod("b", "10.250.0.2")]}
    moved = {"veths": [pod("a", "10.250.0.1"), pod("b", "10.250.0.3")]}
    ping = "ip netns exec pa ping -c1 -W2 -n"
    r = lab.play(
        step("namespaces", "netns", {"names": ["pa", "pb"]}), snap("start"),
        step("bridge planned", "bridge", BRIDGE, check=True), step("veths planned", "veth", pods, check=True),
        snap("after planned"),
        step("bridge", "bridge", BRIDGE), step("veths", "veth", pods),
        step("bridge again", "bridge", BRIDGE), step("veths again", "veth", pods),
        raw("pod to pod", f"{ping} 10.250.0.2"), raw("pod to gateway", f"{ping} 10.250.0.254"),
        raw("full MTU", f"{ping} -M do -s 1472 10.250.0.2"), raw("one byte more", f"{ping} -M do -s 1473 10.250.0.2"),
        raw("hairpin", "ip -d link show vit-a"),
        step("move b", "veth", moved), raw("pod to moved b", f"{ping} 10.250.0.3"),
        step("bridge mtu", "bridge", {"bridges": [dict(BRIDGE["bridges"][0], mtu=1400)]}),
        step("veth b absent planned", "veth", {"veths": [{"name": "vit-b"}], "state": "absent"}, check=True),
        step("veth b absent", "veth", {"veths": [{"name": "vit-b"}], "state": "absent"}),
        step("veth b absent again", "veth", {"veths": [{"name": "vit-b"}], "state": "absent"}),
    )
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the kernel"
    assert same_plan(r["bridge planned"], r["bridge"]) and changed(r["bridge"])
    # in check mode the bridge does not exist yet, so the veths' plan is the same creation
    assert r["veths planned"]["actions"] == r["veths"]["actions"] == ["create veth vit-a <-> pa/eth0",
                                                                      "create veth vit-b <-> pb/eth0"]
    assert not changed(r["bridge again"]) and not changed(r["veths again"])
    assert r["veths"]["diff"]["before"] != r["veths"]["diff"]["after"]
    assert r["veths again"]["diff"]["before"] == r["veths again"]["diff"]["after"]
    for check in ("pod to pod", "pod to gateway", "full MTU", "pod to moved b"):
        assert r[check]["rc"] == 0, (check, r[check]["stdout"])
    assert r["one byte more"]["rc"] != 0
    assert "master br-it" in r["hairpin"]["stdout"] and "hairpin on" in r["hairpin"]["stdout"]
    assert r["move b"]["actions"] == ["set eth0 addresses +10.250.0.3/24 -10.250.0.2/24 in netns pb"]
    assert r["bridge mtu"]["actions"] == ["set br-it mtu 1500 -> 1400"]
    assert same_plan(r["veth b absent planned"], r["veth b absent"]) and changed(r["veth b absent"])
    assert not changed(r["veth b absent again"])


def test_routed_pod_with_proxy_arp(lab):
    veth = {"veths": [{"name": "vit-r", "peer_netns": "pr", "peer_addresses": ["10.251.0.1/32"], "proxy_arp": True,
                       "peer_routes": [{"dst": "default", "via": "169.254.1.1", "onlink": True}]}]}
    route = {"routes": [{"dst": "10.251.0.1/32", "dev": "vit-r"}]}
    r = lab.play(
        # proxy ARP answers only where the node forwards, as Calico's nodes do
        step("forward", "sysctl", {"sysctls": {"net.ipv4.ip_forward": 1}}),
        step("netns", "netns", {"names": ["pr"]}), step("veth", "veth", veth), step("route", "route", route),
        step("veth again", "veth", veth),
        raw("proxy_arp", "cat /proc/sys/net/ipv4/conf/vit-r/proxy_arp"),
        raw("pod to node", f"ip netns exec pr ping -c1 -W2 -n {NODE_IP}"),
        raw("gateway learnt", "ip -n pr neigh show 169.254.1.1"),
        step("route absent", "route", dict(route, state="absent")),
        step("veth absent", "veth", {"veths": [{"name": "vit-r"}], "state": "absent"}),
        step("netns absent", "netns", {"names": ["pr"], "state": "absent"}),
        step("forward put back", "sysctl", {"sysctls": {"net.ipv4.ip_forward": 1}, "state": "absent"}),
    )
    assert changed(r["veth"]) and not changed(r["veth again"])
    assert r["proxy_arp"]["stdout"].strip() == "1"
    assert r["pod to node"]["rc"] == 0, r["pod to node"]["stdout"]
    assert "lladdr" in r["gateway learnt"]["stdout"]
    assert changed(r["route absent"]) and changed(r["veth absent"]) and changed(r["netns absent"])


def test_bad_link_input_fails_naming_the_field_and_changes_nothing(lab):
    good = pod("c", "10.250.0.9")
    cases = {
        "veths[0].name: interface name 'veth-0123456789ab'": {"veths": [dict(good, name="veth-0123456789ab")]},
        "veths[0].mtu: MTU 50": {"veths": [dict(good, mtu=50)]},
        "veths[0].mtu: MTU 70000": {"veths": [dict(good, mtu=70000)]},
        "veths[0].peer_mac: 'zz:00:00:00:00:01'": {"veths": [dict(good, peer_mac="zz:00:00:00:00:01")]},
        "veths[0].peer_addresses[0]: '10.250.0.9'": {"veths": [dict(good, peer_addresses=["10.250.0.9"])]},
        "veths[0].peer_netns: network namespace 'nope'": {"veths": [dict(good, peer_netns="nope")]},
        "veths[0].name: link fx0 in the host namespace exists and was not made": {
            "veths": [dict(good, name="fx0")]},
        "veths[1].name: 'vit-c' is listed twice": {"veths": [good, good]},
        "netns: network namespace 'nope' does not exist": {"netns": "nope", "veths": [good]},
    }
    bridge_cases = {
        "bridges[0].mtu: MTU 70000": {"bridges": [{"name": "br-x", "mtu": 70000}]},
        "bridges[0].addresses[0]: '10.1.1.1'": {"bridges": [{"name": "br-x", "addresses": ["10.1.1.1"]}]},
        "bridges[0].mac: '01:00:5e:00:00:01' is a multicast": {"bridges": [{"name": "br-x", "mac": "01:00:5e:00:00:01"}]},
        "bridges[0].name: link fx0 in the host namespace exists and was not made": {"bridges": [{"name": "fx0"}]},
    }
    steps = [step(message, "veth", args) for message, args in cases.items()]
    steps += [step(message, "bridge", args) for message, args in bridge_cases.items()]
    r = lab.play(step("pod c", "netns", {"names": ["pc"]}), snap("before"), *steps, snap("after"),
                 step("pod c gone", "netns", {"names": ["pc"], "state": "absent"}))
    for message in list(cases) + list(bridge_cases):
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
    assert r["before"]["stdout"] == r["after"]["stdout"]
    assert "fx0" in lab.sh("ip", "link", "show", "fx0").stdout


def test_prune_removes_only_ours(lab):
    r = lab.play(
        step("bridges", "bridge", {"bridges": [{"name": "br-p1"}, {"name": "br-p2"}]}),
        step("prune bridges", "bridge", {"bridges": [{"name": "br-p1"}], "prune": True}),
        step("prune everything", "bridge", {"bridges": [], "prune": True}),
        raw("links", "ip -o link"),
    )
    assert "delete bridge br-p2" in r["prune bridges"]["actions"]
    assert "delete bridge br-p1" not in r["prune bridges"]["actions"]
    assert "delete bridge br-p1" in r["prune everything"]["actions"]
    assert "fx0" in r["links"]["stdout"] and "br-p" not in r["links"]["stdout"]


def test_route(lab):
    mine = {"routes": [{"dst": "10.88.0.0/16", "via": "192.168.210.254"}, {"dst": "10.89.0.0/16", "dev": "eth0"}]}
    moved = {"routes": [{"dst": "10.88.0.0/16", "via": "192.168.210.22"}, {"dst": "10.89.0.0/16", "dev": "eth0"}]}
    r = lab.play(
        snap("start"), step("planned", "route", mine, check=True), snap("after planned"),
        step("create", "route", mine), raw("kernel", "ip route show proto 201"),
        step("again", "route", mine), step("moved", "route", moved), raw("moved kernel", "ip route show 10.88.0.0/16"),
        snap("before bad"),
        step("foreign in the way", "route", {"routes": [{"dst": "10.77.0.0/16", "via": "192.168.210.22"}]}),
        step("host bits", "route", {"routes": [{"dst": "10.0.0.1/16", "dev": "eth0"}]}),
        step("onlink without dev", "route", {"routes": [{"dst": "10.5.0.0/16", "via": "10.0.0.1", "onlink": True}]}),
        step("daemon protocol", "route", {"routes": [], "protocol": 186}),
        step("other family", "route", {"routes": [{"dst": "10.6.0.0/16", "via": "fd00::1"}]}),
        step("no such device", "route", {"routes": [{"dst": "10.7.0.0/16", "dev": "nope0"}]}),
        snap("after bad"),
        step("other set", "route", {"routes": [{"dst": "10.90.0.0/16", "dev": "eth0"}], "protocol": 202}),
        step("prune 201", "route", {"routes": [], "prune": True}),
        raw("left", "ip route"),
        step("absent 202", "route", {"routes": [{"dst": "10.90.0.0/16"}], "protocol": 202, "state": "absent"}),
        step("absent 202 again", "route", {"routes": [{"dst": "10.90.0.0/16"}], "protocol": 202, "state": "absent"}),
    )
    assert r["start"]["stdout"] == r["after planned"]["stdout"]
    assert same_plan(r["planned"], r["create"]) and changed(r["create"]), (r["planned"], r["create"])
    assert "10.88.0.0/16 via 192.168.210.254" in r["kernel"]["stdout"] and "10.89.0.0/16 dev eth0" in r["kernel"]["stdout"]
    assert not changed(r["again"])
    assert changed(r["moved"]) and "via 192.168.210.22" in r["moved kernel"]["stdout"]
    assert fails_naming(r["foreign in the way"], "routes[0]: route 10.77.0.0/16 via 192.168.210.254")
    assert fails_naming(r["host bits"], "routes[0].dst:")
    assert fails_naming(r["onlink without dev"], "routes[0].onlink:")
    assert fails_naming(r["daemon protocol"], "protocol: 186")
    assert fails_naming(r["other family"], "routes[0].via: fd00::1 is not an IPv4 address")
    assert fails_naming(r["no such device"], "add route 10.7.0.0/16 dev nope0 in the host namespace: no link named nope0")
    assert r["before bad"]["stdout"] == r["after bad"]["stdout"]
    # prune removes only set 201: the foreign route and set 202 stay
    assert sorted(r["prune 201"]["actions"]) == ["delete route 10.88.0.0/16 via 192.168.210.22 dev eth0",
                                                 "delete route 10.89.0.0/16 dev eth0"]
    assert "10.77.0.0/16" in r["left"]["stdout"] and "10.90.0.0/16" in r["left"]["stdout"]
    assert changed(r["absent 202"]) and not changed(r["absent 202 again"])


def test_sysctl_sets_and_puts_back(lab):
    forward = {"sysctls": {"net.ipv4.ip_forward": 1}}
    r = lab.play(
        raw("before", "cat /proc/sys/net/ipv4/ip_forward"),
        step("planned", "sysctl", forward, check=True), raw("after planned", "cat /proc/sys/net/ipv4/ip_forward"),
        step("set", "sysctl", forward), step("again", "sysctl", forward),
        raw("set value", "cat /proc/sys/net/ipv4/ip_forward"), raw("record", "cat /var/lib/handcni/sysctl.json"),
        step("absent", "sysctl", dict(forward, state="absent")), raw("put back", "cat /proc/sys/net/ipv4/ip_forward"),
        step("absent again", "sysctl", dict(forward, state="absent")),
        step("not net", "sysctl", {"sysctls": {"kernel.hostname": "x"}}),
        step("no such", "sysctl", {"sysctls": {"net.ipv4.conf.nope.proxy_arp": 1}}),
    )
    assert r["before"]["stdout"].strip() == r["after planned"]["stdout"].strip() == "0"
    assert same_plan(r["planned"], r["set"]) and not changed(r["again"])
    assert r["set value"]["stdout"].strip() == "1"
    assert json.loads(r["record"]["stdout"]) == {"": {"net.ipv4.ip_forward": "0"}}
    assert changed(r["absent"]) and r["put back"]["stdout"].strip() == "0" and not changed(r["absent again"])
    assert fails_naming(r["not net"], "sysctls: 'kernel.hostname' is not a net.* sysctl name")
    assert fails_naming(r["no such"], "sysctls: net.ipv4.conf.nope.proxy_arp does not exist")


CIDR = "10.60.0.0/29"  # .1-.6 usable, .6 reserved as the gateway


def ipam(pods: list, **extra) -> dict:
    listed = [{"name": p} if isinstance(p, str) else p for p in pods]
    return dict({"cidr": CIDR, "reserved": ["10.60.0.6"], "pods": listed}, **extra)


def addresses(result: dict) -> dict:
    return {p["name"]: p["ip"] for p in result["pods"]}


def test_ipam_keeps_frees_and_never_shares(lab):
    lab.sh("mkdir", "-p", "/var/lib/cni/networks/it")
    lab.sh("touch", "/var/lib/cni/networks/it/10.60.0.3")  # a lease of the CNI host-local plugin
    r = lab.play(
        step("planned", "ipam", ipam(["a", {"name": "b", "ip": "10.60.0.5"}]), check=True),
        raw("nothing written", "ls /var/lib/handcni/ipam 2>&1 || true"),
        step("first", "ipam", ipam(["a", {"name": "b", "ip": "10.60.0.5"}])),
        step("again", "ipam", ipam(["a", {"name": "b", "ip": "10.60.0.5"}])),
        step("a removed, c added", "ipam", ipam(["c", {"name": "b", "ip": "10.60.0.5"}])),
        step("with leases", "ipam", ipam(["c", "b", "d"], leases_dirs=["/var/lib/cni/networks/it"])),
        raw("mode", "stat -c %a /var/lib/handcni/ipam/10.60.0.0_29.json"),
        step("exhausted", "ipam", ipam(["p1", "p2", "p3", "p4", "p5", "p6"])),
        step("outside", "ipam", ipam([{"name": "x", "ip": "10.61.0.1"}])),
        step("after bad", "ipam", ipam(["c", "b", "d"], leases_dirs=["/var/lib/cni/networks/it"])),
    )
    assert same_plan(r["planned"], r["first"]) and "No such file" in r["nothing written"]["stdout"]
    assert addresses(r["first"]) == {"a": "10.60.0.1", "b": "10.60.0.5"}
    assert not changed(r["again"])
    assert addresses(r["a removed, c added"]) == {"c": "10.60.0.1", "b": "10.60.0.5"}  # a's address freed
    assert addresses(r["with leases"]) == {"c": "10.60.0.1", "b": "10.60.0.5", "d": "10.60.0.2"}
    assert r["mode"]["stdout"].strip() == "600"
    assert fails_naming(r["exhausted"], "pods[5]: no free address left in 10.60.0.0/29")
    assert fails_naming(r["outside"], "pods[0].ip: 10.61.0.1 is not a usable address")
    assert not changed(r["after bad"])  # the failed runs wrote nothing


def test_ipam_concurrent_runs_do_not_corrupt_the_record(lab, tmp_path):
    procs = []
    for prefix in ("p", "q"):
        play = [{"hosts": "worker1", "gather_facts": False, "tasks": [
            {"name": "allocate", "handcni.podnet.ipam": {"cidr": "10.70.0.0/24", "pods": [
                {"name": f"{prefix}{i}"} for i in range(20)]}}]}]
        path = tmp_path / f"{prefix}.yml"
        path.write_text(json.dumps(play))
        procs.append(subprocess.Popen([str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(lab.inventory), str(path)],
                                      env=lab.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stdout.read().decode()[-2000:]
    record = json.loads(lab.sh("cat", "/var/lib/handcni/ipam/10.70.0.0_24.json").stdout)
    ips = list(record["pods"].values())
    assert len(ips) == 20 and len(set(ips)) == 20
