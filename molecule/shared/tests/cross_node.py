"""What the scenario's cross-node method should have built on the inventory's workers, written out from
the topology (not computed by the collection's cross-node filters), and how to read the kernel."""
import ipaddress
import json
import os
import subprocess
import tempfile
from pathlib import Path

import yaml

from lab import HOSTVARS, INVENTORY, LEAF, POD_CIDRS, POD_CIDRS6, ROOT, SUBNETS, WORKERS, run_in, subnet_of

FIRST = HOSTVARS[WORKERS[0]]
METHOD = FIRST.get("cross_node_method", "static")
ENCAPSULATION = FIRST.get("cross_node_encapsulation", "always")
DEVICE = {"ipip": "ipip0", "vxlan": "vxlan100"}.get(METHOD)
OVERHEAD = {"ipip": 20, "vxlan": 50}.get(METHOD, 0)
NODE_MTU = int(FIRST.get("podnet_node_mtu", 1500))
NODE_IP = {w: HOSTVARS[w]["podnet_node_ip"] for w in WORKERS}
CIDR = POD_CIDRS
UNDERLAY = {w: subnet_of(w) for w in WORKERS}
# Dual stack: the workers' IPv6 prefixes and underlay addresses, and the leaf's IPv6 address on each subnet.
NODE_IP6 = {w: HOSTVARS[w].get("podnet_node_ip6") for w in WORKERS}
SUBNETS6 = {ipaddress.ip_interface(s["address"]).network: str(ipaddress.ip_interface(s["address6"]).ip)
            for s in HOSTVARS.get(LEAF, {}).get("podnet_leaf_subnets", []) if s.get("address6")}
PROTO = "202"


def tunnelled(src: str, dst: str) -> bool:
    return DEVICE is not None and (ENCAPSULATION == "always" or UNDERLAY[src] != UNDERLAY[dst])


def vtep_mac(node_ip: str) -> str:
    """0e:00 + the node's IPv4 address, as the collection derives it (the seed: 00:00:ff:ff:20:04)."""
    return "0e:00:" + ":".join(f"{b:02x}" for b in ipaddress.ip_address(node_ip).packed)


def tunnel_ip(worker: str, version: int = 4) -> str:
    return str(ipaddress.ip_network((CIDR if version == 4 else POD_CIDRS6)[worker]).network_address)


def expected_routes(name: str) -> dict:
    """{dst: (via, dev or None)} of our routes (proto 202) on a node, of both families on a dual-stack one."""
    families = [(CIDR, NODE_IP, SUBNETS)] + ([(POD_CIDRS6, NODE_IP6, SUBNETS6)] if POD_CIDRS6 else [])
    routes = {}
    for cidrs, node_ips, leaf_ips in families:
        if name == LEAF:
            routes.update({cidrs[w]: (node_ips[w], None) for w in WORKERS} if METHOD == "static" else {})
            continue
        for peer in (w for w in WORKERS if w != name):
            if tunnelled(name, peer):
                via = NODE_IP[peer] if METHOD == "ipip" else str(ipaddress.ip_network(cidrs[peer]).network_address)
                routes[cidrs[peer]] = (via, DEVICE)
            elif UNDERLAY[name] == UNDERLAY[peer]:
                routes[cidrs[peer]] = (node_ips[peer], None)
            else:  # static across subnets: through the leaf
                routes[cidrs[peer]] = (leaf_ips[UNDERLAY[name]], None)
    return routes


def routes(name: str) -> dict:
    """{dst: (via, dev)} of the node's routes with our protocol; dev only where we name it (with a
    tunnel), else the kernel picks it."""
    out = run_in(name, "ip", "-j", "route", "show", "table", "all", "proto", PROTO).stdout
    return {r["dst"]: (r.get("gateway"), r.get("dev") if "onlink" in r.get("flags", []) else None)
            for r in json.loads(out or "[]")}


def fdb(name: str) -> dict:
    """{mac: dst} of the permanent FDB entries on our VXLAN device."""
    out = run_in(name, "bridge", "-j", "fdb", "show", "dev", DEVICE).stdout
    return {e["mac"]: e.get("dst") for e in json.loads(out or "[]") if "permanent" in e.get("state", "")}


def neighbours(name: str) -> dict:
    out = run_in(name, "ip", "-j", "neigh", "show", "dev", DEVICE, "nud", "permanent").stdout
    return {e["dst"]: e.get("lladdr") for e in json.loads(out or "[]")}


def link(name: str, device: str) -> dict:
    out = run_in(name, "ip", "-j", "-d", "link", "show", device)
    return json.loads(out.stdout)[0] if out.rc == 0 else {}


def tx_packets(name: str, device: str) -> int:
    return int(run_in(name, "cat", f"/sys/class/net/{device}/statistics/tx_packets").stdout)


def forwarded(name: str) -> int:
    """IP datagrams the node has routed (Ip: ForwDatagrams of its namespace)."""
    lines = [line.split() for line in run_in(name, "cat", "/proc/net/snmp").stdout.splitlines() if line.startswith("Ip:")]
    return int(dict(zip(lines[0], lines[1]))["ForwDatagrams"])


def inventory_without(worker: str, directory: str) -> str:
    """The scenario's inventory (lab + molecule's overrides, merged) as one file, minus one worker and the
    service endpoints on it (the inventory check refuses an endpoint on a node that does not exist)."""
    children = {}
    for group in ("workers", "leaf", "external"):
        hosts = [h for h in INVENTORY.get(group, {}).get("hosts", []) if h != worker]
        children[group] = {"hosts": {h: _without_endpoints_on(HOSTVARS[h], worker) for h in hosts}}
    path = Path(directory) / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"children": children}}))
    return str(path)


def _without_endpoints_on(hostvars: dict, worker: str) -> dict:
    services = [dict(s, endpoints=[e for e in s.get("endpoints") or [] if e.get("node") != worker])
                for s in hostvars.get("podnet_services") or []]
    return dict(hostvars, podnet_services=services) if "podnet_services" in hostvars else hostvars


def playbook_with(inventory: list, name: str, *args: str) -> subprocess.CompletedProcess:
    """A playbook on these inventory sources, its results printed as JSON (no line wrapping)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    sources = [arg for path in inventory for arg in ("-i", path)]
    return subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), *sources, str(ROOT / "playbooks" / name),
                           *args], cwd=ROOT, env=env, capture_output=True, text=True)


def matrix(output: str) -> list:
    """The rows of verify.yml's matrix in a JSON-formatted run: [status, kind, family (v4, v6), from, to, detail...]."""
    rows = []
    for line in output.splitlines():
        text = line.strip().rstrip(",")
        if text.startswith('"ok ') or text.startswith('"FAIL '):
            rows.append(json.loads(text).split())
    return rows


def scratch() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="handcni-xn-")
