"""Last: teardown.yml removes the tunnels, their FDB and neighbour entries and the cross-node routes
from every worker and from the leaf, and runs twice without a change the second time."""
import pytest

from cross_node import DEVICE
from lab import LEAF, WORKERS, playbook, recap, run_in


@pytest.fixture(scope="module")
def torn_down():
    first = playbook("teardown.yml")
    assert first.returncode == 0, first.stdout[-3000:]
    second = playbook("teardown.yml")
    assert second.returncode == 0, second.stdout[-3000:]
    return recap(second.stdout)


def test_teardown_twice_changes_nothing_the_second_time(torn_down):
    assert torn_down and all(count == 0 for count in torn_down.values()), torn_down


@pytest.mark.parametrize("name", WORKERS + [LEAF])
def test_nothing_cross_node_is_left(torn_down, name):
    links = run_in(name, "ip", "-o", "-d", "link", "show").stdout
    assert " ipip " not in links and " vxlan " not in links
    assert "handcni.podnet" not in links
    assert "proto 202" not in run_in(name, "ip", "route", "show", "table", "all").stdout
    if DEVICE:
        assert run_in(name, "ip", "link", "show", DEVICE).rc != 0
