"""Benchmark: how long a node's own managers take the pod network down before the node-side restore has put
it back (issue 24), and what the restore's watcher costs on an idle node.

  .venv/bin/python bench/restore.py [--runs 3]

Not a test: it measures, reports and checks the floors. On a throwaway machines lab (inventories/machines,
its own HANDCNI_LAB_STATE; the workers are Debian 12 machines reached over SSH), site.yml converges once;
then systemd-networkd is set to manage the first worker's uplink and each fault runs on that worker: a
networkd restart, the uplink down and up, `nft flush ruleset`, `systemctl restart nftables` with Debian's
/etc/nftables.conf, then (with Debian's firewalld installed and site.yml run again, as a user would)
`firewall-cmd --reload`, and a reboot. The window runs from the fault until traffic is whole again, probed from a
pod of that worker every 0.1 s: a pod on another worker answers a ping, and a service's cluster IP answers
curl (ClusterIP, endpoints on two nodes); for the reboot, from the moment sshd answers again until the
probe passes and the watcher has said it restored everything. verify.yml
then passes every cell once per fault (not timed). The watcher's cost is the CPU time its cgroup used over
60 idle seconds. Floors: every window <= 10 s (the reboot <= 30 s), the watcher < 1 % of one CPU.
Writes build/bench/restore.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pods import load, machine, report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = "inventories/machines"
FLOOR_S, REBOOT_FLOOR_S, CPU_FLOOR = 10.0, 30.0, 1.0
UNIT = "handcni-podnet-restore.service"
FAULTS = {
    "networkd_restart": "systemctl restart systemd-networkd",
    "uplink_down_up": "ip link set {nic} down && sleep 0.5 && ip link set {nic} up",
    "nft_flush_ruleset": "nft flush ruleset",
    "nftables_restart": "systemctl restart nftables",
}


class Lab:
    def __init__(self, state: str):
        self.env = dict(os.environ, HANDCNI_LAB_STATE=state, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(list(argv), cwd=ROOT, env=self.env, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv[:3])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done

    def sh(self, node: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(str(ROOT / "bin/machines"), "exec", node, "--", "sh", "-c", command, check=check)

    def playbook(self, name: str, after: str = "", node: str = "") -> None:
        """Run a playbook; when it fails after a fault, say which, with what the node's watcher logged."""
        done = self.run(str(ROOT / ".venv/bin/ansible-playbook"), "-i", INVENTORY, f"playbooks/{name}", check=False)
        if done.returncode != 0:
            journal = self.sh(node, f"journalctl -u {UNIT} -n 40 -o cat --no-pager", check=False).stdout if node else ""
            raise SystemExit(f"bench: {name} failed after {after or 'the first converge'}:\n{done.stdout[-3000:]}"
                             f"\n{node}'s watcher said:\n{journal}")


def probe_command(hostvars: dict, node: str, other: str) -> str:
    """From the node's first pod: a pod of another worker answers a ping, a service's cluster IP answers curl."""
    pod = hostvars[node]["podnet_pods"][0]["name"]
    target = hostvars[other]["podnet_pods"][0]["ip"]
    service = next(s for s in hostvars[node].get("podnet_services", []) if s.get("protocol", "tcp") == "tcp")
    return (f"ip netns exec {pod} ping -c 1 -W 1 {target} >/dev/null && "
            f"ip netns exec {pod} curl -s -o /dev/null -m 1 http://{service['cluster_ip']}:{service['port']}/")


def until_whole(lab: Lab, node: str, probe: str, limit: float) -> float:
    """Seconds until the probe passes (limit + 1 if it never does within limit)."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if lab.sh(node, probe, check=False).returncode == 0:
            return time.monotonic() - start
        time.sleep(0.1)
    return limit + 1


def fault_window(lab: Lab, node: str, command: str, probe: str) -> float:
    if lab.sh(node, probe, check=False).returncode != 0:
        raise SystemExit(f"bench: {node} does not pass the probe before the fault")
    start = time.monotonic()
    lab.sh(node, command)
    waited = until_whole(lab, node, probe, FLOOR_S * 3)
    return round(time.monotonic() - start if waited <= FLOOR_S * 3 else waited, 2)


def reboot_window(lab: Lab, node: str, probe: str) -> float:
    before = lab.sh(node, "cat /proc/sys/kernel/random/boot_id").stdout
    lab.sh(node, "systemctl reboot", check=False)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        answer = lab.run(str(ROOT / "bin/machines"), "ssh", node, "--", "cat /proc/sys/kernel/random/boot_id", check=False)
        if answer.returncode == 0 and answer.stdout and answer.stdout != before:
            # the probe may pass through another node's endpoint before this node's pods are all back: the
            # watcher must also have said it restored everything since this boot
            restored = f" && journalctl -b -u {UNIT} -o cat | grep -q '^restored in'"
            return round(until_whole(lab, node, probe + restored, REBOOT_FLOOR_S * 3), 2)
        time.sleep(0.2)
    raise SystemExit(f"bench: {node} did not come back within 180s")


def watcher_cpu(lab: Lab, node: str, seconds: float = 60) -> float:
    """Percent of one CPU the watcher used over `seconds` on the idle node: its own CPU time and its
    children's (the probe commands it ran and waited for), from /proc/PID/stat, in clock ticks."""
    pid = lab.sh(node, f"systemctl show -p MainPID --value {UNIT}").stdout.strip()

    def ticks() -> int:
        fields = lab.sh(node, f"cat /proc/{pid}/stat").stdout.rsplit(")", 1)[1].split()
        return sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    hertz = int(lab.sh(node, "getconf CLK_TCK").stdout)
    first = ticks()
    time.sleep(seconds)
    return round((ticks() - first) / hertz / seconds * 100, 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lab = Lab(f"/run/handcni-lab-bench-restore-{uuid.uuid4().hex[:6]}")
    inventory = json.loads(lab.run(str(ROOT / ".venv/bin/ansible-inventory"), "-i", INVENTORY, "--list").stdout)
    hostvars, workers = inventory["_meta"]["hostvars"], inventory["workers"]["hosts"]
    node, nic = workers[0], inventory["_meta"]["hostvars"][workers[0]].get("podnet_node_interface", "eth0")
    probe = probe_command(hostvars, node, workers[1])
    result = {"machine": machine(), "node": node, "runs": args.runs, "windows_s": {}}
    try:
        lab.run(str(ROOT / "bin/lab"), "up", "-i", INVENTORY)
        lab.run(str(ROOT / "bin/machines"), "up", "-i", INVENTORY)
        lab.playbook("site.yml")
        gateway = lab.sh(node, "ip -4 route show default").stdout.split()[2]
        lab.sh(node, f"printf '[Match]\\nName={nic}\\n\\n[Network]\\nGateway={gateway}\\nKeepConfiguration=yes\\n' "
                     "> /etc/systemd/network/50-uplink.network && "
                     "systemctl enable --now systemd-networkd && "
                     "DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables >/dev/null")
        time.sleep(5)
        result["watcher_cpu_percent"] = watcher_cpu(lab, node)
        for name, command in FAULTS.items():
            result["windows_s"][name] = [fault_window(lab, node, command.format(nic=nic), probe)
                                         for _ in range(args.runs)]
            lab.playbook("verify.yml", name, node)
        lab.sh(node, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q firewalld >/dev/null")
        lab.playbook("site.yml")  # node_prep adds our zone and policies to firewalld's
        lab.playbook("verify.yml", "site.yml with firewalld", node)
        result["windows_s"]["firewalld_reload"] = [fault_window(lab, node, "firewall-cmd --reload", probe)
                                                   for _ in range(args.runs)]
        lab.playbook("verify.yml", "firewalld_reload", node)
        result["windows_s"]["reboot_after_sshd"] = [reboot_window(lab, node, probe) for _ in range(args.runs)]
        lab.playbook("verify.yml", "reboot", node)
    finally:
        lab.run(str(ROOT / "bin/machines"), "down", check=False)
        lab.run(str(ROOT / "bin/lab"), "down", check=False)
    result["load_at_end"] = load()
    result["median_s"] = {name: statistics.median(times) for name, times in result["windows_s"].items()}
    problems = [f"{name}: median {median} s > {REBOOT_FLOOR_S if name.startswith('reboot') else FLOOR_S} s"
                for name, median in result["median_s"].items()
                if median > (REBOOT_FLOOR_S if name.startswith("reboot") else FLOOR_S)]
    if result["watcher_cpu_percent"] >= CPU_FLOOR:
        problems.append(f"the watcher used {result['watcher_cpu_percent']} % of one CPU (floor < {CPU_FLOOR} %)")
    print("outage windows (median s): " + ", ".join(f"{k} {v}" for k, v in result["median_s"].items())
          + f"; watcher {result['watcher_cpu_percent']} % of one CPU")
    return report(result, problems, "restore")


if __name__ == "__main__":
    sys.exit(main())
