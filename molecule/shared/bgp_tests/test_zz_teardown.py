"""Last: teardown.yml stops BIRD on every node and the leaf's daemon, by their PID files, and removes
their configuration (the distribution's bird.conf comes back); the leaf forgets the pod routes."""
from pathlib import Path

import pytest

from bgp import DAEMON, LEAF_PROTO, PATHSPACE, converge_bgp, routes
from lab import LEAF, WORKERS, Node, playbook, recap, run_in

DAEMONS = ("bird", "zebra", "bgpd")


def processes(node: str) -> list:
    """The BGP daemons running in the node's namespaces (every lab node has its own network namespace)."""
    found = []
    for name in DAEMONS:
        out = run_in(node, "sh", "-c", f'for p in $(pgrep -x {name}); do '
                                       f'[ "$(readlink /proc/$p/ns/net)" = "$(readlink /proc/self/ns/net)" ] '
                                       f'&& echo {name}; done').stdout
        found += out.split()
    return found


@pytest.fixture(scope="module")
def torn_down():
    assert processes(LEAF) == (["zebra", "bgpd"] if DAEMON == "frr" else ["bird"])
    run = playbook("teardown.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    # Teardown's BGP part again (the whole of teardown.yml twice is proven by the other scenarios):
    # the bgp role with BGP off finds nothing left to stop or remove.
    again = converge_bgp("-e", "bgp_enabled=false")
    assert again.returncode == 0, again.stdout[-3000:]
    return again.stdout


def test_the_bgp_part_of_teardown_again_changes_nothing(torn_down):
    counts = recap(torn_down)
    assert set(WORKERS + [LEAF]) <= set(counts) and set(counts.values()) == {0}, counts


@pytest.mark.parametrize("name", WORKERS)
def test_bird_is_stopped_and_its_config_is_the_one_found_before(torn_down, name):
    node = Node(name)
    assert processes(name) == []
    assert routes(name, "bird") == {}
    assert node.run("test", "-e", "/run/bird/bird.pid").rc != 0
    # the lab node's /etc is a copy-on-write layer over the machine's: the distribution's bird.conf is back
    assert node.run("cat", "/etc/bird/bird.conf").stdout == Path("/etc/bird/bird.conf").read_text()
    assert node.run("test", "-e", "/etc/bird/bird.conf.handcni-saved").rc != 0


def test_the_leafs_daemon_is_stopped_and_its_routes_gone(torn_down):
    assert processes(LEAF) == []
    assert routes(LEAF, LEAF_PROTO) == {}
    for path in (f"/etc/frr/{PATHSPACE}", f"/run/frr/{PATHSPACE}", f"/var/log/frr/{PATHSPACE}", "/run/bird/bird.pid"):
        assert run_in(LEAF, "test", "-e", path).rc != 0, f"{path} is left on {LEAF}"
