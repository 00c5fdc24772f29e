"""Benchmark: 1,000 and 10,000 services x 2 endpoints on one lab node, with both firewall backends.

  .venv/bin/python bench/services.py [--services 1000] [--rounds 5] [--large 10000] [--ansible 2]
                                    [--json build/bench-services.json]

Not a test: it measures and reports, and checks the floors. Issue 4 at 1,000 (kube-proxy's iptables-restore
of 1,000 services took about 700 ms, kubernetes#36006): applying them all takes under 700 ms, and applying
them again unchanged changes nothing. Issue 25 at 10,000 (one round; --large 0 leaves it out): a run that
changes nothing and one that changes one endpoint take at most 500 ms each, the module's apply at most 1.5
times its own transaction replayed alone, and at most 12 times its apply at 1,000; with nftables a connection
to the 10,000th service takes at most 1.1 times as long as to the first (iptables' growth is reported).

A throwaway lab (leaf03 and worker1, its own HANDCNI_LAB_STATE) is brought up and always taken down.
Inside worker1 the nat_rule module runs as Ansible runs it on a node (the module file as a Python process
with its arguments), so its time is the whole of a node's work: Python start, reading the rules, planning
and the one transaction. Each round, per backend:
  apply      from nothing to 1,000 services (every one with a node port, so kube-proxy's full chain set)
  unchanged  the same again: must report no change (3 times per round)
  one        one endpoint of one service replaced, then put back: only that service's rules are written,
             planned from the record alone (a partial sync; 3 pairs per round)
  remove     state=absent, everything of ours removed
The transaction alone (iptables-restore --noflush, or nft -f) is timed too, by replaying it (at 10,000, the
apply and its replay 3 times each, every one from nothing), and so is
a sync in one process (kube-proxy's syncProxyRules: read what is there, plan, one transaction), without
what the module process adds around it (Python start, imports, Ansible's argument checks and result).

Through Ansible (issue 25, deliverable 5; --ansible 0 leaves it out): the same 10,000 services as the
inventory's podnet_services, `site.yml --tags services` on the same lab, a first run and then unchanged runs
(they must change nothing); reported beside the module's own unchanged run, no floor.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pods import PLAYBOOK, RECAP  # noqa: E402
COLLECTIONS = ROOT / ".collections"
MODULE = "ansible_collections.handcni.podnet.plugins.modules.nat_rule"
FLOOR_MS = 700
LARGE_FLOORS = {"unchanged": 500, "one endpoint": 500}  # ms, at 10,000 services (issue 25)
TOOL_RATIO, GROWTH = 1.5, 12  # apply / its transaction alone; apply at 10,000 / at 1,000
REPEAT = 3  # unchanged runs, and pairs of one-endpoint changes, per round
CONNECT_RATIO = 1.1  # nftables: connect time to the 10,000th service / to the first
LOCAL_PREFIXES = ("10.96.0.0/16", "10.244.0.0/16", "10.245.0.0/16", "10.246.0.0/16")  # services(): cluster IPs, endpoints
INVENTORY = """\
all:
  vars:
    ansible_connection: handcni.podnet.netns
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  children:
    workers:
      hosts:
        worker1: {podnet_node_ip: 192.168.210.21, podnet_pod_cidr: 10.250.1.0/24}
    leaf:
      hosts:
        leaf03:
          podnet_leaf_subnets:
            - {name: vlan210, address: 192.168.210.254/24}
"""


def services(count: int, changed: bool = False) -> list:
    """count services, each with a cluster IP, a node port and two endpoints (pods of two /16s)."""
    out = []
    for index in range(count):
        high, low = divmod(index, 250)
        endpoints = [{"ip": f"10.244.{high}.{low + 1}"}, {"ip": f"10.245.{high}.{low + 1}"}]
        if changed and index == count // 2:
            endpoints[1] = {"ip": f"10.246.{high}.{low + 1}"}
        out.append({"name": f"svc-{index:04d}", "cluster_ip": f"10.96.{high}.{low + 1}", "port": 80,
                    "protocol": "tcp", "node_port": 30000 + index, "target_port": 8080, "endpoints": endpoints})
    return out


# --- inside the lab node --------------------------------------------------------------

def run_module(args: dict) -> tuple:
    """One nat_rule run as a node runs it; (seconds, result)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS), LC_ALL="C")
    try:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", MODULE, handle.name], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    finally:
        os.unlink(handle.name)
    result = json.loads(done.stdout)
    if result.get("failed"):
        raise SystemExit(f"nat_rule failed: {result.get('msg')}")
    return seconds, result


def replay(transaction: dict) -> float:
    """Time the transaction alone: undo what the module did, then run its exact command and input."""
    start = time.perf_counter()
    subprocess.run(transaction["argv"], input=transaction["input"], text=True, capture_output=True, check=True)
    return time.perf_counter() - start


def clean() -> None:
    run_module({"state": "absent"})


def sync(backend: str, items: list) -> float:
    """Read both backends, plan and apply in this process, as the module does; seconds."""
    sys.path.insert(0, str(COLLECTIONS))
    from ansible_collections.handcni.podnet.plugins.module_utils import _command as command
    from ansible_collections.handcni.podnet.plugins.module_utils import _firewall as fw
    from ansible_collections.handcni.podnet.plugins.module_utils import _services as svc
    from ansible_collections.handcni.podnet.plugins.modules.nat_rule import BACKENDS

    def run_command(argv, data=None, binary_data=False, environ_update=None):
        done = subprocess.run(argv, input=data, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr

    runner = command.Runner(run_command, shutil.which)
    start = time.perf_counter()
    backends = {name: cls(runner) for name, cls in BACKENDS.items()}
    have = {name: b.read() for name, b in backends.items()}
    wanted = svc.wanted(svc.normalise_services(items), [], "present", True)
    target = fw.NatSet((), wanted, ("192.168.210.21",))
    for name, b in backends.items():
        tx = b.plan(have[name], target if name == backend else fw.NatSet(), ("services",))
        if tx:
            b.apply(tx)
    return time.perf_counter() - start


def connect_times(count: int, tries: int = 400, runs: int = 3) -> dict:
    """Microseconds to connect to the first and to the last service (median of `runs` medians of `tries`,
    interleaved): every cluster IP and endpoint address local to this namespace, one listener on the
    endpoints' port. nftables dispatches with one verdict map lookup; iptables walks its dispatch chain."""
    for prefix in LOCAL_PREFIXES:
        subprocess.run(["ip", "route", "replace", "local", prefix, "dev", "lo"], check=True)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 8080))
    listener.listen(4096)

    def serve():
        while True:
            try:
                listener.accept()[0].close()
            except OSError:
                return
    threading.Thread(target=serve, daemon=True).start()
    listed = services(count)
    targets = {"first": listed[0]["cluster_ip"], "last": listed[-1]["cluster_ip"]}
    medians = {name: [] for name in targets}
    try:
        for _ in range(runs):
            samples = {name: [] for name in targets}
            for _ in range(tries):
                for name, address in targets.items():
                    start = time.perf_counter_ns()
                    socket.create_connection((address, 80), timeout=2).close()
                    samples[name].append((time.perf_counter_ns() - start) / 1000)
            for name in targets:
                medians[name].append(statistics.median(samples[name]))
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in serve(): close alone leaves it listening
        listener.close()
        for prefix in LOCAL_PREFIXES:
            subprocess.run(["ip", "route", "del", "local", prefix, "dev", "lo"], check=False)
    return {name: round(statistics.median(values), 1) for name, values in medians.items()}


def inside(count: int, rounds: int, large: bool = False) -> dict:
    """Each round as the module docstring says; `large` (one round at 10,000): the connect times too, and the
    apply and its transaction alone timed REPEAT times (each from nothing), their ratio a ratio of medians."""
    figures = {}
    for backend in ("iptables", "nftables"):
        rows = {"apply": [], "apply, sync in process": [], "apply, transaction": [], "unchanged": [],
                "one endpoint": [], "remove": []}
        checks = {"unchanged_changed": [], "apply_actions": [], "one_actions": [], "one_sync": "", "rules": 0}
        base = {"backend": backend, "node_addresses": ["192.168.210.21"], "prune": True}
        for _ in range(rounds):
            clean()
            seconds, applied = run_module(dict(base, services=services(count)))
            rows["apply"].append(seconds)
            checks["apply_actions"] = applied["actions"]
            checks["rules"] = sum(1 for line in applied["transactions"][0]["input"].splitlines()
                                  if line.startswith(("-A ", "add rule")))
            for _ in range(REPEAT):  # the sub-second runs, several times per round: their median is stable
                seconds, again = run_module(dict(base, services=services(count)))
                rows["unchanged"].append(seconds)
                checks["unchanged_changed"].append(again["changed"] or bool(again["actions"]))
                for changed in (True, False):  # one endpoint replaced, then put back: two one-endpoint changes
                    seconds, one = run_module(dict(base, services=services(count, changed=changed)))
                    rows["one endpoint"].append(seconds)
                    checks["one_actions"], checks["one_sync"] = one["actions"], one["sync"]
            if large:
                checks["connect_us"] = connect_times(count)
            seconds, _ = run_module({"state": "absent"})
            rows["remove"].append(seconds)
            rows["apply, transaction"].append(replay(applied["transactions"][0]))
            for _ in range(REPEAT - 1 if large else 0):
                clean()
                seconds, applied = run_module(dict(base, services=services(count)))
                rows["apply"].append(seconds)
                clean()
                rows["apply, transaction"].append(replay(applied["transactions"][0]))
            clean()
            rows["apply, sync in process"].append(sync(backend, services(count)))
        clean()
        figures[backend] = {"ms": {k: [round(v * 1000, 1) for v in vs] for k, vs in rows.items()}, **checks}
    return figures


# --- outside: the throwaway lab, the report --------------------------------------------

def through_ansible(env: dict, inventory: Path, count: int, unchanged: int) -> dict:
    """Seconds of `site.yml --tags services` with `count` services in the inventory: the first run, then
    `unchanged` runs, each of which must change nothing."""
    extra = inventory.parent / "services.json"
    extra.write_text(json.dumps({"podnet_services": services(count), "podnet_service_cidr": "10.96.0.0/16",
                                 "podnet_service_node_port_range": f"30000-{30000 + count}"}))
    env = dict(env, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    seconds = []
    for _ in range(1 + unchanged):
        start = time.perf_counter()
        done = subprocess.run([str(PLAYBOOK), "-i", str(inventory),
                               str(ROOT / "playbooks/site.yml"), "--tags", "services", "-e", f"@{extra}"],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"bench: site.yml --tags services failed:\n{done.stdout[-3000:]}")
        if len(seconds) > 1 and any(int(host[2]) for host in RECAP.findall(done.stdout)):
            sys.exit(f"bench: an unchanged site.yml --tags services changed something:\n{done.stdout[-3000:]}")
    return {"first": round(seconds[0], 2), "unchanged": [round(value, 2) for value in seconds[1:]]}


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": model,
            "load": Path("/proc/loadavg").read_text().split()[:3],
            "iptables": subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.strip(),
            "nft": subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout.strip()}


def report(figures: dict, info: dict, count: int) -> tuple:
    lines = [f"{count} services x 2 endpoints, every one with a node port; median (min) of "
             f"{len(figures['iptables']['ms']['apply'])} rounds, in ms",
             f"machine: {info['nproc']} CPUs ({info['cpu']}), kernel {info['kernel']}, load {' '.join(info['load'])}",
             "", f"{'':24}{'iptables':>20}{'nftables':>20}"]
    for row in figures["iptables"]["ms"]:
        cells = [f"{statistics.median(figures[b]['ms'][row]):.0f} ({min(figures[b]['ms'][row]):.0f})"
                 for b in ("iptables", "nftables")]
        lines.append(f"{row:24}{cells[0]:>20}{cells[1]:>20}")
    lines.append(f"{'rules written':24}{figures['iptables']['rules']:>20}{figures['nftables']['rules']:>20}")
    verdicts = []
    for backend, data in figures.items():
        sync_ms = statistics.median(data["ms"]["apply, sync in process"])
        tx_ms = statistics.median(data["ms"]["apply, transaction"])
        verdicts.append((f"{backend}: apply as kube-proxy syncs, {sync_ms:.0f} ms (its transaction {tx_ms:.0f} ms)"
                         f" < {FLOOR_MS} ms", sync_ms < FLOOR_MS))
        verdicts.append((f"{backend}: unchanged re-apply changes nothing", not any(data["unchanged_changed"])))
        verdicts.append((f"{backend}: one endpoint changed writes only its service, planned alone ({data['one_sync']} "
                         f"sync): {data['one_actions'][0]}", data["one_sync"] == "partial"))
    lines.append("")
    lines += [("ok    " if good else "FAIL  ") + text for text, good in verdicts]
    return "\n".join(lines), all(good for _, good in verdicts)


def report_large(large: dict, small: dict, count: int, base: int) -> tuple:
    """Issue 25's floors at `count` services (one round), against the run at `base`."""
    lines = ["", f"{count} services x 2 endpoints, one round ({REPEAT} applies and transactions alone, {REPEAT} unchanged "
             f"runs and {2 * REPEAT} one-endpoint changes in it), median, in ms", f"{'':24}{'iptables':>20}{'nftables':>20}"]
    for row in large["iptables"]["ms"]:
        lines.append(f"{row:24}" + "".join(f"{statistics.median(large[b]['ms'][row]):>20.0f}" for b in ("iptables", "nftables")))
    verdicts = []
    for backend, data in large.items():
        ms = {row: statistics.median(values) for row, values in data["ms"].items()}
        for row, floor in LARGE_FLOORS.items():
            verdicts.append((f"{backend}: {row} at {count}, {ms[row]:.0f} ms <= {floor} ms", ms[row] <= floor))
        ratio = ms["apply"] / ms["apply, transaction"]
        verdicts.append((f"{backend}: apply at {count} / its transaction alone, {ms['apply']:.0f} / "
                         f"{ms['apply, transaction']:.0f} ms = {ratio:.2f} <= {TOOL_RATIO}", ratio <= TOOL_RATIO))
        growth = ms["apply"] / statistics.median(small[backend]["ms"]["apply"])
        verdicts.append((f"{backend}: apply at {count} / at {base} = {growth:.1f} <= {GROWTH}", growth <= GROWTH))
        verdicts.append((f"{backend}: unchanged at {count} changes nothing", not any(data["unchanged_changed"])))
        verdicts.append((f"{backend}: one endpoint at {count} planned alone ({data['one_sync']} sync)",
                         data["one_sync"] == "partial"))
        first, last = data["connect_us"]["first"], data["connect_us"]["last"]
        verdicts.append((f"{backend}: connect to the last service / the first, {last} / {first} µs = {last / first:.2f}"
                         + (f" <= {CONNECT_RATIO}" if backend == "nftables" else " (reported)"),
                         backend != "nftables" or last / first <= CONNECT_RATIO))
    lines.append("")
    lines += [("ok    " if good else "FAIL  ") + text for text, good in verdicts]
    return "\n".join(lines), all(good for _, good in verdicts)


def report_ansible(seconds: dict, large: dict, count: int) -> str:
    own = {backend: statistics.median(large[backend]["ms"]["unchanged"]) for backend in large}
    return (f"\nthrough Ansible, {count} services (site.yml --tags services, iptables, one worker): first run "
            f"{seconds['first']:.1f} s, unchanged {statistics.median(seconds['unchanged']):.1f} s (runs "
            f"{', '.join(f'{value:.1f}' for value in seconds['unchanged'])}); the module's own unchanged run "
            f"{own['iptables']:.0f} ms (reported)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--large", type=int, default=10000, help="services of the one-round run at scale (0: none)")
    parser.add_argument("--ansible", type=int, default=2, help="unchanged site.yml runs with the --large services (0: none)")
    parser.add_argument("--json", default=str(ROOT / "build/bench-services.json"))
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--large-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(inside(args.services, args.rounds, args.large_run)))
        return 0
    if os.geteuid() != 0:
        sys.exit("bench: must run as root (it builds a lab of namespaces)")
    state = Path(f"/run/handcni-lab-bench-services-{uuid.uuid4().hex[:8]}")
    env = dict(os.environ, HANDCNI_LAB_STATE=str(state))
    with tempfile.TemporaryDirectory() as workdir:
        inventory = Path(workdir) / "hosts.yml"
        inventory.write_text(INVENTORY)
        lab = [str(ROOT / "bin/lab")]
        try:
            subprocess.run(lab + ["up", "-i", str(inventory)], env=env, check=True, capture_output=True)
            info = machine()
            runs = [(args.services, args.rounds)] + ([(args.large, 1)] if args.large else [])
            results = []
            for count, rounds in runs:
                large = ["--large-run"] if count == args.large else []
                done = subprocess.run(lab + ["exec", "worker1", "--", sys.executable, str(Path(__file__).resolve()),
                                             "--inside", "--services", str(count), "--rounds", str(rounds)] + large,
                                      env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    sys.exit(f"bench failed: {done.stderr[-2000:]}")
                results.append(json.loads(done.stdout))
            ansible = through_ansible(env, inventory, args.large, args.ansible) if args.large and args.ansible else None
        finally:
            subprocess.run(lab + ["down"], env=env, check=False, capture_output=True)
    figures = results[0]
    text, good = report(figures, info, args.services)
    if args.large:
        more, large_good = report_large(results[1], figures, args.large, args.services)
        text, good = text + "\n" + more, good and large_good
    if ansible:
        text += "\n" + report_ansible(ansible, results[1], args.large)
    print(text)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"machine": info, "services": args.services, "figures": figures,
                                           "large": {"services": args.large, "figures": results[1]} if args.large else None,
                                           "through_ansible": ansible},
                                          indent=1))
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
