"""site.yml, verify.yml and teardown.yml run unchanged under ansible-runner, what AWX uses: no prompt,
the inventory and the lab's connection settings as they are, on a throwaway lab of the full topology."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import ansible_runner
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.full  # the whole lab converged, verified and torn down: make test-all
def test_site_verify_teardown_under_ansible_runner(tmp_path):
    state = Path(f"/run/handcni-lab-runner-{uuid.uuid4().hex[:8]}")
    env = dict(os.environ, HANDCNI_LAB_STATE=str(state))
    subprocess.run([str(ROOT / "bin/lab"), "up"], env=env, check=True, capture_output=True)
    try:
        for playbook in ("site.yml", "verify.yml", "teardown.yml"):
            (tmp_path / playbook).mkdir()
            run = ansible_runner.run(
                private_data_dir=str(tmp_path / playbook), project_dir=str(ROOT / "playbooks"), playbook=playbook,
                inventory=str(ROOT / "inventories/lab"), quiet=True,
                envvars={"HANDCNI_LAB_STATE": str(state), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                         "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}"},
            )
            assert (run.status, run.rc) == ("successful", 0), (playbook, run.stdout.read()[-3000:])
            assert not run.stats["failures"] and not run.stats["dark"]
    finally:
        subprocess.run([str(ROOT / "bin/lab"), "down"], env=env, check=False, capture_output=True)
    assert not state.exists()


@pytest.mark.full  # machines booted for one worker; the machines scenario covers SSH in make test
def test_site_over_ssh_with_a_private_key_credential_under_ansible_runner(tmp_path):
    """The machines inventory as an AWX inventory would hold it, and the SSH key as AWX's machine
    credential gives it (ansible-runner's ssh_key: loaded into an ssh-agent, no key file named): site.yml
    prepares and wires a real Debian 12 machine over SSH as the unprivileged user with sudo."""
    state = Path(f"/run/handcni-lab-runner-{uuid.uuid4().hex[:8]}")
    env = dict(os.environ, HANDCNI_LAB_STATE=str(state))
    inventory = str(ROOT / "inventories/machines")
    try:
        subprocess.run([str(ROOT / "bin/lab"), "up", "-i", inventory], env=env, check=True, capture_output=True)
        subprocess.run([str(ROOT / "bin/machines"), "up", "-i", inventory], env=env, check=True, capture_output=True)
        run = ansible_runner.run(
            private_data_dir=str(tmp_path), project_dir=str(ROOT / "playbooks"), playbook="site.yml",
            inventory=inventory, limit="worker1,localhost", quiet=True,
            ssh_key=(state / "machines/id_ed25519").read_text(),
            extravars={"ansible_ssh_private_key_file": ""},  # the credential is the only key
            envvars={"HANDCNI_LAB_STATE": str(state), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                     "PATH": f"{ROOT / '.venv/bin'}:{os.environ['PATH']}"},
        )
        out = run.stdout.read()
        assert (run.status, run.rc) == ("successful", 0), out[-3000:]
        assert run.stats["ok"].get("worker1") and not run.stats["failures"] and not run.stats["dark"]
        assert "Install the packages of this node's choices" in out  # node_prep ran, over SSH
    finally:
        subprocess.run([str(ROOT / "bin/machines"), "down"], env=env, check=False, capture_output=True)
        subprocess.run([str(ROOT / "bin/lab"), "down"], env=env, check=False, capture_output=True)
    assert not state.exists()
