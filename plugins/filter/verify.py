# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connectivity matrix of verify.yml: which probes to send, and how to report them."""
from __future__ import annotations


import re

ICMP_IP_HEADER = 28  # IPv4 header + ICMP header: payload = MTU - 28


def _ping(netns: str, target: str, size: int | None = None) -> list:
    argv = ["ip", "netns", "exec", netns, "ping", "-c1", "-W2", "-n"]
    if size is not None:
        argv += ["-M", "do", "-s", str(size)]
    return argv + [target]


def same_node_probes(pods: list, node: str, node_ip: str, mtu: int) -> list:
    """Probes from every pod of a node: to each other pod, to the node, and a DF ping at the pod MTU."""
    probes = []
    for src in pods:
        for dst in pods:
            if dst["name"] == src["name"]:
                continue
            probes.append({"kind": "same_node", "from": f"{node}/{src['name']}",
                           "to": f"{node}/{dst['name']} {dst['ip']}", "argv": _ping(src["name"], dst["ip"])})
        probes.append({"kind": "same_node", "from": f"{node}/{src['name']}", "to": f"{node} {node_ip}",
                       "argv": _ping(src["name"], node_ip)})
    if len(pods) > 1:
        src, dst = pods[0], pods[1]
        probes.append({"kind": "mtu", "from": f"{node}/{src['name']}", "to": f"{node}/{dst['name']} {dst['ip']}",
                       "argv": _ping(src["name"], dst["ip"], int(mtu) - ICMP_IP_HEADER),
                       "detail": f"DF ping at pod MTU {mtu}"})
    return probes


def cross_node_probes(pods: list, node: str, others: dict, mtu: int) -> list:
    """From every pod to every pod of the other workers ({worker: pods}), and a DF ping at the pod MTU."""
    probes = []
    for worker, peers in sorted(others.items()):
        if worker == node:
            continue
        for src in pods:
            for dst in peers:
                if dst.get("ip"):
                    probes.append({"kind": "cross_node", "from": f"{node}/{src['name']}",
                                   "to": f"{worker}/{dst['name']} {dst['ip']}", "argv": _ping(src["name"], dst["ip"])})
        if pods and peers and peers[0].get("ip"):
            probes.append({"kind": "mtu", "from": f"{node}/{pods[0]['name']}",
                           "to": f"{worker}/{peers[0]['name']} {peers[0]['ip']}",
                           "argv": _ping(pods[0]["name"], peers[0]["ip"], int(mtu) - ICMP_IP_HEADER),
                           "detail": f"DF ping at pod MTU {mtu} across nodes"})
    return probes


def egress_probes(pods: list, node: str, node_ip: str, target: str, port: int) -> list:
    """From every pod to a host outside the cluster, which answers with the source address it sees."""
    return [{"kind": "egress", "from": f"{node}/{pod['name']}", "to": f"outside {target}:{port}",
             "argv": ["ip", "netns", "exec", pod["name"], "curl", "-sS", "--max-time", "3",
                      f"http://{target}:{port}/"],
             "expect": node_ip, "detail": f"source seen outside must be the node's {node_ip}"}
            for pod in pods]


def probe_cells(results: list) -> list:
    """Registered loop results of the probes -> cells {kind, from, to, ok, detail}."""
    cells = []
    for result in results:
        probe = result["item"]
        output = (result.get("stdout") or "").strip().splitlines()
        ok = result.get("rc") == 0 and ("expect" not in probe or output == [probe["expect"]])
        if "expect" in probe and ok:
            probe = dict(probe, detail=f"seen as {output[0]} (node address)")
        rtt = RTT.search(output[-1]) if output else None
        detail = probe.get("detail") or (f"rtt {rtt.group(1)} ms" if rtt else "")
        if not ok:
            detail = " ".join(filter(None, [probe.get("detail"), (result.get("stderr") or "").strip(),
                                            output[-1] if output else "no reply"]))
        cells.append({"kind": probe["kind"], "from": probe["from"], "to": probe["to"], "ok": ok, "detail": detail})
    return cells


def verify_table(cells: list) -> str:
    """A readable table of the matrix, one line per cell."""
    header = ("", "KIND", "FROM", "TO", "DETAIL")
    rows = [("ok" if c["ok"] else "FAIL", c["kind"], c["from"], c["to"], c["detail"]) for c in cells]
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(4)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4] for r in [header] + rows]
    passed = sum(c["ok"] for c in cells)
    lines.append(f"{passed}/{len(cells)} cells passed")
    return "\n".join(lines)


RTT = re.compile(r"= [\d.]+/([\d.]+)/")


class FilterModule:
    def filters(self):
        return {
            "same_node_probes": same_node_probes,
            "egress_probes": egress_probes,
            "cross_node_probes": cross_node_probes,
            "probe_cells": probe_cells,
            "verify_table": verify_table,
        }
