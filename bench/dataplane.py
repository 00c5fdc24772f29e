"""Benchmark: iperf3 pod to pod across nodes (direct routing, VXLAN, IPIP) against node to node.

  .venv/bin/python bench/dataplane.py [--methods static,vxlan,ipip] [--runs 5] [--seconds 5]
                                      [--json build/bench/dataplane.json]

Not a test: it measures and reports, and checks the floor of issue 9 (item 5): TCP throughput from a
pod on one node to a pod on another is at least 0.8 of node to node over the underlay, measured in the
same run, between the same two nodes.

Two pairs, the same for every method, both from pod worker1/netns1 and node worker1 (192.168.210.21):
  routed       to pod worker3/netns1 and node worker3 (192.168.230.23, another underlay subnet, so the
               leaf routes every underlay packet)
  same_subnet  to pod worker2/netns1 and node worker2 (192.168.210.22, the same subnet: the leaf switches)
Tunnels are converged with cross_node_encapsulation=always, so both pairs are tunnelled. Each run is
`iperf3 -c ... -t SECONDS -O 1` (one TCP stream, the first second omitted) against a one-off server
(`iperf3 -s -1`); underlay and pod runs alternate, so load that drifts during the run weighs on both;
each figure is the median of the runs (received bits/s). Five runs by default: on a 2-CPU host single
runs vary by up to 30 %, and with three a single slow run could move the median below the floor.
Before each run the script waits until the CPUs were 90 % idle over a second (at most 2 minutes; the
idle share is kept with the run).

  static, vxlan  on this machine's kernel: a lab of its own (HANDCNI_LAB_STATE, default
                 /run/handcni-lab-bench-dp), site.yml converged with -e cross_node_method=METHOD, always
                 taken down. One lab per method, so nothing of the previous method is left.
  ipip           this kernel has no ipip module, so the lab runs inside Debian's user-mode Linux kernel,
                 booted as tests/uml/run boots it (tests/uml/init as PID 1, commands through
                 tests/uml/guest.py, Ansible through the uml_netns connection), with its own output
                 directory (HANDCNI_UML_OUT, default build/bench/uml); site.yml converged as
                 tests/uml/scenario converges it (but encapsulation always, see above).
                 Underlay and pods are measured inside the same guest, so the ratio compares like with
                 like; UML's absolute figures (one virtual CPU, everything in one host process) mean little.

Evidence kept with each figure: the MTUs of the underlay NIC, the tunnel and the pod's eth0; the route
to the server pod; the tunnel device's tx packets on worker1 during the pod runs (proof that they took
the tunnel; static has none); and packets received by the server's NIC per packet sent by the client's
NIC (about 1 when the GSO super-packets arrive whole, more when something on the way segments them).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = str(ROOT / ".venv/bin/ansible-playbook")
LAB = str(ROOT / "bin/lab")
FLOOR = 0.8
# Two pairs of nodes, the same for every method, from pod worker1/netns1 and node worker1 (192.168.210.21):
#   routed       to worker3 (192.168.230.23, another underlay subnet): the leaf routes every packet
#   same_subnet  to worker2 (192.168.210.22, the same subnet): the leaf only switches
# (node, pod, node IP, pod IP) of the client, then of the server.
PAIRS = {
    "routed": (("worker1", "netns1", "192.168.210.21"), ("worker3", "netns1", "192.168.230.23", "192.168.30.1")),
    "same_subnet": (("worker1", "netns1", "192.168.210.21"), ("worker2", "netns1", "192.168.210.22", "192.168.20.1")),
}
NIC = "enp0s9"
TUNNEL = {"static": None, "vxlan": "vxlan100", "ipip": "ipip0"}
PORT = 5201
# Before each iperf3 run, wait (at most SETTLE_TIMEOUT s) until the CPUs were this idle over a second,
# so what ran before (the converge, a lab going down, the other iperf3 pair) weighs on no run.
SETTLE_IDLE = 0.9
SETTLE_TIMEOUT = 120
UML = "/usr/bin/linux.uml"
UML_STATE = "/run/handcni-lab-uml"  # inside the guest (tests/uml/init gives the agent this one)
# As tests/uml/scenario: this UML kernel has no nf_tables for iptables-nft, so no egress, services, network
# policy, CNI config, BGP. cross_node_encapsulation=always (the scenario has cross_subnet), so the same_subnet
# pair is tunnelled too.
UML_METHOD = ["-e", "cross_node_method=ipip", "-e", "cross_node_encapsulation=always",
              "-e", '{"egress_enabled": false, "services_enabled": false, "services_servers": false, '
                    '"network_policy_enabled": false}',
              "--skip-tags", "egress,services,network_policy,cni_config,bgp"]


def log(message: str) -> None:
    print(f"dataplane: {message}", flush=True)


class Host:
    """Commands in the lab's nodes on this machine."""

    def __init__(self, state: str):
        self.state = state

    def argv(self, node: str, pod: str | None, *command: str) -> list[str]:
        inner = ["ip", "netns", "exec", pod, *command] if pod else list(command)
        return ["nsenter", f"--net={self.state}/{node}.net", f"--mount={self.state}/{node}.mnt",
                f"--uts={self.state}/{node}.uts", "--", *inner]

    def run(self, node: str, pod: str | None, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(node, pod, *command), capture_output=True, text=True,
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)

    def popen(self, node: str, pod: str | None, *command: str) -> subprocess.Popen:
        return subprocess.Popen(self.argv(node, pod, *command), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL, start_new_session=True)


class Guest(Host):
    """Commands in the lab's nodes inside the UML guest, through tests/uml/guest.py."""

    def __init__(self, state: str, rpc: Path):
        super().__init__(state)
        self.rpc = rpc

    def argv(self, node: str, pod: str | None, *command: str) -> list[str]:
        # The guest.py call runs on this machine and returns when the command in the guest ends; the
        # guest's own `timeout` makes sure nothing of ours outlives a lost request in there.
        return [sys.executable, str(ROOT / "tests/uml/guest.py"), "--", "timeout", "120",
                *super().argv(node, pod, *command)]


def iperf(nodes: Host, server: tuple, client: tuple, target: str, seconds: int) -> dict:
    """One iperf3 run: a one-off server at server=(node, pod), a client at client=(node, pod) to target."""
    proc = nodes.popen(*server, "iperf3", "-s", "-1", "-B", target, "-p", str(PORT))
    try:
        deadline = time.monotonic() + 60
        while True:  # until the server listens (in UML, starting it takes seconds)
            listening = nodes.run(*server, "ss", "-Htln", f"sport = :{PORT}")
            if listening.stdout.strip():
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"iperf3 server at {server} did not start: {proc.communicate()[1]}")
            time.sleep(0.2)
        done = nodes.run(*client, "iperf3", "-c", target, "-p", str(PORT), "-t", str(seconds), "-O", "1", "-J",
                         timeout=seconds + 90)
        try:
            report = json.loads(done.stdout)
        except ValueError:
            raise RuntimeError(f"iperf3 client at {client}: rc {done.returncode}: {done.stderr or done.stdout}")
        if "error" in report:
            raise RuntimeError(f"iperf3 client at {client}: {report['error']}")
        end = report["end"]
        proc.wait(timeout=30)
        return {"gbps": end["sum_received"]["bits_per_second"] / 1e9,
                "retransmits": end["sum_sent"].get("retransmits"),
                "cpu_sender": round(end["cpu_utilization_percent"]["host_total"], 1),
                "cpu_receiver": round(end["cpu_utilization_percent"]["remote_total"], 1)}
    finally:
        if proc.poll() is None:  # ours, by PID (its session): the nsenter/iperf3 or guest.py we started
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


def counter(nodes: Host, node: str, device: str | None, name: str) -> int | None:
    if device is None:
        return None
    out = nodes.run(node, None, "cat", f"/sys/class/net/{device}/statistics/{name}")
    return int(out.stdout) if out.returncode == 0 else None


def mtu(nodes: Host, node: str, pod: str | None, device: str | None) -> int | None:
    if device is None:
        return None
    out = nodes.run(node, pod, "cat", f"/sys/class/net/{device}/mtu")
    return int(out.stdout) if out.returncode == 0 else None


def counted(nodes: Host, client: str, server: str, tunnel: str | None, run) -> tuple[dict, dict]:
    """run() with the packet counters around it: the client's NIC and tunnel (tx), the server's NIC (rx)."""
    names = (("nic_tx", client, NIC, "tx_packets"), ("tunnel_tx", client, tunnel, "tx_packets"),
             ("server_nic_rx", server, NIC, "rx_packets"))
    before = {key: counter(nodes, node, dev, name) for key, node, dev, name in names}
    result = run()
    after = {key: counter(nodes, node, dev, name) for key, node, dev, name in names}
    return result, {key: after[key] - before[key] for key in before
                    if before[key] is not None and after[key] is not None}


def cpu_idle(seconds: float = 1.0) -> float:
    """The share of every CPU's time spent idle over the next `seconds` (/proc/stat)."""
    def sample() -> tuple[int, int]:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle + iowait, all
    idle, total = sample()
    time.sleep(seconds)
    idle_after, total_after = sample()
    return (idle_after - idle) / max(total_after - total, 1)


def settle() -> float:
    """Wait until the CPUs are idle (SETTLE_IDLE), at most SETTLE_TIMEOUT s; the idle share last seen."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while (idle := cpu_idle()) < SETTLE_IDLE and time.monotonic() < deadline:
        pass
    return round(idle, 3)


def measure_pair(nodes: Host, method: str, pair: str, runs: int, seconds: int) -> dict:
    """Underlay and pod runs between one pair of nodes, alternating; medians, ratio and the evidence."""
    (client, client_pod, _client_ip), (server, server_pod, server_ip, server_pod_ip) = PAIRS[pair]
    tunnel = TUNNEL[method]
    facts = {"underlay_mtu": mtu(nodes, client, None, NIC), "tunnel_mtu": mtu(nodes, client, None, tunnel),
             "pod_mtu": mtu(nodes, client, client_pod, "eth0"),
             "route": nodes.run(client, None, "ip", "route", "get", server_pod_ip).stdout.strip().splitlines()[0]}
    log(f"{method} {pair}: {facts}")
    underlay, pods, packets = [], [], {"node": [], "pod": []}
    for index in range(runs):
        idle = settle()
        result, count = counted(nodes, client, server, tunnel,
                                lambda: iperf(nodes, (server, None), (client, None), server_ip, seconds))
        underlay.append({**result, "idle_before": idle})
        packets["node"].append(count)
        idle = settle()
        result, count = counted(nodes, client, server, tunnel, lambda: iperf(
            nodes, (server, server_pod), (client, client_pod), server_pod_ip, seconds))
        pods.append({**result, "idle_before": idle})
        packets["pod"].append(count)
        log(f"{method} {pair}: run {index + 1}/{runs}: node {client} -> node {server} {underlay[-1]['gbps']:.2f} "
            f"Gbit/s, pod {client}/{client_pod} -> pod {server}/{server_pod} {pods[-1]['gbps']:.2f} Gbit/s "
            f"(CPUs idle before: {underlay[-1]['idle_before']:.0%}, {idle:.0%})")
    pod_gbps = statistics.median(r["gbps"] for r in pods)
    node_gbps = statistics.median(r["gbps"] for r in underlay)
    ratio = pod_gbps / node_gbps

    def total(kind: str, key: str) -> int | None:
        values = [c[key] for c in packets[kind] if key in c]
        return sum(values) if values else None

    # How many packets the server's NIC received per packet (GSO super-packet) the client's NIC sent:
    # about 1 when nothing on the way segments them, about (GSO size / MTU) when something does.
    split = {kind: round(total(kind, "server_nic_rx") / total(kind, "nic_tx"), 2) if total(kind, "nic_tx") else None
             for kind in packets}
    return {"method": method, "pair": pair, "client": f"{client}/{client_pod}", "server": f"{server}/{server_pod}",
            "pod_gbps": round(pod_gbps, 3), "node_gbps": round(node_gbps, 3), "ratio": round(ratio, 3),
            "floor_ok": ratio >= FLOOR, **facts, "tunnel": tunnel,
            "tunnel_tx_packets_during_pod_runs": total("pod", "tunnel_tx") if tunnel else None,
            "server_rx_per_client_tx_packet": split, "pod_runs": pods, "node_runs": underlay,
            "packets": packets, "loadavg_after": os.getloadavg()}


def measure(nodes: Host, method: str, runs: int, seconds: int) -> list[dict]:
    return [measure_pair(nodes, method, pair, runs, seconds) for pair in PAIRS]


def converge(env: dict, extra: list[str], logfile: Path, inventories: list[str]) -> None:
    argv = [PLAYBOOK, *[a for i in inventories for a in ("-i", i)], str(ROOT / "playbooks/site.yml"), *extra]
    with open(logfile, "w") as out:
        done = subprocess.run(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        tail = "".join(logfile.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"site.yml failed (exit {done.returncode}), {logfile}:\n{tail}")


def host_method(method: str, args) -> list[dict]:
    env = {**os.environ, "HANDCNI_LAB_STATE": args.state, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_NOCOLOR": "1"}
    lab = {"env": env, "stdin": subprocess.DEVNULL}
    try:
        log(f"{method}: lab up ({args.state})")
        subprocess.run([LAB, "up"], **lab, check=True, stdout=subprocess.DEVNULL)
        start = time.monotonic()
        extra = ["-e", f"cross_node_method={method}"]
        if method == "vxlan":  # its default, said here: both pairs tunnelled
            extra += ["-e", "cross_node_encapsulation=always"]
        converge(env, extra, args.out / f"site-{method}.log",
                 [str(ROOT / "inventories/lab")])
        log(f"{method}: site.yml converged in {time.monotonic() - start:.0f}s")
        return measure(Host(args.state), method, args.runs, args.seconds)
    finally:
        subprocess.run([LAB, "down"], **lab, check=False, stdout=subprocess.DEVNULL)
        log(f"{method}: lab down")


def kill_session(sid: int) -> None:
    """SIGKILL every process of the session we started for the guest: the UML kernel leads it
    (start_new_session), and its helper processes stay in it."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def uml_method(args) -> list[dict]:
    """IPIP, inside a user-mode Linux guest booted as tests/uml/run boots it."""
    if not os.access(UML, os.X_OK):
        raise RuntimeError(f"{UML} is missing (apt-get install user-mode-linux)")
    out = args.uml_out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rpc = out / "rpc"
    env = {**os.environ, "HANDCNI_UML_RPC": str(rpc), "HANDCNI_UML_OUT": str(out),
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_CONNECTION_PLUGINS": str(ROOT / "tests/uml/connection_plugins"),
           "ANSIBLE_REMOTE_TMP": "/tmp/.ansible-uml", "ANSIBLE_NOCOLOR": "1", "HANDCNI_LAB_STATE": UML_STATE}
    os.environ["HANDCNI_UML_RPC"] = str(rpc)  # for Guest's guest.py calls
    scratch = tempfile.mkdtemp(prefix="handcni-uml-bench.", dir="/dev/shm")  # UML's memory file, on tmpfs
    guest = watchdog = None
    try:
        log(f"ipip: booting {UML} (output in {out})")
        with open(out / "console.log", "w") as console:
            guest = subprocess.Popen(
                [UML, f"mem={args.uml_mem}", "root=/dev/root",
                 "rootfstype=hostfs", "rootflags=/", "ro", f"init={ROOT / 'tests/uml/init'}", "con=null",
                 "con0=null,fd:1", f"HANDCNI_ROOT={ROOT}", f"HANDCNI_OUT={out}"],
                env={**os.environ, "TMPDIR": scratch}, stdout=console, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)  # a session of its own, stopped as one
        # A watchdog, as tests/uml/run's `timeout`: the guest dies after --uml-timeout seconds whatever happens here.
        watchdog = threading.Timer(args.uml_timeout, kill_session, (guest.pid,))
        watchdog.daemon = True
        watchdog.start()
        deadline = time.monotonic() + 120
        while not (rpc / "ready").exists():
            if guest.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the UML guest did not come up; see {out}/console.log")
            time.sleep(0.1)
        modules = (out / "progress.log").read_text()
        if "ipip" not in modules:
            raise RuntimeError(f"no ipip module in the guest: {modules}")
        log("ipip: guest up; lab up inside it")
        nodes = Guest(UML_STATE, rpc)
        up = subprocess.run([sys.executable, str(ROOT / "tests/uml/guest.py"), "--", LAB, "up"], env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        if up.returncode != 0:
            raise RuntimeError(f"lab up in the guest failed: {up.stderr}")
        start = time.monotonic()
        converge(env, UML_METHOD, out / "site-ipip.log",
                 [str(ROOT / "inventories/lab"), str(ROOT / "tests/uml/inventory")])
        log(f"ipip: site.yml converged in {time.monotonic() - start:.0f}s")
        result = measure(nodes, "ipip", args.runs, args.seconds)
        kernel = (out / "progress.log").read_text().split("kernel ")[1].split()[0]
        for entry in result:
            entry["where"] = f"user-mode Linux guest, kernel {kernel}"
        subprocess.run([sys.executable, str(ROOT / "tests/uml/guest.py"), "--", LAB, "down"], env=env,
                       capture_output=True, stdin=subprocess.DEVNULL, check=False)
        return result
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if guest is not None and guest.poll() is None:
            try:
                subprocess.run([sys.executable, str(ROOT / "tests/uml/guest.py"), "halt"],
                               env={**env, "HANDCNI_UML_COMMAND_TIMEOUT": "30"}, capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=60, check=False)
            except subprocess.TimeoutExpired:
                pass
            try:
                guest.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            kill_session(guest.pid)
            guest.wait()
        shutil.rmtree(scratch, ignore_errors=True)
        log("ipip: guest halted")


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    iperf = subprocess.run(["iperf3", "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "iperf3": iperf.strip(),
            "loadavg_start": os.getloadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="static,vxlan,ipip",
                        help="comma-separated, of static, vxlan (this kernel) and ipip (user-mode Linux)")
    parser.add_argument("--runs", type=int, default=5, help="iperf3 runs per figure (median)")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per iperf3 run")
    parser.add_argument("--json", type=Path, default=ROOT / "build/bench/dataplane.json")
    parser.add_argument("--state", default="/run/handcni-lab-bench-dp",
                        help="the lab's state directory on this machine (its own, not another lab's)")
    parser.add_argument("--uml-out", type=Path, default=ROOT / "build/bench/uml",
                        help="the UML guest's shared directory (not tests/uml/run's build/uml)")
    parser.add_argument("--uml-mem", default="1024M")
    parser.add_argument("--uml-timeout", type=int, default=1200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("dataplane: must run as root (the lab creates namespaces)")
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the lab and the guest are always taken down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("dataplane: terminated"))
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(TUNNEL)
    if unknown:
        sys.exit(f"dataplane: unknown methods {sorted(unknown)}")
    args.json, args.uml_out = args.json.resolve(), args.uml_out.resolve()  # the guest needs absolute paths
    args.out = args.json.parent
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(),
              "pairs": {name: {"client": list(c), "server": list(s)} for name, (c, s) in PAIRS.items()},
              "runs": args.runs, "seconds": args.seconds, "floor": FLOOR, "results": [], "errors": {}}
    for method in methods:
        try:
            report["results"].extend(uml_method(args) if method == "ipip" else host_method(method, args))
        except (RuntimeError, subprocess.SubprocessError, OSError) as err:
            report["errors"][method] = str(err)
            log(f"{method}: FAILED: {err}")
    report["machine"]["loadavg_end"] = os.getloadavg()
    args.json.write_text(json.dumps(report, indent=1))
    print(f"\n{'method':8} {'pair':12} {'pod Gbit/s':>10} {'node Gbit/s':>11} {'ratio':>6}  floor {FLOOR}")
    for r in report["results"]:
        tunnel = (f", {r['tunnel']} {r['tunnel_mtu']}, tx +{r['tunnel_tx_packets_during_pod_runs']}"
                  if r["tunnel"] else "")
        split = r["server_rx_per_client_tx_packet"]
        print(f"{r['method']:8} {r['pair']:12} {r['pod_gbps']:10.2f} {r['node_gbps']:11.2f} {r['ratio']:6.2f}  "
              f"{'ok' if r['floor_ok'] else 'BELOW'}  (pod MTU {r['pod_mtu']}, underlay {r['underlay_mtu']}{tunnel}"
              f"; server rx/client tx packets: node {split['node']}, pod {split['pod']})")
    for method, err in report["errors"].items():
        print(f"{method:8} FAILED: {err.splitlines()[0]}")
    m = report["machine"]
    print(f"machine: nproc {m['nproc']}, {m['cpu']}, kernel {m['kernel']}, load {m['loadavg_start']} -> "
          f"{m['loadavg_end']}; {args.json}")
    ok = not report["errors"] and all(r["floor_ok"] for r in report["results"])
    print(f"floor (pod/node >= {FLOOR}): {'holds' if ok else 'does NOT hold'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
