"""Switching pod mode and back: converge another mode, then the scenario's own again, and every node
looks exactly as before. A bridge scenario switches to routed proxy_arp (Calico) and back, a routed
one to bridge and back, so between them both directions are run."""
import pytest

from lab import WORKERS, Node, playbook, snapshot

_FIRST = Node(WORKERS[0])
OTHER = "routed:proxy_arp" if _FIRST.mode == "bridge" else "bridge"


@pytest.mark.parametrize("other", [OTHER])
def test_switching_mode_and_back_leaves_no_residue(other):
    mode, _, style = other.partition(":")
    before = snapshot(WORKERS)
    assert all(len(lines) > 5 for lines in before.values()), before
    switched = playbook("site.yml", "-e", f"pod_network_mode={mode}", "-e", f"pod_network_gateway_style={style or 'host_ip'}")
    assert switched.returncode == 0, switched.stdout[-3000:]
    back = playbook("site.yml")
    assert back.returncode == 0, back.stdout[-3000:]
    assert snapshot(WORKERS) == before
