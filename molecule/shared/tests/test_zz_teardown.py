"""Last: teardown.yml removes everything the collection made, from whatever the scenario converged and
its tests did, and nothing else: every node (workers, leaf, outside) is exactly as it was before
converge, by lab.py's record (links, addresses, routes, permanent neighbour and FDB entries, proxy
ARP, forwarding, iptables and nftables rules, pod namespaces, the daemons running in the node, and
the files of BIRD, FRR, CNI, IPAM and the lab's servers, by digest). Running it twice is fine."""
import json

import pytest

from lab import differences_from_before_converge, playbook, recap


@pytest.fixture(scope="module")
def torn_down():
    first = playbook("teardown.yml")
    assert first.returncode == 0, first.stdout[-3000:]
    second = playbook("teardown.yml")
    assert second.returncode == 0, second.stdout[-3000:]
    return recap(second.stdout)


def test_teardown_twice_changes_nothing_the_second_time(torn_down):
    assert torn_down and set(torn_down.values()) == {0}, torn_down


def test_every_node_is_as_it_was_before_converge(torn_down):
    differences = differences_from_before_converge()
    assert differences == {}, json.dumps(differences, indent=1)
