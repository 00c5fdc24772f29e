"""Benchmark: how long the leaf keeps routing to a node whose cable is cut, with BFD and without (issue 20).

  .venv/bin/python bench/bfd.py [--runs 5]

Not a test: it measures, reports and checks one floor. On a throwaway lab of the seed inventory
(inventories/lab, its own HANDCNI_LAB_STATE), site.yml converges BGP (FRR on the leaf, BIRD on the
workers) with the services announced (bgp_advertise_services), once without BFD (the hold time, 9 s,
detects a dead peer) and once with `bgp_bfd` (100 ms x 3). The node cut is the second endpoint node of
the first announced service with endpoints on two nodes and externalTrafficPolicy Local (the lab's
web-local: worker3), so its address stays answered by the other. Each run cuts that node's cable at the
leaf's port (`ip link set PORT down` in the leaf's namespace) and times, from a process inside the
leaf's namespace polling its kernel's table, until the leaf has withdrawn the node's pod CIDR; meanwhile
`outside` opens a new connection to the service's address every 10 ms (100 ms timeout; the leaf's
ECMP sends about one in two to the cut node) and the run notes when the last one failed. Then the cable
comes back and the run waits until the route is learned again (BIRD's protocols restarted, so that its
error wait does not grow from run to run). Floor: the median withdrawal with BFD is under one second.
Writes build/bench/bfd.json.
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
FLOOR_MS = 1000
# Runs inside the leaf's namespace: cut the port, poll the route until it is gone, put the port back.
CUT = """
import subprocess, sys, time
port, cidr, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
def held():
    return bool(subprocess.run(["ip", "route", "show", cidr], capture_output=True, text=True).stdout.strip())
start = time.monotonic()
subprocess.run(["ip", "link", "set", port, "down"], check=True)
while held() and time.monotonic() - start < limit:
    pass
took = time.monotonic() - start
subprocess.run(["ip", "link", "set", port, "up"], check=True)
print(start, round(took * 1000))
"""
# Runs inside `outside`: a new TCP connection to ADDRESS:PORT every 10 ms for SECONDS; prints the monotonic
# times at which failed attempts ended (the clock is the machine's, the same in every namespace).
ASK = """
import socket, sys, time
address, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end, failed = time.monotonic() + seconds, []
while time.monotonic() < end:
    try:
        socket.create_connection((address, port), timeout=0.1).close()
    except OSError:
        failed.append(time.monotonic())
    time.sleep(0.01)
print(" ".join(map(str, failed)))
"""


def ns(state: str, node: str, *argv: str) -> str:
    """Run argv in a lab node's network namespace."""
    return subprocess.run(["nsenter", f"--net={state}/{node}.net", *argv], check=True, capture_output=True,
                          text=True).stdout


def leaf_port(state: str, leaf: str, node: str, nic: str) -> str:
    """The leaf's end of the node's cable: the link whose index the node's NIC names as its peer."""
    peer = json.loads(ns(state, node, "ip", "-j", "link", "show", nic))[0]["link_index"]
    return next(link["ifname"] for link in json.loads(ns(state, leaf, "ip", "-j", "link"))
                if link["ifindex"] == peer)


def learned(state: str, leaf: str, cidr: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ns(state, leaf, "ip", "route", "show", cidr).strip():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: the leaf did not learn {cidr} again within {timeout:.0f}s")
        time.sleep(0.2)
    time.sleep(2)  # both ends settled (BFD up, not only the route)


def converge(env: dict, bfd: bool) -> None:
    done = subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "playbooks/site.yml", "-e", "cross_node_method=bgp",
                           "-e", "bgp_advertise_services=true", "-e", f"bgp_bfd={str(bfd).lower()}"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench: site.yml failed:\n{done.stdout[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    state = f"/run/handcni-lab-bench-bfd-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, HANDCNI_LAB_STATE=state, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    inventory = json.loads(subprocess.run([str(ROOT / ".venv/bin/ansible-inventory"), "-i", "inventories/lab", "--list"],
                                          cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    leaf, outside = inventory["leaf"]["hosts"][0], inventory["external"]["hosts"][0]
    service = next(s for s in inventory["_meta"]["hostvars"][leaf]["podnet_services"]
                   if s.get("external_traffic_policy") == "Local" and (s.get("external_ips") or s.get("load_balancer_ip"))
                   and len({e["node"] for e in s["endpoints"]}) > 1)
    node = service["endpoints"][1]["node"]
    address = (service.get("external_ips") or [service.get("load_balancer_ip")])[0]
    hostvars = inventory["_meta"]["hostvars"][node]
    cidr, nic = hostvars["podnet_pod_cidr"], hostvars["podnet_node_interface"]
    result = {"machine": machine(), "node": node, "service": f"{service['name']} {address}:{service['port']}",
              "runs": args.runs}
    try:
        subprocess.run([str(ROOT / "bin/lab"), "up"], env=env, check=True, capture_output=True)
        for label, bfd in (("hold_time", False), ("bfd", True)):
            converge(env, bfd)
            port = leaf_port(state, leaf, node, nic)
            times, outages = [], []
            for _ in range(args.runs):
                learned(state, leaf, cidr)
                asking = subprocess.Popen(["nsenter", f"--net={state}/{outside}.net", sys.executable, "-c", ASK, address,
                                           str(service["port"]), "3" if bfd else "14"], stdout=subprocess.PIPE, text=True)
                time.sleep(0.5)  # asking, and answered, before the cut
                start, took = ns(state, leaf, sys.executable, "-c", CUT, port, cidr, "60").split()
                failed = [float(t) for t in asking.communicate(timeout=60)[0].split()]
                times.append(int(took))
                outages.append(round((max(failed) - float(start)) * 1000) if failed else 0)
                # BIRD doubles its wait after each session error (5 s, 10 s, ... 300 s); a run is one error
                subprocess.run([str(ROOT / "bin/lab"), "exec", node, "--", "birdc", "restart", "all"], env=env,
                               check=True, capture_output=True)
            result[label] = {"withdrawn_ms": times, "median_ms": statistics.median(times),
                             "service_failing_ms": outages, "service_median_ms": statistics.median(outages)}
            learned(state, leaf, cidr)
    finally:
        subprocess.run([str(ROOT / "bin/lab"), "down"], env=env, check=False, capture_output=True)
    result["load_at_end"] = load()
    print(f"withdrawn by the leaf after a cut cable: hold time {result['hold_time']['median_ms']} ms "
          f"{result['hold_time']['withdrawn_ms']}, BFD 100 ms x 3 {result['bfd']['median_ms']} ms "
          f"{result['bfd']['withdrawn_ms']} (floor < {FLOOR_MS} ms)")
    print(f"outside -> {result['service']} failing after the cut: hold time {result['hold_time']['service_median_ms']} ms "
          f"{result['hold_time']['service_failing_ms']}, BFD {result['bfd']['service_median_ms']} ms "
          f"{result['bfd']['service_failing_ms']}")
    problems = [f"BFD median {result['bfd']['median_ms']} ms >= {FLOOR_MS} ms"] if result["bfd"]["median_ms"] >= FLOOR_MS else []
    return report(result, problems, "bfd")


if __name__ == "__main__":
    sys.exit(main())
