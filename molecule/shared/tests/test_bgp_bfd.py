"""BFD on every BGP session (issue 20, `bgp_bfd: true`), after the bgp suite (it resets sessions): a node whose cable is cut is withdrawn by the
leaf well before the hold time, and learned again when the cable is back; what a graceful restart of a
node's BIRD does with BFD on, per leaf daemon."""
import json
import time

from bgp import CIDRS, CIDRS6, DAEMON, LEAF_PROTO, LEAF_VARS, NODE_IP, bird_sessions, converge_bgp, leaf_address, routes, until
from lab import HOSTVARS, LEAF, WORKERS, Node, recap, run_in

NODE = WORKERS[1]  # the seed's worker2
HOLD_TIME = int(LEAF_VARS.get("bgp_hold_time", 9))


def leaf_port(node: str) -> str:
    """The leaf's end of the node's cable: the link whose index the node's NIC names as its peer."""
    nic = HOSTVARS[node]["podnet_node_interface"]
    peer = json.loads(run_in(node, "ip", "-j", "link", "show", nic).stdout)[0]["link_index"]
    return next(link["ifname"] for link in json.loads(run_in(LEAF, "ip", "-j", "link").stdout)
                if link["ifindex"] == peer)


def learned_again(node: str) -> dict:
    return until(lambda: routes(LEAF, LEAF_PROTO), lambda r: r.get(CIDRS[node]) == NODE_IP[node])


def test_every_worker_runs_bfd_with_the_leaf():
    """On each of its sessions: the IPv4 one, and with dual stack the IPv6 one too."""
    for name in WORKERS:
        out = run_in(name, "birdc", "show", "bfd", "sessions").stdout
        states = {line.split()[0]: line.split()[2] for line in out.splitlines() if len(line.split()) > 2}
        peers = [leaf_address(name)] + ([leaf_address(name, 6)] if name in CIDRS6 else [])
        assert all(states.get(peer) == "Up" for peer in peers), f"{name}: {out}"


def test_a_cut_cable_is_withdrawn_by_bfd_long_before_the_hold_time():
    port = leaf_port(NODE)
    assert CIDRS[NODE] in learned_again(NODE)
    run_in(LEAF, "ip", "link", "set", port, "down")
    start = time.monotonic()
    try:
        gone = until(lambda: routes(LEAF, LEAF_PROTO), lambda r: CIDRS[NODE] not in r,
                     timeout=2 * HOLD_TIME, interval=0.05)
        took = time.monotonic() - start
    finally:
        run_in(LEAF, "ip", "link", "set", port, "up")
    assert CIDRS[NODE] not in gone, "the leaf kept the route of a node whose cable is cut"
    assert took < HOLD_TIME / 2, f"withdrawn after {took:.1f}s: by the hold time ({HOLD_TIME}s), not by BFD"
    assert learned_again(NODE).get(CIDRS[NODE]) == NODE_IP[NODE], "the node did not come back with its cable"


def test_a_graceful_restart_of_a_nodes_bird_keeps_its_routes_on_an_frr_leaf_and_not_on_a_bird_leaf():
    """`birdc graceful restart` closes the sessions without a word, then BFD falls silent. FRR's bgpd takes the
    closed session as a restart and keeps the node's routes as stale (BFD then finds no session to take down),
    so the pods' traffic flows on; a BIRD leaf's BFD ends the graceful restart and withdraws them: there BFD
    wins over graceful restart (docs/lab9-bgp.md). Either way, the node is back once BIRD starts again."""
    src, dst = Node(WORKERS[0]), Node(NODE)
    target = dst.pods[0]["ip"]
    assert CIDRS[NODE] in learned_again(NODE)
    stop = run_in(NODE, "birdc", "graceful", "restart")  # BIRD exits without a word to its peers
    assert stop.rc == 0, stop.stderr
    try:
        if DAEMON == "frr":
            for _ in range(3):
                time.sleep(1)
                assert CIDRS[NODE] in routes(LEAF, LEAF_PROTO), "a graceful restart withdrew the node's routes"
                assert src.ping(src.pods[0]["name"], target).rc == 0, "pods lost their traffic during the restart"
        else:
            gone = until(lambda: routes(LEAF, LEAF_PROTO), lambda r: CIDRS[NODE] not in r, timeout=HOLD_TIME,
                         interval=0.2)
            assert CIDRS[NODE] not in gone, "the BIRD leaf kept the routes of a node whose BFD went down"
    finally:
        run = converge_bgp("--limit", NODE)  # starts BIRD again (its unit on a machine)
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run.stdout) == {NODE: 1}, run.stdout[-3000:]
    assert until(lambda: bird_sessions(NODE), lambda s: s.get(LEAF, ("",))[0] == "Established")[LEAF][0] == "Established"
    assert learned_again(NODE).get(CIDRS[NODE]) == NODE_IP[NODE]
