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


def module(name: str, fqcn: str, args: dict, check: bool = False) -> dict:
    """A module call on the node, in diff mode, failures kept as results."""
    return {"name": name, fqcn: args, "check_mode": check, "diff": True, "ignore_errors": True}


def raw(name: str, command: str) -> dict:
    """A fixed command run on the node (no module, so it costs little)."""
    return {"name": name, "ansible.builtin.raw": command, "check_mode": False, "changed_when": False,
            "ignore_errors": True}


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

    def play(self, *steps: dict) -> dict:
        """Run the steps in one ansible-playbook on the node; their results by step name."""
        playbook = self.workdir / "play.yml"
        playbook.write_text(json.dumps([{"hosts": NODE, "gather_facts": False, "tasks": list(steps)}]))
        proc = subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(self.inventory), str(playbook)],
                              env=self.env, cwd=ROOT, capture_output=True, text=True, check=False)
        results = {}
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
                results[result["step"]] = result
        missing = [step["name"] for step in steps if step["name"] not in results]
        assert not missing, f"steps without a result {missing}:\n{proc.stdout}\n{proc.stderr}"
        return results


@contextmanager
def throwaway_lab(tmp_path_factory, purpose: str):
    """A lab of its own, always taken down."""
    lab = Lab(Path(f"/run/handcni-lab-{purpose}-{uuid.uuid4().hex[:8]}"), tmp_path_factory.mktemp(purpose))
    try:
        lab.bin_lab("up", "-i", str(lab.inventory))
        yield lab
    finally:
        lab.bin_lab("down")


def ok(result: dict) -> dict:
    assert not result["failed"], result.get("msg")
    return result


def changed(result: dict) -> bool:
    return ok(result)["changed"]
