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
