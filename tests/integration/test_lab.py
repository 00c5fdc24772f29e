"""The lab itself: nodes isolated like machines, reached by the netns connection, and a `down` that
leaves the machine's root namespace exactly as before `up`, with no namespace, process or file behind."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def root_namespace() -> str:
    """Everything of the root network namespace the lab must not change."""
    commands = [
        ["ip", "-d", "link"], ["ip", "address"], ["ip", "route", "show", "table", "all"],
        ["ip", "-6", "route", "show", "table", "all"], ["ip", "rule"], ["ip", "neigh", "show", "nud", "permanent"],
        ["iptables-save"], ["nft", "list", "ruleset"], ["ip", "netns", "list"],
        ["sysctl", "-a", "--pattern", r"^net\.(ipv4\.(ip_forward|conf\.)|ipv6\.conf\.)"],
    ]
    out = []
    for argv in commands:
        run = subprocess.run(argv, capture_output=True, text=True, check=False)
        lines = [line for line in run.stdout.splitlines() if not line.startswith("#")]  # iptables-save stamps
        out.append(" ".join(argv) + "\n" + "\n".join(lines))
    return "\n".join(out)


def mounts(state: Path) -> list:
    """The mount table, less other labs' (tests run side by side), which come and go on their own."""
    return [line for line in Path("/proc/self/mounts").read_text().splitlines()
            if "/run/handcni-" not in line or str(state) in line]


def lab(state: Path, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, HANDCNI_LAB_STATE=str(state))
    return subprocess.run([str(ROOT / "bin/lab"), *argv], env=env, capture_output=True, text=True, check=check)


def test_up_converge_down_leaves_the_machine_as_it_was():
    state = Path(f"/run/handcni-lab-itest-{uuid.uuid4().hex[:8]}")
    before = root_namespace()
    mounts_before = mounts(state)
    sleeper = None
    try:
        lab(state, "up")
        # Each node is its own machine: its own netns1, hostname, /etc and /run.
        for node in ("worker1", "worker2"):
            lab(state, "exec", node, "--", "ip", "netns", "add", "netns1")
        assert lab(state, "exec", "worker2", "--", "hostname").stdout.strip() == "worker2"
        lab(state, "exec", "worker1", "--", "sh", "-c", "echo node1 > /etc/handcni-lab-test")
        assert lab(state, "exec", "worker2", "--", "cat", "/etc/handcni-lab-test", check=False).returncode != 0
        assert not Path("/etc/handcni-lab-test").exists()
        # Ansible reaches the nodes through the netns connection, and traffic crosses the leaf.
        env = dict(os.environ, HANDCNI_LAB_STATE=str(state), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
        ping = subprocess.run([str(ROOT / ".venv/bin/ansible"), "worker1", "-m", "ansible.builtin.command",
                               "-a", "ping -c1 -W2 192.168.230.23"], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        # A process left running in a pod namespace is stopped by `down`.
        sleeper = subprocess.Popen([str(ROOT / "bin/lab"), "exec", "worker1", "--", "ip", "netns", "exec", "netns1",
                                    "sleep", "600"], env=dict(os.environ, HANDCNI_LAB_STATE=str(state)))
        assert lab(state, "status").returncode == 0
        assert root_namespace() == before, "bringing the lab up changed the root network namespace"
    finally:
        lab(state, "down", check=False)
    assert sleeper is not None and sleeper.wait(timeout=10) is not None
    assert not state.exists()
    assert root_namespace() == before
    assert mounts(state) == mounts_before
    assert lab(state, "status", check=False).returncode == 1  # "lab is down"


def test_exec_names_a_missing_node():
    state = Path(f"/run/handcni-lab-itest-{uuid.uuid4().hex[:8]}")
    run = lab(state, "exec", "worker9", "--", "true", check=False)
    assert run.returncode != 0 and "no node 'worker9' is up" in run.stderr
