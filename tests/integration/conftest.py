"""What the integration tests share: a throwaway lab (leaf03 and worker1, built by bin/lab with its
own state directory, so it runs beside any other lab) and plays of named steps run on worker1.

Each scenario is one ansible-playbook run of named steps (module calls, and `raw` commands that read
the node's kernel or change it by hand), so a scenario costs seconds; the test then reads the results
by step name. Every command runs inside the lab's namespaces; the lab is taken down even when a test fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = "worker1"
NODE_IP = "192.168.210.21"
LEAF_IP = "192.168.210.254"

INVENTORY = f"""\
all:
  vars:
    ansible_connection: handcni.podnet.netns
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
  children:
    workers:
      hosts:
        {NODE}: {{podnet_node_ip: {NODE_IP}}}
    leaf:
      hosts:
        leaf03:
          podnet_leaf_subnets:
            - {{name: vlan210, address: {LEAF_IP}/24}}
"""

# A stdout callback that prints each task result as one JSON line, diff included.
CALLBACK = '''\
import json
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "result_json"

    def _emit(self, result, failed):
        data = dict(getattr(result, "result", None) or result._result)
        task = getattr(result, "task", None) or result._task
        data.update(failed=failed, step=task.get_name())
        self._display.display("RESULT " + json.dumps(data, default=str))

    def v2_runner_on_ok(self, result):
        self._emit(result, False)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._emit(result, True)

    def v2_runner_on_unreachable(self, result):
        self._emit(result, True)
'''

# The node's kernel as text, for "did this step change anything" comparisons: links (without what the
# kernel updates on its own: operstate, carrier, bridge timers, lazily allocated netns ids), global
# addresses, routes of every table (without IPv6 link-local and multicast ones, which follow DAD), the
# network namespaces, and the same inside each of them.
SNAPSHOT = r"""
show() {
  ip "$@" -d -o link |
    sed -E 's/ state [A-Z_]+//; s/,LOWER_UP//; s/ [a-z_]+timer +[0-9.]+//g; s/link-netnsid [0-9]+/link-netnsid/'
  ip "$@" -o addr | grep -v ' scope link' | sed -E 's/ (tentative|dadfailed)//g'
  ip "$@" route show table all | grep -v -e 'fe80:' -e 'ff00::/8'
}
show
ip netns list | sed -E 's/ \(id: [0-9]+\)//'
for ns in $(ip netns list | cut -d' ' -f1); do echo "== netns $ns"; show -n "$ns"; done
"""


def module(name: str, fqcn: str, args: dict, check: bool = False) -> dict:
    """A module call on the node, in diff mode, failures kept as results."""
    return {"name": name, fqcn: args, "check_mode": check, "diff": True, "ignore_errors": True}


def raw(name: str, command: str) -> dict:
    """A fixed command run on the node (no module, so it costs little)."""
    return {"name": name, "ansible.builtin.raw": command, "check_mode": False, "changed_when": False,
            "ignore_errors": True}


def snapshot(name: str, *extra: str) -> dict:
    """Read the node's kernel (and whatever the extra commands print) in one cheap step."""
    return raw(name, "\n".join((SNAPSHOT,) + extra))


def scenario(prefix: str, *steps: dict) -> list:
    """Steps named "prefix: step", so several scenarios share one play (one ansible-playbook start)."""
    return [dict(step, name=f"{prefix}: {step['name']}") for step in steps]


def part(results: dict, prefix: str) -> dict:
    """One scenario's results out of a shared play, by their own step names."""
    head = f"{prefix}: "
    return {name[len(head):]: result for name, result in results.items() if name.startswith(head)}


class Lab:
    """A lab built from INVENTORY with its own state directory; plays of steps run on NODE."""

    def __init__(self, state: Path, workdir: Path):
        self.state = state
        self.workdir = workdir
        self.inventory = workdir / "hosts.yml"
        self.inventory.write_text(INVENTORY)
        (workdir / "callback").mkdir()
        (workdir / "callback" / "result_json.py").write_text(CALLBACK)
        self.env = dict(os.environ, HANDCNI_LAB_STATE=str(state), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                        ANSIBLE_CALLBACK_PLUGINS=str(workdir / "callback"), ANSIBLE_STDOUT_CALLBACK="result_json",
                        ANSIBLE_NOCOLOR="1")

    def bin_lab(self, *argv: str) -> None:
        subprocess.run([str(ROOT / "bin/lab"), *argv], env=self.env, check=True, capture_output=True, text=True)

    def enter(self, node: str) -> list:
        return ["nsenter", f"--net={self.state}/{node}.net", f"--mount={self.state}/{node}.mnt",
                f"--uts={self.state}/{node}.uts", "--"]

    def sh(self, *argv: str, node: str = NODE, check: bool = True) -> subprocess.CompletedProcess:
        """Run argv inside a lab node (never in this machine's namespaces)."""
        return subprocess.run(self.enter(node) + list(argv), check=check, capture_output=True, text=True)

    def start(self, *steps: dict) -> tuple[subprocess.Popen, list]:
        """Start one ansible-playbook of the steps on the node and return at once (see finish())."""
        playbook = self.workdir / f"play-{uuid.uuid4().hex[:8]}.yml"
        playbook.write_text(json.dumps([{"hosts": NODE, "gather_facts": False, "tasks": list(steps)}]))
        proc = subprocess.Popen([str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(self.inventory), str(playbook)],
                                env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return proc, [step["name"] for step in steps]

    @staticmethod
    def finish(started: tuple[subprocess.Popen, list], timeout: float = 300) -> dict:
        """Wait for a started play; its results by step name."""
        proc, names = started
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        results = {}
        for line in stdout.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
                results[result["step"]] = result
        missing = [name for name in names if name not in results]
        assert not missing, f"steps without a result {missing}:\n{stdout}\n{stderr}"
        return results

    def play(self, *steps: dict) -> dict:
        """Run the steps in one ansible-playbook on the node; their results by step name."""
        return self.finish(self.start(*steps))


@contextmanager
def throwaway_lab(tmp_path_factory, purpose: str):
    """A lab of its own, always taken down."""
    lab = Lab(Path(f"/run/handcni-lab-{purpose}-{uuid.uuid4().hex[:8]}"), tmp_path_factory.mktemp(purpose))
    try:
        lab.bin_lab("up", "-i", str(lab.inventory))
        yield lab
    finally:
        lab.bin_lab("down")


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    """A throwaway lab for one test file, named after it (test_veth.py: /run/handcni-lab-veth-<random>)."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root to build namespaces")
    purpose = request.module.__name__.rpartition(".")[2].removeprefix("test_").replace("_", "-")
    with throwaway_lab(tmp_path_factory, purpose) as made:
        yield made


# --- reading results ------------------------------------------------------------------

def ok(result: dict) -> dict:
    assert not result["failed"], result.get("msg")
    return result


def changed(result: dict) -> bool:
    return ok(result)["changed"]


def fails_naming(result: dict, message: str) -> bool:
    """The step failed, and its message starts with this one (which names the field)."""
    return result["failed"] and result.get("msg", "").startswith(message)


def same_plan(planned: dict, real: dict) -> bool:
    """A check-mode run predicted the real one: same `changed`, same actions."""
    return (ok(planned)["changed"], planned["actions"]) == (ok(real)["changed"], real["actions"])


def link_names(result: dict) -> set:
    """The link names in the output of `ip -o link` (without the @peer part)."""
    return {line.split(":")[1].strip().split("@")[0] for line in result["stdout"].splitlines() if ":" in line}


def is_up(link_line: str) -> bool:
    """Whether `ip link` shows the link administratively up (UP among its flags)."""
    flags = link_line.split("<", 1)[1].split(">", 1)[0].split(",")
    return "UP" in flags


def diffs_agree(results: dict) -> list:
    """Names of module steps whose diff is missing, or whose before/after differ other than exactly when changed."""
    wrong = []
    for name, result in results.items():
        if result.get("failed") or "actions" not in result:
            continue  # a failure, or a raw step
        diff = result.get("diff")
        if not isinstance(diff, dict) or "before" not in diff or "after" not in diff:
            wrong.append(name)
        elif (diff["before"] != diff["after"]) != result["changed"]:
            wrong.append(name)
    return wrong
