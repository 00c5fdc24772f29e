# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BGP design of the cluster (seed 004 lab 9): who peers with whom, with which AS, and which prefixes
each side may announce and learn. One function, from the inventory, for nodes and leaf alike."""
from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.module_utils._services import announced, prefix_limit_problem

AS_MODES = ("per_node", "single")


def peer_name(host: str) -> str:
    """An inventory name as a BGP neighbour name (BIRD protocol, FRR prefix-list): letters, digits, '_'."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", host)[:32]
    return name if re.match(r"^[A-Za-z_]", name) else ("n_" + name)[:32]


def _leaf_interfaces(hostvars: dict, leaf: str) -> list:
    try:
        return [ipaddress.ip_interface(s["address"]) for s in hostvars[leaf].get("podnet_leaf_subnets", [])]
    except (KeyError, TypeError, ValueError) as err:
        raise AnsibleFilterError(f"{leaf}: podnet_leaf_subnets: {err}") from None


def _node_as(host: str, hostvars: dict, workers: list, settings: dict) -> int:
    if settings["as_mode"] == "single":
        return int(settings["leaf_as"])
    own = hostvars[host].get("bgp_as")
    if own not in (None, ""):
        return int(own)
    return int(settings["node_as_base"]) + workers.index(host) + 1


def _password(host: str, hostvars: dict, settings: dict):
    """The session's password: the node's own `bgp_password` if the inventory sets one, else the cluster's."""
    own = hostvars[host].get("bgp_password")
    return own if own not in (None, "") else (settings.get("password") or None)


def _cluster_rules(cluster_cidrs: list, node_cidrs: dict) -> list:
    """Pod CIDRs inside the cluster range: each cluster CIDR, down to the longest node CIDR inside it."""
    rules = []
    for cidr in cluster_cidrs:
        try:
            cluster = ipaddress.ip_network(cidr, strict=True)
        except ValueError as err:
            raise AnsibleFilterError(f"bgp_cluster_cidrs: {cidr!r} is not a valid network: {err}") from None
        inside = [ipaddress.ip_network(c).prefixlen for c in node_cidrs.values()
                  if ipaddress.ip_network(c).subnet_of(cluster)]
        longest = max(inside, default=cluster.prefixlen)
        rules.append({"prefix": str(cluster), "ge": cluster.prefixlen, "le": longest})
    return rules


def _timers(settings: dict) -> dict:
    return {key: settings.get(key) for key in ("hold_time", "keepalive_time", "connect_retry_time")}


def bgp_speaker(host: str, hostvars: dict, groups: dict, node_cidrs: dict, settings: dict) -> dict:
    """The bird_bgp/frr_bgp parameters of one host: router_id, local_as, networks, neighbors.

    A worker originates its pod CIDR and peers with the leaf that routes its subnet (at the leaf's
    address there); it announces exactly its pod CIDR and learns only pod CIDRs inside the cluster
    range, never its own. The leaf peers with every worker on its subnets, learns from each exactly
    that worker's pod CIDR and announces to each the cluster's pod CIDRs but its own. With
    settings["advertise_services"] each worker also announces the service addresses (`announced`), the leaf
    accepts exactly those from it and installs them over every announcing node (ECMP). With
    as_mode=per_node every worker has its own AS (eBGP, as in the seed: worker2 65002, leaf 65000);
    with single, all share the leaf's AS and the leaf reflects the routes (iBGP, next hop the leaf).
    """
    if settings.get("as_mode") not in AS_MODES:
        raise AnsibleFilterError(f"bgp_as_mode: {settings.get('as_mode')!r} is not one of {', '.join(AS_MODES)}")
    workers = [w for w in groups.get("workers", []) if w in node_cidrs]
    leaves = groups.get("leaf", [])
    rules = _cluster_rules(settings["cluster_cidrs"], node_cidrs)
    limit = int(settings.get("prefix_limit") or 0)
    graceful = bool(settings.get("graceful_restart", True))
    common = dict(_timers(settings), graceful_restart=graceful)
    bfd = settings.get("bfd") or None
    leaf_as = int(settings["leaf_as"])
    services = announced(settings.get("services") or [], workers, settings.get("service_cidr") or None) \
        if settings.get("advertise_services") else {worker: [] for worker in workers}
    for worker, prefixes in services.items():
        problem = prefix_limit_problem(len(prefixes) + 1, limit)
        if problem:
            raise AnsibleFilterError(f"{worker}: {problem}")
    if host in workers:
        own_ip = ipaddress.ip_address(hostvars[host]["podnet_node_ip"])
        own = node_cidrs[host]
        local_as = _node_as(host, hostvars, workers, settings)
        neighbors = []
        for leaf in leaves:
            for iface in _leaf_interfaces(hostvars, leaf):
                if own_ip in iface.network:
                    neighbors.append(dict(
                        common, name=peer_name(leaf), address=str(iface.ip), remote_as=leaf_as,
                        source_address=str(own_ip), password=_password(host, hostvars, settings),
                        description=leaf, import_limit=limit,
                        import_prefixes=[{"prefix": own, "action": "deny"}] + rules,
                        export_prefixes=[{"prefix": prefix} for prefix in [own] + services[host]],
                        # a node keeps what a restarting leaf taught it, and BFD does not undo that
                        bfd=dict(bfd, graceful=graceful) if bfd else None))
                    break
        if not neighbors:
            raise AnsibleFilterError(f"{host}: podnet_node_ip {own_ip} is on none of the leaf's podnet_leaf_subnets; "
                                     "there is no leaf to peer with")
        return {"router_id": str(own_ip), "local_as": local_as, "networks": [own] + services[host],
                "neighbors": neighbors}
    if host in leaves:
        interfaces = _leaf_interfaces(hostvars, host)
        if not interfaces:
            raise AnsibleFilterError(f"{host}: podnet_leaf_subnets is empty; the leaf has no address to peer from")
        router_id = hostvars[host].get("bgp_router_id") or str(interfaces[0].ip)
        single = settings["as_mode"] == "single"
        neighbors = []
        for worker in workers:
            ip = ipaddress.ip_address(hostvars[worker]["podnet_node_ip"])
            iface = next((i for i in interfaces if ip in i.network), None)
            if iface is None:
                continue
            cidr = node_cidrs[worker]
            neighbors.append(dict(
                common, name=peer_name(worker), address=str(ip), remote_as=_node_as(worker, hostvars, workers, settings),
                source_address=str(iface.ip), password=_password(worker, hostvars, settings), description=worker,
                import_limit=limit, import_prefixes=[{"prefix": prefix} for prefix in [cidr] + services[worker]],
                export_prefixes=[{"prefix": cidr, "action": "deny"}] + rules,
                route_reflector_client=single, next_hop_self=single,
                # the leaf withdraws a node whose BFD fails at once: that is what BFD is for
                bfd=dict(bfd, graceful=False) if bfd else None))
        shared = any(services.values())  # one service address from several nodes: install them all (ECMP)
        return {"router_id": router_id, "local_as": leaf_as, "networks": [], "neighbors": neighbors,
                "max_paths": min(max(len(workers), 1), 64) if shared else 1}
    raise AnsibleFilterError(f"{host}: not in the workers or leaf group; it has no BGP role")


class FilterModule:
    def filters(self):
        return {"bgp_speaker": bgp_speaker}
