"""The scenario's lab as testinfra tests see it: its inventory as molecule sees it, commands and
traffic in its nodes, and playbooks run against it. Shared by every scenario's tests."""
import functools
import ipaddress
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import testinfra

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.handcni.podnet.plugins.filter.podnet import (  # noqa: E402
    pod_mtu, veth_name, worker_pod_cidrs, worker_pod_cidrs6)

HOST = testinfra.get_host("local://")


def sources() -> list:
    """The scenario's inventory (HANDCNI_INVENTORY, else the lab's) plus molecule's overrides, as the
    scenario's plays see them."""
    argv = ["-i", str(ROOT / os.environ.get("HANDCNI_INVENTORY", "inventories/lab"))]
    if os.environ.get("MOLECULE_INVENTORY_FILE"):
        argv += ["-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    return argv


INVENTORY = json.loads(subprocess.run([str(ROOT / ".venv/bin/ansible-inventory"), *sources(), "--list"],
                                      check=True, capture_output=True, text=True).stdout)
HOSTVARS = INVENTORY["_meta"]["hostvars"]
WORKERS = INVENTORY["workers"]["hosts"]


LEAF = INVENTORY.get("leaf", {}).get("hosts", [None])[0]
OUTSIDE = INVENTORY.get("external", {}).get("hosts", [None])[0]
# Every worker's pod CIDR, given or split from podnet_cluster_cidr, as the roles compute it.
POD_CIDRS = worker_pod_cidrs(HOSTVARS, WORKERS)
POD_CIDRS6 = worker_pod_cidrs6(HOSTVARS, WORKERS)  # dual stack: every worker's IPv6 prefix (none: IPv4 only)
# The leaf's underlay subnets and its address on each ({network: address}).
SUBNETS = {iface.network: str(iface.ip) for iface in (ipaddress.ip_interface(s["address"])
                                                      for s in HOSTVARS.get(LEAF, {}).get("podnet_leaf_subnets", []))}


def subnet_of(node: str):
    """The underlay subnet a node's address is on (None when no leaf subnet holds it)."""
    ip = ipaddress.ip_address(HOSTVARS[node]["podnet_node_ip"])
    return next((net for net in SUBNETS if ip in net), None)


@functools.lru_cache(maxsize=None)
def pod_addresses(node: str, version: int = 4) -> dict:
    """{pod: address} of one family as the node holds them: its IPAM records, one file per pod CIDR
    (addresses given or allocated)."""
    out = run_in(node, "sh", "-c", "for f in /var/lib/handcni/ipam/*.json; do [ -e \"$f\" ] && cat \"$f\"; "
                                   "echo; echo '<>'; done").stdout
    for text in filter(str.strip, out.split("<>")):
        record = json.loads(text)
        if ipaddress.ip_network(record["cidr"]).version == version:
            return record.get("pods", {})
    return {}


def enter(node: str) -> list:
    """The command entering a node of the scenario's lab (through HANDCNI_LAB_STATE): the machine
    booted in it (bin/machines), else the namespace node itself (bin/lab)."""
    state = Path(os.environ.get("HANDCNI_LAB_STATE", "/run/handcni-lab"))
    tool = "machines" if (state / "machines" / node).is_dir() else "lab"
    return [str(ROOT / "bin" / tool), "exec", node, "--"]


def run_in(node: str, *argv: str):
    """Run argv inside a lab node."""
    return HOST.run(shlex.join([*enter(node), *argv]))


class Node:
    """A lab node (bin/lab exec, in the scenario's lab through HANDCNI_LAB_STATE)."""

    def __init__(self, name: str):
        self.name = name
        self.vars = HOSTVARS[name]
        self.network = ipaddress.ip_network(POD_CIDRS[name])
        self.gateway = str(self.network.broadcast_address - 1)
        self.network6 = ipaddress.ip_network(POD_CIDRS6[name]) if name in POD_CIDRS6 else None
        self.method = self.vars.get("cross_node_method", "static")
        # The pod MTU as pod_network derives it: the underlay MTU less the cross-node encapsulation.
        self.mtu = int(self.vars.get("pod_network_mtu") or pod_mtu(self.vars.get("podnet_node_mtu", 1500), self.method,
                                                                    self.vars.get("podnet_node_ip")))
        self.mode = self.vars.get("pod_network_mode", "bridge")
        self.style = self.vars.get("pod_network_gateway_style", "host_ip")

    @property
    def pods(self) -> list:
        """The node's pods [{name, ip, ip6?, veth}], with the addresses they hold (given or allocated)."""
        held, held6 = pod_addresses(self.name), pod_addresses(self.name, 6)
        return [{"name": p["name"], "ip": held.get(p["name"], p.get("ip")), "veth": p.get("veth") or veth_name(p["name"]),
                 **({"ip6": held6[p["name"]]} if p["name"] in held6 else {})}
                for p in self.vars["podnet_pods"]]

    def run(self, *argv: str):
        return run_in(self.name, *argv)

    def in_pod(self, pod: str, *argv: str):
        return self.run("ip", "netns", "exec", pod, *argv)

    def ping(self, pod: str, target: str, size: int | None = None):
        extra = ["-M", "do", "-s", str(size)] if size is not None else []
        return self.in_pod(pod, "ping", "-c1", "-W2", "-n", *extra, target)

    def stdin(self, argv: list, data: str) -> subprocess.CompletedProcess:
        """Run argv in the node with data on its stdin."""
        return subprocess.run([*enter(self.name), *argv],
                              input=data, capture_output=True, text=True)


def playbook(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), *sources(), str(ROOT / "playbooks" / name),
                           *args], cwd=ROOT, env=env, capture_output=True, text=True)


SNAPSHOT = ("ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1; "
            "ip -o addr | awk '{print $2, $3, $4}' | grep -v ' fe80:'; "
            "ip route show table all | grep -Ev '^(local|broadcast|multicast|anycast) |fe80::|ff00::'; "
            "grep -H . /proc/sys/net/ipv4/conf/*/proxy_arp /proc/sys/net/ipv6/conf/*/proxy_ndp; ip -6 neigh show proxy; "
            "ip netns list; "
            "iptables-save | grep -v '^[#:]'; nft list ruleset | sed -E 's/counter packets [0-9]+ bytes [0-9]+//'")


def snapshot(nodes) -> dict:
    """What each node's network looks like, by name and in a stable order: links, global addresses,
    routes, proxy ARP and NDP, pod namespaces and firewall rules. Ifindexes, packet counters and kernel-made
    IPv6 link-local and multicast entries are left out: they change with traffic or when a link is
    made again."""
    return {n: sorted(run_in(n, "sh", "-c", SNAPSHOT).stdout.splitlines()) for n in nodes}


# Everything of a node that converge may change and teardown must put back: SNAPSHOT, plus permanent
# neighbour and FDB entries (not the multicast ones the kernel keeps for the groups a link joins, e.g. IPv6's
# solicited-node groups, which come and go with DAD and forwarding), forwarding (both families), the daemons running in the node, and our files (with digests).
# Daemons by name, not by count (a machine's sshd forks one per login). Not ours: `nc`, the machines
# lab's SSH ProxyCommand in the leaf, and /run/netns itself, iproute2's directory, made by the first
# `ip netns add` on a node (the pods' namespaces in it are listed).
NODE_STATE = SNAPSHOT + (
    "; ip neigh show nud permanent; bridge fdb show | grep -v -e ' master ' -e '^33:33:' -e '^01:00:5e:'; "
    "sysctl net.ipv4.ip_forward net.ipv6.conf.all.forwarding; "
    "me=$(readlink /proc/self/ns/net); for p in /proc/[0-9]*; do "
    "[ \"$(readlink $p/ns/net 2>/dev/null)\" = \"$me\" ] && cat $p/comm 2>/dev/null; done | grep -Evx 'sh|cat|readlink|grep|nc|sort' | sort -u; "
    "find /etc/bird /etc/frr /etc/cni /var/lib/handcni /var/lib/cni /run/bird /run/frr /run/netns /run/handcni /run/handcni-* "
    "/etc/systemd/network /etc/systemd/networkd.conf.d /etc/NetworkManager/conf.d /etc/firewalld /usr/local/lib/handcni-podnet "
    "/etc/systemd/system/handcni-podnet-restore.service "
    "-xdev \\( -type f -exec md5sum {} + \\) -o ! -path /run/netns -print 2>/dev/null")
STATE_FILE = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "before-converge.json"


def node_state() -> dict:
    """NODE_STATE of every node of the lab, by node, in a stable order."""
    return {n: sorted(run_in(n, "sh", "-c", NODE_STATE).stdout.splitlines()) for n in sorted(HOSTVARS)}


def differences_from_before_converge() -> dict:
    """{node: {"gone": [...], "left": [...]}} for each node whose state is not the one recorded before converge."""
    before, now = json.loads(STATE_FILE.read_text()), node_state()
    return {n: {"gone": sorted(set(before[n]) - set(now[n])), "left": sorted(set(now[n]) - set(before[n]))}
            for n in before if before[n] != now.get(n)}


def failures(output: str) -> str:
    """What a failed ansible-playbook run says: its `fatal:` lines with what follows each, then its end."""
    lines = output.splitlines()
    fatal = [" ".join(lines[i:i + 30]) for i, line in enumerate(lines) if line.startswith("fatal:")]
    return "\n".join(fatal + [output[-2000:]])


def verify_every_cell() -> None:
    """verify.yml passes: every cell of the matrix answered as it should."""
    run = playbook("verify.yml")
    assert run.returncode == 0, failures(run.stdout)
    assert "cells passed" in run.stdout


def recap(output: str) -> dict:
    """{host: changed count} from an ansible-playbook recap."""
    counts = {}
    for line in output.splitlines():
        host, sep, stats = line.partition(" : ")
        if sep and "changed=" in stats:
            counts[host.strip()] = int(stats.split("changed=")[1].split()[0])
    return counts


if __name__ == "__main__":  # molecule/shared/prepare.yml: record every node's state before converge
    STATE_FILE.write_text(json.dumps(node_state(), indent=1))
