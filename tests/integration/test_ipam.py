"""handcni.podnet.ipam through Ansible on a throwaway lab node (worker1): its record is the state it keeps.

Every scenario of this file but the concurrent one runs in one ansible-playbook (the `results` fixture);
each test reads its part.
"""
from __future__ import annotations

import ipaddress
import json

import pytest
from conftest import changed, diffs_agree, fails_naming, module, part, raw, same_plan, scenario

CIDR = "10.60.0.0/29"  # .1-.6 usable, .6 reserved as the gateway
DIR = "/var/lib/handcni/ipam"
RECORD = f"{DIR}/10.60.0.0_29.json"
CIDR6 = "fd00:60::/64"  # ::1 reserved as the gateway
RECORD6 = f"{DIR}/fd00_60___64.json"
LEASES = "/var/lib/cni/networks/it"  # where the CNI host-local plugin would record its leases
# The allocator's whole state: the files of its directory and the records.
STATE = f"ls -A {DIR} 2>&1; cat {RECORD} {RECORD6} 2>/dev/null"


def ipam(name: str, pods: list, check: bool = False, **extra) -> dict:
    listed = [{"name": p} if isinstance(p, str) else p for p in pods]
    args = dict({"cidr": CIDR, "reserved": ["10.60.0.6"], "pods": listed}, **extra)
    return module(name, "handcni.podnet.ipam", args, check)


def ipam6(name: str, pods: list, check: bool = False, **extra) -> dict:
    """A dual-stack run: CIDR and CIDR6."""
    return ipam(name, pods, check, **dict({"cidr6": CIDR6, "reserved6": ["fd00:60::1"]}, **extra))


def state(name: str) -> dict:
    return raw(name, STATE)


def addresses(result: dict) -> dict:
    return {p["name"]: p["ip"] for p in result["pods"]}


def record(result: dict) -> dict:
    return json.loads(result["stdout"])


FIRST = ["a", {"name": "b", "ip": "10.60.0.5"}]
SECOND = ["a", {"name": "b", "ip": "10.60.0.4"}, "c"]
WITHOUT_A = [{"name": "b", "ip": "10.60.0.4"}, "c"]
LIFECYCLE = scenario(
    "lifecycle",
    state("start"), ipam("planned", FIRST, check=True), state("after planned"),
    ipam("create", FIRST), raw("made", f"cat {RECORD}"), raw("mode", f"stat -c %a {RECORD}"),
    ipam("again", FIRST),
    state("before change planned"), ipam("change planned", SECOND, check=True), state("after change planned"),
    ipam("change", SECOND), raw("changed", f"cat {RECORD}"),
    state("before removal planned"), ipam("a removed, planned", WITHOUT_A, check=True),
    state("after removal planned"),
    ipam("a removed", WITHOUT_A), raw("a gone", f"cat {RECORD}"), ipam("a removed again", WITHOUT_A),
    ipam("d added", WITHOUT_A + ["d"]),
    ipam("all removed", []), raw("empty", f"cat {RECORD}"), ipam("all removed again", []),
)

LEASED = scenario(
    "leases",
    raw("leases of another allocator", f"mkdir -p {LEASES} && touch {LEASES}/10.60.0.2 {LEASES}/last_reserved_ip.0 "
                                       f"{LEASES}/lock"),
    ipam("x and y", ["x", "y"], leases_dirs=[LEASES]),
    ipam("x, y and z", ["x", "y", "z"], leases_dirs=[LEASES]),
    ipam("again", ["x", "y", "z"], leases_dirs=[LEASES]),
)

GOOD = ["a", {"name": "b", "ip": "10.60.0.5"}]
BAD = {
    "cidr: '10.60.0.1/29' is not a valid network": dict(pods=GOOD, cidr="10.60.0.1/29"),
    f"pods[5]: no free address left in {CIDR} for pod p5": dict(pods=GOOD + ["p2", "p3", "p4", "p5"]),
    f"pods[2].ip: 10.61.0.1 is not a usable address of {CIDR}": dict(pods=GOOD + [{"name": "x", "ip": "10.61.0.1"}]),
    "pods[2].ip: 10.60.0.5 is also given to pod b": dict(pods=GOOD + [{"name": "x", "ip": "10.60.0.5"}]),
    "pods[2].name: 'a' is listed twice": dict(pods=GOOD + ["a"]),
}
BAD_INPUT = scenario(
    "bad input",
    ipam("ours", GOOD), state("before"),
    *(ipam(message, **args) for message, args in BAD.items()),
    state("after"),
)

# Bugs found and fixed, each kept by its own scenario.
EARLIER_CIDR = scenario(
    "earlier cidr",
    ipam("a", ["a"]),
    raw("an earlier pod CIDR's record", f"echo '{{\"cidr\": \"10.59.0.0/29\", \"pods\": {{}}}}' "
                                        f"> {DIR}/10.59.0.0_29.json"),
    ipam("a again", ["a"]), raw("left", f"ls {DIR}"),
)
CHECK_MODE_LOCK = scenario(
    "check mode lock",
    ipam("a", ["a"]), state("before"),
    module("another pod CIDR, planned", "handcni.podnet.ipam", {"cidr": "10.58.0.0/29", "pods": [{"name": "a"}]},
           check=True),
    state("after"), raw("files", f"ls -A {DIR}"),
)

DUAL = ["a", "b", {"name": "c", "ip": "10.60.0.5", "ip6": "fd00:60::5"}]
DUAL_WITHOUT_A = DUAL[1:] + ["d"]
IPV4_ONLY = ["b", {"name": "c", "ip": "10.60.0.5"}, "d"]
BAD6 = {
    f"pods[3].ip6: fd00:61::1 is not a usable address of {CIDR6}": dict(pods=DUAL + [{"name": "x", "ip6": "fd00:61::1"}]),
    f"pods[3].ip6: fd00:60::1 is not a usable address of {CIDR6}": dict(pods=DUAL + [{"name": "x", "ip6": "fd00:60::1"}]),
    "pods[3].ip6: fd00:60::5 is also given to pod c": dict(pods=DUAL + [{"name": "x", "ip6": "fd00:60::5"}]),
    "pods[3].ip6: 'fd00:60::zz' is not a valid IP address": dict(pods=DUAL + [{"name": "x", "ip6": "fd00:60::zz"}]),
    "cidr6: '10.61.0.0/24' is not an IPv6 network": dict(pods=DUAL + ["x"], cidr6="10.61.0.0/24"),
    "cidr: 'fd00:61::/64' is IPv6 like cidr6": dict(pods=DUAL + ["x"], cidr="fd00:61::/64"),
}
DUAL_STACK = scenario(
    "dual stack",
    ipam("ours", ["a"]), state("start"), ipam6("planned", DUAL, check=True), state("after planned"),
    ipam6("create", DUAL), raw("made", f"cat {RECORD6}"), raw("mode", f"stat -c %a {RECORD6}"),
    ipam6("again", DUAL),
    state("before bad"), *(ipam6(message, **args) for message, args in BAD6.items()), state("after bad"),
    state("before a removed, planned"), ipam6("a removed, planned", DUAL_WITHOUT_A, check=True),
    state("after a removed, planned"),
    ipam6("a removed", DUAL_WITHOUT_A), raw("a gone", f"cat {RECORD6}"),
    state("before ipv4 only, planned"), ipam("ipv4 only, planned", IPV4_ONLY, check=True),
    state("after ipv4 only, planned"),
    ipam("ipv4 only", IPV4_ONLY), raw("left", f"ls -A {DIR}"), ipam("ipv4 only again", IPV4_ONLY),
)


@pytest.fixture(scope="module")
def results(lab):
    return lab.play(*LIFECYCLE, *LEASED, *BAD_INPUT, *EARLIER_CIDR, *CHECK_MODE_LOCK, *DUAL_STACK)


def test_lifecycle(results):
    r = part(results, "lifecycle")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode wrote to the node"
    assert "No such file" in r["start"]["stdout"]
    assert changed(r["planned"]) and same_plan(r["planned"], r["create"])
    assert r["create"]["actions"] == ["allocate 10.60.0.1 to a", "allocate 10.60.0.5 to b"]
    assert record(r["made"]) == {"cidr": CIDR, "pods": {"a": "10.60.0.1", "b": "10.60.0.5"}}
    assert r["mode"]["stdout"].strip() == "600"
    assert addresses(r["create"]) == {"a": "10.60.0.1", "b": "10.60.0.5"} and r["create"]["free"] == 3
    assert not changed(r["again"]) and addresses(r["again"]) == addresses(r["create"])  # re-runs keep addresses

    assert r["before change planned"]["stdout"] == r["after change planned"]["stdout"]
    assert same_plan(r["change planned"], r["change"])
    assert r["change"]["actions"] == ["release 10.60.0.5 of b", "allocate 10.60.0.4 to b", "allocate 10.60.0.2 to c"]
    assert record(r["changed"])["pods"] == {"a": "10.60.0.1", "b": "10.60.0.4", "c": "10.60.0.2"}

    assert r["before removal planned"]["stdout"] == r["after removal planned"]["stdout"]
    assert same_plan(r["a removed, planned"], r["a removed"])
    assert r["a removed"]["actions"] == ["release 10.60.0.1 of a"]
    assert record(r["a gone"])["pods"] == {"b": "10.60.0.4", "c": "10.60.0.2"}
    assert not changed(r["a removed again"])
    assert addresses(r["d added"])["d"] == "10.60.0.1"  # a's address was freed, and the next new pod gets it
    assert changed(r["all removed"]) and record(r["empty"]) == {"cidr": CIDR, "pods": {}}
    assert not changed(r["all removed again"])
    assert diffs_agree(r) == []
    assert r["change"]["diff"] == {"before": {"pods": {"a": "10.60.0.1", "b": "10.60.0.5"}},
                                   "after": {"pods": {"a": "10.60.0.1", "b": "10.60.0.4", "c": "10.60.0.2"}}}


def test_leased_addresses_are_never_given_to_pods(results):
    r = part(results, "leases")
    assert addresses(r["x and y"]) == {"x": "10.60.0.1", "y": "10.60.0.3"}
    assert addresses(r["x, y and z"]) == {"x": "10.60.0.1", "y": "10.60.0.3", "z": "10.60.0.4"}
    assert not changed(r["again"])
    assert diffs_agree(r) == []


def test_bad_input_fails_naming_the_field_and_changes_nothing(results):
    r = part(results, "bad input")
    for message in BAD:
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
    assert r["before"]["stdout"] == r["after"]["stdout"]
    assert '"b": "10.60.0.5"' in r["after"]["stdout"]


def test_diff_shows_every_change(results):
    r = part(results, "earlier cidr")
    assert r["a again"]["actions"] == ["forget 10.59.0.0_29.json of an earlier pod CIDR"]
    assert "10.59.0.0_29.json" not in r["left"]["stdout"]
    assert diffs_agree(r) == [], r["a again"]["diff"]


def test_check_mode_writes_nothing(results):
    r = part(results, "check mode lock")
    assert changed(r["another pod CIDR, planned"])
    assert r["before"]["stdout"] == r["after"]["stdout"], r["files"]["stdout"]


def test_dual_stack_gives_each_pod_one_address_of_each_family(results):
    r = part(results, "dual stack")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode wrote to the node"
    assert "fd00_60___64.json" not in r["start"]["stdout"]
    assert changed(r["planned"]) and same_plan(r["planned"], r["create"])
    assert r["create"]["actions"] == ["allocate 10.60.0.2 to b", "allocate 10.60.0.5 to c", "allocate fd00:60::2 to a",
                                      "allocate fd00:60::3 to b", "allocate fd00:60::5 to c"]
    assert r["create"]["pods"] == [{"name": "a", "ip": "10.60.0.1", "ip6": "fd00:60::2"},
                                   {"name": "b", "ip": "10.60.0.2", "ip6": "fd00:60::3"},
                                   {"name": "c", "ip": "10.60.0.5", "ip6": "fd00:60::5"}]
    assert (r["create"]["free"], r["create"]["free6"]) == (2, 2 ** 64 - 5)  # counted, not enumerated
    assert record(r["made"]) == {"cidr": CIDR6, "pods": {"a": "fd00:60::2", "b": "fd00:60::3", "c": "fd00:60::5"}}
    assert r["mode"]["stdout"].strip() == "600"
    assert r["create"]["diff"]["after"]["pods6"] == record(r["made"])["pods"] and r["create"]["diff"]["before"]["pods6"] == {}
    assert not changed(r["again"]) and r["again"]["pods"] == r["create"]["pods"]

    for message in BAD6:
        assert fails_naming(r[message], message), (message, r[message].get("msg"))
    assert r["before bad"]["stdout"] == r["after bad"]["stdout"]

    assert r["before a removed, planned"]["stdout"] == r["after a removed, planned"]["stdout"]
    assert same_plan(r["a removed, planned"], r["a removed"])
    # both of a's addresses are freed, and the next new pod gets them
    assert r["a removed"]["actions"] == ["release 10.60.0.1 of a", "allocate 10.60.0.1 to d",
                                         "release fd00:60::2 of a", "allocate fd00:60::2 to d"]
    assert record(r["a gone"])["pods"] == {"b": "fd00:60::3", "c": "fd00:60::5", "d": "fd00:60::2"}

    assert r["before ipv4 only, planned"]["stdout"] == r["after ipv4 only, planned"]["stdout"]
    assert same_plan(r["ipv4 only, planned"], r["ipv4 only"])
    assert r["ipv4 only"]["actions"] == ["forget fd00_60___64.json of an earlier pod CIDR"]
    assert r["ipv4 only"]["pods"] == [{"name": "b", "ip": "10.60.0.2"}, {"name": "c", "ip": "10.60.0.5"},
                                      {"name": "d", "ip": "10.60.0.1"}]
    assert "free6" not in r["ipv4 only"] and "pods6" not in r["ipv4 only"]["diff"]["after"]
    assert "fd00" not in r["left"]["stdout"]  # the record and its lock
    assert not changed(r["ipv4 only again"])
    assert diffs_agree(r) == []


def test_concurrent_runs_leave_a_valid_record_without_shared_addresses(lab):
    cidr = "10.70.0.0/24"

    def steps(prefix: str) -> list:
        # growing sets of this run's own pods, so the two runs take the lock many times each
        return [module(f"{prefix} {count}", "handcni.podnet.ipam",
                       {"cidr": cidr, "pods": [{"name": f"{prefix}{i}"} for i in range(count)]})
                for count in (5, 10, 15, 20)]

    started = [lab.start(*steps(prefix)) for prefix in ("p", "q")]  # both at once
    runs = [lab.finish(one) for one in started]
    kept = json.loads(lab.sh("cat", f"{DIR}/10.70.0.0_24.json").stdout)
    for run in runs:
        for result in run.values():
            assert not result["failed"], result.get("msg")
            ips = [p["ip"] for p in result["pods"]]
            assert len(ips) == len(set(ips))
    assert kept["cidr"] == cidr
    ips = list(kept["pods"].values())
    assert len(ips) == len(set(ips)) == 20 and all(ipaddress.ip_address(ip) in ipaddress.ip_network(cidr) for ip in ips)
    # the listed set is the whole set: the record is exactly what the run that wrote last returned
    assert kept["pods"] in [addresses(run[f"{prefix} 20"]) for run, prefix in zip(runs, "pq")]
