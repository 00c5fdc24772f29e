"""Last: teardown.yml removes everything the collection made, from whatever the scenario converged and
its tests did, and nothing else: every node (workers, leaf, outside) is exactly as it was before
converge, by lab.py's record (links, addresses, routes, permanent neighbour and FDB entries, proxy
ARP, forwarding, iptables and nftables rules, pod namespaces, the daemons running in the node, and
the files of BIRD, FRR, CNI, IPAM and the lab's servers, by digest). Running it twice changes nothing
the second time (suite `teardown_again`, one scenario's: it costs a whole run)."""
import json

import pytest

from lab import differences_from_before_converge, failures, playbook, recap


@pytest.fixture(scope="module")
def torn_down():
    first = playbook("teardown.yml")
    assert first.returncode == 0, failures(first.stdout)


def test_every_node_is_as_it_was_before_converge(torn_down):
    differences = differences_from_before_converge()
    assert differences == {}, json.dumps(differences, indent=1)


@pytest.mark.suite("teardown_again")
def test_teardown_again_changes_nothing(torn_down):
    second = playbook("teardown.yml")
    assert second.returncode == 0, failures(second.stdout)
    counts = recap(second.stdout)
    assert counts and set(counts.values()) == {0}, counts
    assert differences_from_before_converge() == {}
