"""Inside the UML run: prove with the tunnel's packet counters that traffic is encapsulated exactly
where it should be (cross_subnet: worker1 <-> worker2 directly, worker3 through ipip0), or, with
--nothing-left, that teardown left no tunnel and no cross-node route anywhere.

Reads the lab inventory for the pods; writes /run/out/encapsulation.json; exits non-zero on a failure.
"""
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HOSTS = yaml.safe_load((ROOT / "inventories/lab/hosts.yml").read_text())["all"]["children"]
WORKERS = HOSTS["workers"]["hosts"]
LEAF = next(iter(HOSTS["leaf"]["hosts"]))
DEVICE = "ipip0"
COUNT = 5


def node(name: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin/lab"), "exec", name, "--", *argv], capture_output=True, text=True, check=False)


def tx_packets(name: str) -> int:
    return int(node(name, "cat", f"/sys/class/net/{DEVICE}/statistics/tx_packets").stdout)


def ping(name: str, pod: str, target: str) -> bool:
    return node(name, "ip", "netns", "exec", pod, "ping", "-c", str(COUNT), "-i", "0.2", "-W", "2", "-n", "-q",
                target).returncode == 0


def encapsulation() -> list:
    """From worker1's first pod to the first pod of each other worker: did ipip0 carry the pings?"""
    src = "worker1"
    pod = WORKERS[src]["podnet_pods"][0]["name"]
    cells = []
    for dst, expect in (("worker2", False), ("worker3", True)):
        target = WORKERS[dst]["podnet_pods"][0]["ip"]
        before = tx_packets(src)
        answered = ping(src, pod, target)
        sent = tx_packets(src) - before
        tunnelled = sent >= COUNT
        cells.append({"from": f"{src}/{pod}", "to": f"{dst} {target}", "answered": answered,
                      "ipip0_tx_packets": sent, "expected_tunnelled": expect,
                      "ok": answered and tunnelled == expect and (expect or sent == 0)})
    return cells


def nothing_left() -> list:
    cells = []
    for name in list(WORKERS) + [LEAF]:
        links = node(name, "ip", "-d", "-o", "link", "show").stdout
        routes = node(name, "ip", "route", "show", "table", "all", "proto", "202").stdout.strip()
        cells.append({"node": name, "ipip_devices": DEVICE in links, "routes": routes,
                      "ok": f" {DEVICE}@" not in links and routes == ""})
    return cells


def main() -> int:
    cells = nothing_left() if "--nothing-left" in sys.argv else encapsulation()
    name = "nothing-left" if "--nothing-left" in sys.argv else "encapsulation"
    Path(f"/run/out/{name}.json").write_text(json.dumps(cells, indent=1) + "\n")
    print(json.dumps(cells, indent=1))
    return 0 if all(cell["ok"] for cell in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
