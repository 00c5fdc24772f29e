"""Partial failure on a throwaway lab of the full topology (issue 8):
- one node failing mid-play (a link someone else made under a pod's veth name) and one unreachable:
  the others converge, the play names each failed node and why, and the next run converges the
  failed ones with nothing else changing;
- site.yml killed (SIGKILL, the controller and the module it was running) at several points of a
  converge: the next run repairs the node to exactly the state of an uninterrupted converge, with
  the same pod addresses and no leaked IPAM record."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / ".venv/bin/ansible-playbook"
# Pods on worker1 with allocated addresses (IPAM), for the kill test.
ALLOCATED = {"worker1": {"podnet_pods": [{"name": f"netns{i}", "veth": f"veth{i}"} for i in [1, *range(3, 32)]]}}
RECORD = "/var/lib/handcni/ipam/192.168.10.0_24.json"
STATE = ("ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | sort; ip -o addr | awk '{print $2, $3, $4}' | grep -v fe80 | sort; "
         "ip route show table all | grep -v -e fe80 -e ff00 | sort; ip netns list | sort; "
         "for ns in $(ip netns list | cut -d' ' -f1); do ip -n $ns -o addr | awk '{print $2, $3, $4}'; "
         "ip -n $ns route; done | grep -v fe80; cat " + RECORD)


class FullLab:
    def __init__(self, tmp: Path):
        self.state = Path(f"/run/handcni-lab-partial-{uuid.uuid4().hex[:8]}")
        self.tmp = tmp
        self.env = dict(os.environ, HANDCNI_LAB_STATE=str(self.state), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                        ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")

    def lab(self, *argv: str) -> None:
        subprocess.run([str(ROOT / "bin/lab"), *argv], env=self.env, check=True, capture_output=True)

    def sh(self, node: str, command: str, check: bool = True) -> str:
        return subprocess.run([str(ROOT / "bin/lab"), "exec", node, "--", "sh", "-c", command], env=self.env,
                              check=check, capture_output=True, text=True).stdout

    def inventory(self, name: str, hosts: dict) -> str:
        path = self.tmp / f"{name}.yml"
        path.write_text(json.dumps({"all": {"hosts": hosts}}))
        return str(path)

    def argv(self, playbook: str, *extra: str) -> list:
        return [str(PLAYBOOK), "-i", str(ROOT / "inventories/lab"), *extra, str(ROOT / "playbooks" / playbook)]

    def playbook(self, playbook: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(playbook, *extra), env=self.env, cwd=ROOT, capture_output=True, text=True,
                              check=False)

    def killed_when(self, condition: str, playbook: str, *extra: str) -> None:
        """Start the play and SIGKILL it, controller and module alike (their process groups), the moment the
        shell test `condition` holds on worker1; fail if the play ended first. The test is retried in a
        loop of shell builtins inside worker1, so the kill lands within microseconds of the point. The watcher
        is looping before the play starts (on a loaded machine `bin/lab exec` may take longer than the play
        takes to pass the point), and reads the play's PID from a file when the point is reached."""
        pidfile = self.tmp / f"play-{uuid.uuid4().hex[:8]}.pid"
        # Ansible's workers run each in a session of their own, with the module they start: kill those too.
        watch = (f"echo ready; until {condition}; do :; done; until [ -s {pidfile} ]; do :; done; "
                 f'play=$(cat {pidfile}); /bin/kill -s KILL -- -$play $(pgrep -P $play | sed "s/^/-/")')
        watcher = subprocess.Popen([str(ROOT / "bin/lab"), "exec", "worker1", "--", "sh", "-c", watch],
                                   env=self.env, stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert watcher.stdout.readline().strip() == "ready"
        play = subprocess.Popen(self.argv(playbook, *extra), env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        pidfile.write_text(f"{play.pid}\n")
        try:
            play.wait(timeout=120)
        finally:
            if watcher.poll() is None:
                os.killpg(watcher.pid, signal.SIGKILL)
            watcher.wait()
        assert play.returncode == -signal.SIGKILL, f"the play ended ({play.returncode}) before: {condition}"


def recap(output: str) -> dict:
    """{host: {changed, failed, unreachable}} from the play recap."""
    counts = {}
    for line in output.splitlines():
        host, sep, stats = line.partition(" : ")
        if sep and "changed=" in stats:
            fields = dict(item.split("=") for item in stats.split())
            counts[host.strip()] = {k: int(fields[k]) for k in ("changed", "failed", "unreachable")}
    return counts


@pytest.fixture(scope="module")
def full_lab(tmp_path_factory):
    made = FullLab(tmp_path_factory.mktemp("partial"))
    made.lab("up")
    try:
        yield made
    finally:
        made.lab("down")


@pytest.mark.full
def test_a_failing_and_an_unreachable_node_leave_the_others_converged(full_lab):
    full_lab.sh("worker2", "ip link add veth2 type bridge")  # someone else's link, under a pod's veth name
    cut_off = full_lab.inventory("cut-off", {"worker3": {"ansible_netns_state_dir": "/nonexistent"}})
    run = full_lab.playbook("site.yml", "-i", cut_off)
    counts = recap(run.stdout)
    assert run.returncode != 0
    assert counts["worker1"]["failed"] == counts["worker1"]["unreachable"] == 0, counts
    assert counts["worker2"]["failed"] == 1 and counts["worker3"]["unreachable"] == 1, counts
    assert counts["leaf03"]["failed"] == 0, counts
    # the play says which node failed and why
    # the actions done before it come first; the message may be folded
    failure = " ".join(run.stdout[run.stdout.index("fatal: [worker2]"):][:8000].split())
    assert "veths[1].name: link veth2 in the host namespace exists and was not made by handcni.podnet" in failure
    assert "changed: true" in failure, failure  # the parts before it (sysctls, namespaces, bridge) were applied
    assert "fatal: [worker3]: UNREACHABLE!" in run.stdout and "/nonexistent/worker3.net" in run.stdout
    # worker1 converged: its pods talk to each other and across the leaf to the outside
    assert "1 received" in full_lab.sh("worker1", "ip netns exec netns1 ping -c1 -W2 192.168.10.3", check=False)
    assert "1 received" in full_lab.sh("worker1", "ip netns exec netns1 ping -c1 -W2 203.0.113.10", check=False)

    full_lab.sh("worker2", "ip link del veth2")
    again = full_lab.playbook("site.yml")
    counts = recap(again.stdout)
    assert again.returncode == 0, again.stdout[-3000:]
    assert counts["worker2"]["changed"] > 0 and counts["worker3"]["changed"] > 0, counts
    unchanged = {host: c["changed"] for host, c in counts.items() if host not in ("worker2", "worker3")}
    assert set(unchanged.values()) == {0}, unchanged  # nothing else changes
    verify = full_lab.playbook("verify.yml")
    assert verify.returncode == 0, verify.stdout[-3000:]


LIMIT = ("--limit", "localhost,worker1")


@pytest.fixture(scope="module")
def reference(full_lab):
    """worker1 with only its pods (addresses allocated), after teardown and an uninterrupted converge."""
    allocated = full_lab.inventory("allocated", ALLOCATED)
    gone = full_lab.playbook("teardown.yml", "-i", allocated, *LIMIT)
    assert gone.returncode == 0, gone.stdout[-3000:]
    done = full_lab.playbook("site.yml", "-i", allocated, *LIMIT, "--tags", "pod_network")
    assert done.returncode == 0, done.stdout[-3000:]
    pods = json.loads(full_lab.sh("worker1", f"cat {RECORD}"))["pods"]
    assert sorted(pods) == sorted(p["name"] for p in ALLOCATED["worker1"]["podnet_pods"])
    return allocated, full_lab.sh("worker1", STATE)


# Where the kill lands: after IPAM recorded the addresses, with some pod namespaces made, with some
# veths made (the first ones may be up and addressed, the last not yet). `make test` runs the last.
KILL_POINTS = {
    "addresses recorded": f"test -s {RECORD}",
    "namespaces half made": "set -- /run/netns/*; [ $# -ge 3 ]",
    "veths half made": "set -- /sys/class/net/veth*; [ $# -ge 3 ]",
}


@pytest.mark.parametrize("point", [pytest.param(point, marks=[] if point == "veths half made" else [pytest.mark.full])
                                   for point in KILL_POINTS])
def test_a_converge_killed_half_way_is_repaired_by_the_next(full_lab, reference, point):
    allocated, state = reference
    gone = full_lab.playbook("teardown.yml", "-i", allocated, *LIMIT)
    assert gone.returncode == 0, gone.stdout[-3000:]
    full_lab.killed_when(KILL_POINTS[point], "site.yml", "-i", allocated, *LIMIT, "--tags", "pod_network")
    assert full_lab.sh("worker1", STATE) != state  # the kill left the node half made
    repaired = full_lab.playbook("site.yml", "-i", allocated, *LIMIT, "--tags", "pod_network")
    assert repaired.returncode == 0, repaired.stdout[-3000:]
    assert full_lab.sh("worker1", STATE) == state  # the same links, addresses, routes and IPAM record
    ip = json.loads(full_lab.sh("worker1", f"cat {RECORD}"))["pods"]
    assert "1 received" in full_lab.sh("worker1", f"ip netns exec netns1 ping -c1 -W2 {ip['netns31']}", check=False)
