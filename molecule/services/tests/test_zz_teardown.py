"""Last: teardown.yml stops the pods' servers by their PID files and removes every rule of ours, from the
nftables backend the scenario ends in (the shared teardown tests of the other scenarios run it twice)."""
import pytest
from conftest import WORKERS, ours, playbook, run_in

STATE_DIR = "/run/handcni-services"


def server_pids(node: str) -> list:
    """The PIDs in the servers' PID files on a node (the first line of each)."""
    listing = run_in(node, "sh", "-c", f"head -qn1 {STATE_DIR}/*.pid 2>/dev/null").stdout
    return [int(pid) for pid in listing.split()]


@pytest.fixture(scope="module")
def torn_down():
    pids = {node: server_pids(node) for node in WORKERS}
    assert any(pids.values()), "the servers should run before teardown"
    run = playbook("teardown.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    return pids, run.stdout


@pytest.mark.parametrize("node", WORKERS)
def test_servers_stopped_and_rules_gone(torn_down, node):
    for pid in torn_down[0][node]:
        command = run_in(node, "cat", f"/proc/{pid}/cmdline").stdout
        assert "http.server" not in command and "podserver" not in command, f"server {pid} on {node} still runs"
    assert run_in(node, "test", "-e", STATE_DIR).rc != 0
    assert ours(node).strip() == ""
