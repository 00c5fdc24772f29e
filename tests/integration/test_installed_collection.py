"""The collection as users get it, on a throwaway lab of the seed topology:

- built into its tarball and installed into an empty collections path, then site.yml and verify.yml run
  by their collection names (handcni.podnet.site, .verify) from a directory holding only an inventory
  (a copy of inventories/lab), with no ansible.cfg and no file of the checkout;
- then as AWX runs a job: the project sync installs collections/requirements.yml into a path of its
  own, and ansible-runner runs the project's playbooks/teardown.yml with that inventory and extra vars;
- every node is then as it was before site.yml."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import ansible_runner

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv/bin"
# What converge changes and teardown must put back (IPv6 link-local addresses come and go with DAD).
STATE = ("ip -o link | awk -F': ' '{print $2}'; ip -o addr | awk '{print $2, $3, $4}' | grep -v ' fe80:'; ip route; "
         "iptables-save | grep -v '^[#:]'; ls /run /etc /var/lib")


def clean_env(**extra: str) -> dict:
    """This machine's environment without any Ansible setting of the checkout (make exports ANSIBLE_CONFIG)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    return dict(env, **extra)


def run(argv: list, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """argv in cwd, as a shell would start it (PWD is where it runs)."""
    done = subprocess.run(argv, cwd=cwd, env=dict(env, PWD=str(cwd)), capture_output=True, text=True, check=False)
    assert done.returncode == 0, (argv, done.stdout[-3000:], done.stderr[-2000:])
    return done


def test_installed_tarball_and_awx_project(tmp_path):
    state = f"/run/handcni-lab-installed-{uuid.uuid4().hex[:8]}"
    work = tmp_path / "work"  # only an inventory in it
    shutil.copytree(ROOT / "inventories/lab", work / "inventory")
    env = clean_env(HANDCNI_LAB_STATE=state)
    tarballs, installed, synced = tmp_path / "dist", tmp_path / "installed", tmp_path / "awx-collections"

    run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tarballs), str(ROOT)], tmp_path, env)
    tarball = next(tarballs.glob("handcni-podnet-*.tar.gz"))
    run([str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(installed), str(tarball)], tmp_path, env)
    installed_env = dict(env, ANSIBLE_COLLECTIONS_PATH=str(installed))

    subprocess.run([str(ROOT / "bin/lab"), "up", "-i", str(work / "inventory")], env=env, check=True,
                   capture_output=True)
    try:
        before = {n: run([str(ROOT / "bin/lab"), "exec", n, "--", "sh", "-c", STATE], tmp_path, env).stdout
                  for n in ("worker1", "leaf03")}
        site = run([str(BIN / "ansible-playbook"), "-i", "inventory", "handcni.podnet.site"], work, installed_env)
        assert "failed=0" in site.stdout
        run([str(BIN / "ansible-playbook"), "-i", "inventory", "handcni.podnet.verify"], work, installed_env)
        cells = json.loads((work / "build/verify.json").read_text())
        assert cells and all(cell["ok"] for cell in cells), [c for c in cells if not c["ok"]]
        assert {cell["kind"] for cell in cells} >= {"same_node", "cross_node", "egress", "clusterip", "nodeport"}
        assert sorted(p.name for p in work.iterdir()) == ["build", "inventory"]  # nothing else was needed

        # AWX: the project sync installs the requirements, then the job runs a playbook of the project.
        run([str(BIN / "ansible-galaxy"), "collection", "install", "-r", "collections/requirements.yml",
             "-p", str(synced)], ROOT, dict(env, ANSIBLE_COLLECTIONS_PATH=str(synced)))
        (tmp_path / "job").mkdir()
        job = ansible_runner.run(
            private_data_dir=str(tmp_path / "job"), project_dir=str(ROOT), playbook="playbooks/teardown.yml",
            inventory=str(work / "inventory"), extravars={"services_state_dir": "/run/handcni-services"},
            envvars={"ANSIBLE_COLLECTIONS_PATH": str(synced), "HANDCNI_LAB_STATE": state, "PATH": env["PATH"]},
            quiet=True,
        )
        assert (job.status, job.rc) == ("successful", 0), job.stdout.read()[-3000:]
        after = {n: run([str(ROOT / "bin/lab"), "exec", n, "--", "sh", "-c", STATE], tmp_path, env).stdout
                 for n in before}
        changed = {n: sorted(set(before[n].splitlines()) ^ set(after[n].splitlines())) for n in before}
        assert not any(changed.values()), changed
    finally:
        subprocess.run([str(ROOT / "bin/lab"), "down"], env=env, check=False, capture_output=True)
