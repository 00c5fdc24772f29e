"""Seed 004 lab 9: the pod CIDRs learned by BGP, proven by the kernels' routes, by the daemons' own
state and by traffic; then what happens when a speaker stops or a session is misconfigured."""
import pytest

from bgp import (ANNOUNCED, AS_MODE, CIDRS, CIDRS6, DAEMON, LEAF_PROTO, LEAF_VARS, NODE_IP, NODE_IP6, PATHSPACE, PIDFILE,
                 SESSIONS, bird_sessions, converge_bgp, expected_gateway, leaf_address, leaf_sessions, pod_routes, routes,
                 until)
from lab import LEAF, WORKERS, Node, recap, run_in


def test_the_leaf_routes_each_pod_cidr_via_its_node_and_each_service_prefix_over_its_nodes():
    learned = routes(LEAF, LEAF_PROTO)
    assert pod_routes(LEAF, LEAF_PROTO) == {CIDRS[w]: NODE_IP[w] for w in WORKERS}
    # bgp_advertise_services: one route per announced prefix, over every node announcing it (verify.yml's ecmp
    # cells check the next hops); without, nothing else
    assert set(learned) - set(CIDRS.values()) == {prefix for prefixes in ANNOUNCED.values() for prefix in prefixes}


@pytest.mark.parametrize("name", WORKERS)
def test_every_node_learned_the_others_and_nothing_else(name):
    learned = routes(name, "bird")
    assert learned == {CIDRS[o]: expected_gateway(name, o) for o in WORKERS if o != name}
    node = Node(name)
    assert node.run("ip", "route", "show", "proto", "202").stdout.strip() == "", "a static route is left"
    kinds = node.run("ip", "-d", "-o", "link", "show").stdout
    assert "ipip" not in kinds and "vxlan" not in kinds, "pod traffic must not be tunnelled"


def test_the_daemons_report_every_session_established():
    for name in WORKERS:
        own = bird_sessions(name)
        wanted = [LEAF] + ([f"{LEAF}_v6"] if CIDRS6 else [])  # dual stack: an IPv6 session beside the IPv4 one
        assert sorted(own) == wanted and all(state == "Established" for state, _ in own.values()), (name, own)
    sessions = leaf_sessions()
    assert set(sessions) == set(SESSIONS) and all(state == "Established" for state, _ in sessions.values())
    if DAEMON == "frr":
        text = run_in(LEAF, "vtysh", "-N", PATHSPACE, "-c", "show bgp summary").stdout
        assert text.count("worker") == len(SESSIONS)  # one line per session, in its family's table
        # converged twice (molecule's idempotence): each session came up once and never dropped; with BFD,
        # BIRD drops each session once, a second after it first comes up (BFD leaving its start-up rate),
        # and never again (docs/lab9-bgp.md)
        most = 2 if LEAF_VARS.get("bgp_bfd") else 1
        assert all(count <= most for _, count in sessions.values()), sessions


@pytest.mark.parametrize("name", WORKERS)
def test_pods_reach_the_pods_of_every_other_node(name):
    node = Node(name)
    for src in node.pods:
        for other in (Node(o) for o in WORKERS if o != name):
            for dst in other.pods:
                result = node.ping(src["name"], dst["ip"])
                assert result.rc == 0, f"{name}/{src['name']} -> {other.name}/{dst['ip']}: {result.stdout}"


def expected_gateway6(node: str, other: str) -> set:
    """Where a node's IPv6 route to another node's pods may point: as IPv4's (the other node itself on a shared
    subnet with eBGP, else the leaf); FRR may keep its own address as the global next hop of a route it passes on
    between eBGP peers, so there the leaf's is right too."""
    gateway = leaf_address(node, 6)
    if AS_MODE == "per_node" and leaf_address(other) == leaf_address(node):
        return {NODE_IP6[other]} | ({gateway} if DAEMON == "frr" else set())
    return {gateway}


@pytest.mark.skipif(not CIDRS6, reason="IPv4 only: no IPv6 prefix to learn")
def test_with_dual_stack_the_ipv6_prefixes_are_learned_and_installed_by_the_leaf_and_every_node():
    leaf = until(lambda: routes(LEAF, LEAF_PROTO, 6), lambda r: set(r) == set(CIDRS6.values()))
    assert set(leaf) == set(CIDRS6.values()), leaf
    for worker, prefix in CIDRS6.items():  # via the node: its global address, or its link-local one (FRR's zebra)
        assert leaf[prefix] == NODE_IP6[worker] or leaf[prefix].startswith("fe80:"), (worker, leaf)
    for name in WORKERS:
        learned = routes(name, "bird", 6)
        assert set(learned) == {CIDRS6[o] for o in WORKERS if o != name}, (name, learned)
        for other in (o for o in WORKERS if o != name):
            assert learned[CIDRS6[other]] in expected_gateway6(name, other), (name, other, learned)


@pytest.mark.skipif(not CIDRS6, reason="IPv4 only: no IPv6 pod addresses")
@pytest.mark.parametrize("name", WORKERS)
def test_with_dual_stack_pods_reach_the_pods_of_every_other_node_over_ipv6(name):
    node = Node(name)
    for src in node.pods:
        for other in (Node(o) for o in WORKERS if o != name):
            for dst in other.pods:
                result = node.in_pod(src["name"], "ping", "-6", "-c1", "-W2", "-n", dst["ip6"])
                assert result.rc == 0, f"{name}/{src['name']} -> {other.name}/{dst['ip6']}: {result.stdout}"


def test_converging_again_changes_nothing_and_resets_no_session():
    before = {w: bird_sessions(w) for w in WORKERS}, leaf_sessions()
    run = converge_bgp()
    assert run.returncode == 0, run.stdout[-3000:]
    assert set(recap(run.stdout).values()) == {0}, recap(run.stdout)
    assert ({w: bird_sessions(w) for w in WORKERS}, leaf_sessions()) == before


def test_a_stopped_node_is_withdrawn_and_returns_when_started():
    node = WORKERS[1]  # the seed's worker2
    # as the node's own supervisor stops it: systemd on a machine, else the PID file's process
    stop = run_in(node, "sh", "-c", "if [ -d /run/systemd/system ]; then systemctl stop bird.service; "
                                    f'else kill "$(cat {PIDFILE})"; fi')
    assert stop.rc == 0, stop.stderr
    gone = until(lambda: routes(LEAF, LEAF_PROTO), lambda r: CIDRS[node] not in r)
    assert CIDRS[node] not in gone, "the leaf kept the route of a node whose BIRD stopped"
    if node in CIDRS6:
        gone6 = until(lambda: routes(LEAF, LEAF_PROTO, 6), lambda r: CIDRS6[node] not in r)
        assert CIDRS6[node] not in gone6, "the leaf kept the IPv6 route of a node whose BIRD stopped"
    for other in WORKERS:
        if other != node:
            left = until(lambda o=other: routes(o, "bird"), lambda r: CIDRS[node] not in r)
            assert CIDRS[node] not in left, f"{other} kept {node}'s pod CIDR"
    run = converge_bgp("--limit", node)
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run.stdout) == {node: 1}, run.stdout[-3000:]  # BIRD started, nothing else changed
    back = until(lambda: routes(LEAF, LEAF_PROTO), lambda r: CIDRS[node] in r)
    assert back.get(CIDRS[node]) == NODE_IP[node]
    if node in CIDRS6:
        assert CIDRS6[node] in until(lambda: routes(LEAF, LEAF_PROTO, 6), lambda r: CIDRS6[node] in r)
    src, dst = Node(WORKERS[-1]), Node(node)
    assert src.ping(src.pods[0]["name"], dst.pods[0]["ip"]).rc == 0


def test_a_misconfigured_side_fails_naming_the_session(tmp_path):
    """One side changed alone (the leaf is not converged): the first worker with a password the leaf does
    not have, the last expecting another AS of the leaf. Both sessions stay down, the play names each one."""
    first, last = WORKERS[0], WORKERS[-1]
    wrong = tmp_path / "wrong.yml"
    wrong.write_text(f"all:\n  hosts:\n    {first}: {{bgp_password: not-the-one}}\n"
                     f"    {last}: {{bgp_leaf_as: 65099}}\n")
    try:
        run = converge_bgp("-i", str(wrong), "--limit", f"{first},{last}", "-e", "bgp_wait_timeout=10")
        assert run.returncode != 0, "a session that cannot come up must fail the play"
        out = run.stdout
        assert "BGP sessions not established within 10s" in out
        for node in (first, last):
            assert f"fatal: [{node}]" in out and f"{LEAF} ({leaf_address(node)}, AS " in out
        assert "BGP state Connect" in out or "BGP state Active" in out  # MD5 mismatch: no answer at all
        assert "Bad peer AS" in out
        assert "not-the-one" not in out + run.stderr
        left = routes(LEAF, LEAF_PROTO)
        assert CIDRS[first] not in left and CIDRS[last] not in left
    finally:
        fixed = converge_bgp("--limit", f"{first},{last}")
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    back = until(lambda: pod_routes(LEAF, LEAF_PROTO), lambda r: len(r) == len(WORKERS))
    assert back == {CIDRS[w]: NODE_IP[w] for w in WORKERS}
