"""Benchmark: what an unchanged converge of the seed lab costs against Ansible alone (issue 17).

  .venv/bin/python bench/converge.py [--runs 3] [--args '-e pod_network_mode=routed'] [--venv DIR] [--machines]

Not a test: it measures, reports and checks one floor. On a throwaway lab of the seed inventory
(inventories/lab, its own HANDCNI_LAB_STATE), site.yml converges once, then runs `--runs` more times
unchanged (changed=0 on every host, from the recap), and a playbook of one ansible.builtin.ping per
host of the same inventory runs as often. Floor: the median unchanged converge takes at most 6 times
the median ping playbook (wall seconds), and the figures keep the CPU seconds of each (the children's
rusage: the controller and every module process) and the module tasks per worker. `--venv` runs Ansible
from another virtualenv (another Python or ansible-core; the lab's modules run with the controller's
Python). Writes build/bench/converge.json (build/bench/converge-NAME.json with --venv).

--machines: the same on the machines lab (inventories/machines: Debian machines over SSH), where the modules
run inside the machines, so the CPU seconds of ansible-playbook and its children are the controller's alone
(and ssh's). Its floor: the controller's CPU per task and host (each ok or skipped task on a host, from the
recap) at most that of the ping playbook. Writes build/bench/converge-machines.json.
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pods import RECAP, children_cpu, load, machine, report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLOOR = 6.0
PING = """\
- name: Ansible alone, one ping per host
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def run(venv: Path, env: dict, playbook: Path, extra: list) -> dict:
    cpu_before, start = children_cpu(), time.perf_counter()
    done = subprocess.run([str(venv / "bin/ansible-playbook"), str(playbook), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu_before
    recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "skipped": int(m[5])} for m in RECAP.findall(done.stdout)}
    if done.returncode != 0 or not recap:
        raise SystemExit(f"bench: {playbook.name} failed (rc {done.returncode}):\n{done.stdout[-3000:]}")
    task_hosts = sum(r["ok"] + r["skipped"] for r in recap.values())
    return {"seconds": round(seconds, 3), "cpu_s": round(cpu, 2), "recap": recap, "task_hosts": task_hosts,
            "cpu_per_task_host": round(cpu / task_hosts, 4), "changed": sum(r["changed"] for r in recap.values())}


def median(runs: list, key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--args", default="", help="extra ansible-playbook arguments for site.yml")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="the virtualenv Ansible runs from")
    parser.add_argument("--machines", action="store_true", help="the machines lab over SSH (controller CPU)")
    args = parser.parse_args()
    inventory = ROOT / ("inventories/machines" if args.machines else "inventories/lab")
    state = f"/run/handcni-lab-bench-converge-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, HANDCNI_LAB_STATE=state, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    extra = ["-i", str(inventory)] + shlex.split(args.args)
    python = subprocess.run([str(args.venv / "bin/python"), "-c", "import sys, ansible.release as r; "
                             "print(sys.version.split()[0], r.__version__)"], capture_output=True, text=True)
    result = {"machine": machine(), "args": extra, "python_ansible": python.stdout.split()}
    try:
        subprocess.run([str(ROOT / "bin/lab"), "up", "-i", str(inventory)], env=env, check=True, capture_output=True)
        if args.machines:
            subprocess.run([str(ROOT / "bin/machines"), "up", "-i", str(inventory)], env=env, check=True,
                           capture_output=True)
        site = ROOT / "playbooks/site.yml"
        result["first"] = run(args.venv, env, site, extra)
        result["unchanged"] = [run(args.venv, env, site, extra) for _ in range(args.runs)]
        with tempfile.TemporaryDirectory() as workdir:
            ping = Path(workdir) / "ping.yml"
            ping.write_text(PING)
            result["ping"] = [run(args.venv, env, ping, ["-i", str(inventory)]) for _ in range(args.runs)]
    finally:
        if args.machines:
            subprocess.run([str(ROOT / "bin/machines"), "down"], env=env, check=False, capture_output=True)
        subprocess.run([str(ROOT / "bin/lab"), "down"], env=env, check=False, capture_output=True)
    unchanged, ping = median(result["unchanged"], "seconds"), median(result["ping"], "seconds")
    result["ratio"] = round(unchanged / ping, 2)
    result["load_at_end"] = load()
    tasks = {host: r["ok"] for host, r in result["unchanged"][0]["recap"].items()}
    print(f"unchanged converge {unchanged} s ({median(result['unchanged'], 'cpu_s')} CPU-s), "
          f"ping playbook {ping} s ({median(result['ping'], 'cpu_s')} CPU-s): ratio {result['ratio']} "
          f"(floor <= {FLOOR}); tasks ok per host {tasks}")
    per_task = {kind: median(result[kind], "cpu_per_task_host") for kind in ("unchanged", "ping")}
    result["cpu_per_task_host"] = per_task
    print(f"CPU per task and host (the controller's alone with --machines): converge {per_task['unchanged']} s, "
          f"ping {per_task['ping']} s")
    problems = []
    if any(r["changed"] for r in result["unchanged"]):
        problems.append("an unchanged converge changed something")
    if args.machines and per_task["unchanged"] > per_task["ping"]:
        problems.append(f"controller CPU per task and host {per_task['unchanged']} > ping's {per_task['ping']}")
    if not args.machines and result["ratio"] > FLOOR:
        problems.append(f"ratio {result['ratio']} > {FLOOR}")
    own = args.venv.resolve() == (ROOT / ".venv").resolve()
    name = "converge" if own else f"converge-{args.venv.name}"
    return report(result, problems, name + ("-machines" if args.machines else ""))


if __name__ == "__main__":
    sys.exit(main())
