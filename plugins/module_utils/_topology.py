# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's topology, computed once from the inventory. Private to this collection.

Each worker's pod CIDR (given, or its block of the cluster CIDR), the pods' gateway, the pod MTU and
what each encapsulation adds, the VTEP MACs and the tunnel addresses. Pure: a bad value raises
ValueError naming the field and the value, never falls back to a default. The filters
(plugins/filter/podnet.py) wrap these, the inventory check (_inventory.py) and the tunnel modules
import them.
"""
from __future__ import annotations

import hashlib
import ipaddress

from ansible.module_utils.parsing.convert_bool import boolean

from . import _validate as validate

# Bytes an encapsulation adds to every pod packet on the underlay: the outer IPv4 header (IPIP);
# outer IP + UDP + VXLAN header + inner Ethernet (VXLAN: 50 over IPv4, 70 over IPv6).
OVERHEAD = {"none": 0, "static": 0, "ipip": 20, "vxlan": 50, "bgp": 0}
VXLAN6_OVERHEAD = 70
CROSS_NODE_METHODS = tuple(OVERHEAD)
NODE_PREFIX = 24  # podnet_node_prefix's default
# Dual stack (podnet_dual_stack): each worker's IPv6 pod prefix is its /64 of this ULA prefix (kind's default).
CLUSTER_CIDR6 = "fd00:10:244::/56"
NODE_PREFIX6 = 64  # podnet_node_prefix6's default


def encapsulation_overhead(method: str, node_ip: str | None = None) -> int:
    if method not in OVERHEAD:
        raise ValueError(f"cross_node_method: {method!r} is not one of {', '.join(CROSS_NODE_METHODS)}")
    if method == "vxlan" and node_ip and ":" in str(node_ip):  # an IPv6 underlay
        return VXLAN6_OVERHEAD
    return OVERHEAD[method]


def pod_mtu(node_mtu, method: str = "static", node_ip: str | None = None) -> int:
    """The pods' MTU: the underlay MTU less what the cross-node encapsulation adds to each packet."""
    mtu = validate.integer(node_mtu, "podnet_node_mtu")
    result = mtu - encapsulation_overhead(method, node_ip)
    if result < validate.MTU_MIN:
        raise ValueError(f"podnet_node_mtu: {mtu} leaves no room for pods with {method} "
                         f"(pod MTU {result} < {validate.MTU_MIN})")
    return result


def _network(cidr, field: str):
    try:
        return ipaddress.ip_network(cidr, strict=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{field}: {cidr!r} is not a valid network ({err})") from None


def pod_gateway(cidr: str) -> str:
    """The pods' gateway on a node: the last usable address of an IPv4 pod CIDR (seed: .254); the first
    of an IPv6 prefix (::1, as the CNI bridge plugin and Docker pick it)."""
    field = "podnet_pod_cidr6" if ":" in str(cidr) else "podnet_pod_cidr"
    network = _network(cidr, field)
    if network.num_addresses < 4:
        raise ValueError(f"{field}: {cidr} is too small for pods and a gateway")
    return str(network.network_address + 1 if network.version == 6 else network.broadcast_address - 1)


def node_pod_cidr(cluster_cidr: str, node_prefix, index: int, cluster_field: str = "podnet_cluster_cidr",
                  prefix_field: str = "podnet_node_prefix") -> str:
    """The index-th /node_prefix block of the cluster CIDR, as kindnet and host-local split it."""
    cluster = _network(cluster_cidr, cluster_field)
    prefix = validate.integer(node_prefix, prefix_field)
    if not cluster.prefixlen <= prefix <= cluster.max_prefixlen - 2:
        raise ValueError(f"{prefix_field}: /{node_prefix} does not fit in {cluster_cidr}")
    blocks = 2 ** (prefix - cluster.prefixlen)
    if not 0 <= index < blocks:
        raise ValueError(f"{cluster_field}: {cluster_cidr} has only {blocks} /{prefix} blocks, "
                         f"node number {index + 1} needs more")
    size = 2 ** (cluster.max_prefixlen - prefix)
    return str(ipaddress.ip_network((int(cluster.network_address) + index * size, prefix)))


def pod_cidr_of(host: str, hostvars: dict, workers: list) -> str:
    """A worker's pod CIDR: podnet_pod_cidr, or its block of podnet_cluster_cidr in the workers' order."""
    hv = hostvars[host]
    try:
        if hv.get("podnet_pod_cidr"):
            return str(_network(hv["podnet_pod_cidr"], "podnet_pod_cidr"))
        if hv.get("podnet_cluster_cidr"):
            return node_pod_cidr(hv["podnet_cluster_cidr"], hv.get("podnet_node_prefix", NODE_PREFIX),
                                 list(workers).index(host))
    except ValueError as err:
        raise ValueError(f"{host}: {err}") from None
    raise ValueError(f"{host}: podnet_pod_cidr: not set, and no podnet_cluster_cidr to split")


def worker_pod_cidrs(hostvars: dict, workers: list) -> dict:
    """{worker: pod CIDR} for every worker."""
    return {host: pod_cidr_of(host, hostvars, list(workers)) for host in workers}


def dual_stack(hv: dict) -> bool:
    """Whether a host's pods get an IPv6 address beside their IPv4 one (podnet_dual_stack)."""
    try:
        return boolean(hv.get("podnet_dual_stack", False), strict=True)
    except TypeError:
        raise ValueError(f"podnet_dual_stack: {hv.get('podnet_dual_stack')!r} is not true or false") from None


def pod_cidr6_of(host: str, hostvars: dict, workers: list) -> str:
    """A worker's IPv6 pod prefix: podnet_pod_cidr6, or its block of podnet_cluster_cidr6 (default
    CLUSTER_CIDR6) in the workers' order; '' when the cluster is IPv4 only."""
    hv = hostvars[host]
    if not dual_stack(hv):
        return ""
    try:
        if hv.get("podnet_pod_cidr6"):
            cidr = _network(hv["podnet_pod_cidr6"], "podnet_pod_cidr6")
            field = "podnet_pod_cidr6"
        else:
            cidr = ipaddress.ip_network(node_pod_cidr(
                hv.get("podnet_cluster_cidr6") or CLUSTER_CIDR6, hv.get("podnet_node_prefix6", NODE_PREFIX6),
                list(workers).index(host), "podnet_cluster_cidr6", "podnet_node_prefix6"))
            field = "podnet_cluster_cidr6"
        if cidr.version != 6:
            raise ValueError(f"{field}: {cidr} is not an IPv6 prefix")
    except ValueError as err:
        raise ValueError(f"{host}: {err}") from None
    return str(cidr)


def worker_pod_cidrs6(hostvars: dict, workers: list) -> dict:
    """{worker: IPv6 pod prefix} of every dual-stack worker (none: an IPv4-only cluster)."""
    return {host: cidr for host in workers if (cidr := pod_cidr6_of(host, hostvars, list(workers)))}


def cluster_cidrs(hostvars: dict, workers: list, cluster_cidr: str | None = None) -> list:
    """The cluster's pod CIDRs: the cluster CIDR when given, else every worker's pod CIDR."""
    return [cluster_cidr] if cluster_cidr is not None else list(worker_pod_cidrs(hostvars, workers).values())


def vtep_mac(node_ip: str) -> str:
    """The node's VTEP MAC, from its underlay address alone, so a rebuilt node keeps it (and its peers'
    FDB entries stay right): 0e:00 (locally administered, unicast) + the 4 bytes of an IPv4 address,
    or 0e + 5 bytes of a hash of an IPv6 one."""
    try:
        packed = ipaddress.ip_address(node_ip).packed
    except ValueError:
        raise ValueError(f"podnet_node_ip: {node_ip!r} is not an IP address") from None
    tail = packed if len(packed) == 4 else hashlib.sha256(packed).digest()[:5]
    return ":".join(["0e"] + (["00"] if len(tail) == 4 else []) + [f"{byte:02x}" for byte in tail])


def tunnel_address(cidr: str) -> str:
    """A node's address on its tunnel device: its pod CIDR's network address, never a pod's (as flannel).
    For an IPv6 prefix it is only the next hop its peers name (their neighbour entry gives its MAC)."""
    return str(_network(cidr, "podnet_pod_cidr").network_address)
