# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BGP design of the cluster (seed 004 lab 9): who peers with whom, with which AS, and which prefixes
each side may announce and learn. One function, from the inventory, for nodes and leaf alike."""
from __future__ import annotations

import ipaddress
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.module_utils._lazy import lazy

_services = lazy("ansible_collections.handcni.podnet.plugins.module_utils._services")

AS_MODES = ("per_node", "single")


# Where each family's addresses are: a node's (podnet_node_ip6 with dual stack), a leaf SVI's.
NODE_IP = {4: "podnet_node_ip", 6: "podnet_node_ip6"}
SVI_ADDRESS = {4: "address", 6: "address6"}
SUFFIX = {4: "", 6: "_v6"}  # an IPv6 session's name: the peer's, then _v6 (leaf03_v6)


def peer_name(host: str, version: int = 4) -> str:
    """An inventory name as a BGP neighbour name (BIRD protocol, FRR prefix-list): letters, digits, '_';
    an IPv6 session's ends with _v6."""
    room = 32 - len(SUFFIX[version])
    name = re.sub(r"[^A-Za-z0-9_]", "_", host)[:room]
    return (name if re.match(r"^[A-Za-z_]", name) else ("n_" + name)[:room]) + SUFFIX[version]


def _leaf_interfaces(hostvars: dict, leaf: str, version: int = 4) -> list:
    key = SVI_ADDRESS[version]
    try:
        return [ipaddress.ip_interface(s[key]) for s in hostvars[leaf].get("podnet_leaf_subnets", []) if s.get(key)]
    except (KeyError, TypeError, ValueError) as err:
        raise AnsibleFilterError(f"{leaf}: podnet_leaf_subnets: {err}") from None


def _node_ip(hostvars: dict, host: str, version: int):
    """The node's address of one family: its end of that family's session."""
    value = hostvars[host].get(NODE_IP[version])
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        what = "not set" if value in (None, "") else f"{value!r} is not an IP address"
        raise AnsibleFilterError(f"{host}: {NODE_IP[version]}: {what}; the node's IPv{version} BGP session "
                                 "starts from it") from None


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


def bgp_speaker(host: str, hostvars: dict, groups: dict, node_cidrs: dict, settings: dict,
                node_cidrs6: dict | None = None) -> dict:
    """The bird_bgp/frr_bgp parameters of one host: router_id, local_as, networks, neighbors.

    A worker originates its pod CIDR and peers with the leaf that routes its subnet (at the leaf's
    address there); it announces exactly its pod CIDR and learns only pod CIDRs inside the cluster
    range, never its own. The leaf peers with every worker on its subnets, learns from each exactly
    that worker's pod CIDR and announces to each the cluster's pod CIDRs but its own. With
    settings["advertise_services"] each worker also announces the service addresses (`announced`), the leaf
    accepts exactly those from it and installs them over every announcing node (ECMP). With
    as_mode=per_node every worker has its own AS (eBGP, as in the seed: worker2 65002, leaf 65000);
    with single, all share the leaf's AS and the leaf reflects the routes (iBGP, next hop the leaf).
    `node_cidrs6` (dual stack): the workers' IPv6 pod prefixes, exchanged the same way over a second session
    per peer, between the node's podnet_node_ip6 and the leaf's address6 on its subnet (the IPv6 cluster
    range: settings["cluster_cidrs6"], else every worker's prefix). Services stay IPv4.
    """
    if settings.get("as_mode") not in AS_MODES:
        raise AnsibleFilterError(f"bgp_as_mode: {settings.get('as_mode')!r} is not one of {', '.join(AS_MODES)}")
    node_cidrs6 = node_cidrs6 or {}
    workers = [w for w in groups.get("workers", []) if w in node_cidrs]
    leaves = groups.get("leaf", [])
    families = {4: (node_cidrs, _cluster_rules(settings["cluster_cidrs"], node_cidrs))}
    if node_cidrs6:
        families[6] = (node_cidrs6, _cluster_rules(settings.get("cluster_cidrs6") or list(node_cidrs6.values()),
                                                   node_cidrs6))
    limit = int(settings.get("prefix_limit") or 0)
    graceful = bool(settings.get("graceful_restart", True))
    common = dict(_timers(settings), graceful_restart=graceful, import_limit=limit)
    bfd = settings.get("bfd") or None
    leaf_as = int(settings["leaf_as"])
    services = _services.announced(settings.get("services") or [], workers, settings.get("service_cidr") or None) \
        if settings.get("advertise_services") else {worker: [] for worker in workers}
    for worker, prefixes in services.items():
        problem = _services.prefix_limit_problem(len(prefixes) + 1, limit)
        if problem:
            raise AnsibleFilterError(f"{worker}: {problem}")
    if host in workers:
        local_as = _node_as(host, hostvars, workers, settings)
        networks, neighbors = [], []
        for version, (cidrs, rules) in families.items():
            if host not in cidrs:
                continue
            own_ip, own = _node_ip(hostvars, host, version), cidrs[host]
            extra = services[host] if version == 4 else []  # services are IPv4 only
            networks += [own] + extra
            found = next(((leaf, iface) for leaf in leaves for iface in _leaf_interfaces(hostvars, leaf, version)
                          if own_ip in iface.network), None)
            if found is None:
                where = "podnet_leaf_subnets" if version == 4 else "podnet_leaf_subnets' address6"
                raise AnsibleFilterError(f"{host}: {NODE_IP[version]} {own_ip} is on none of the leaf's {where}; "
                                         "there is no leaf to peer with")
            leaf, iface = found
            neighbors.append(dict(
                common, name=peer_name(leaf, version), address=str(iface.ip), remote_as=leaf_as,
                source_address=str(own_ip), password=_password(host, hostvars, settings), description=leaf,
                import_prefixes=[{"prefix": own, "action": "deny"}] + rules,
                export_prefixes=[{"prefix": prefix} for prefix in [own] + extra],
                # a node keeps what a restarting leaf taught it, and BFD does not undo that
                bfd=dict(bfd, graceful=graceful) if bfd else None))
        return {"router_id": str(_node_ip(hostvars, host, 4)), "local_as": local_as, "networks": networks,
                "neighbors": neighbors}
    if host in leaves:
        interfaces = _leaf_interfaces(hostvars, host)
        if not interfaces:
            raise AnsibleFilterError(f"{host}: podnet_leaf_subnets is empty; the leaf has no address to peer from")
        router_id = hostvars[host].get("bgp_router_id") or str(interfaces[0].ip)
        single = settings["as_mode"] == "single"
        neighbors = []
        for version, (cidrs, rules) in families.items():
            own = _leaf_interfaces(hostvars, host, version)
            for worker in (w for w in workers if w in cidrs):
                ip = _node_ip(hostvars, worker, version)
                iface = next((i for i in own if ip in i.network), None)
                if iface is None:
                    continue
                extra = services[worker] if version == 4 else []
                neighbors.append(dict(
                    common, name=peer_name(worker, version), address=str(ip),
                    remote_as=_node_as(worker, hostvars, workers, settings), source_address=str(iface.ip),
                    password=_password(worker, hostvars, settings), description=worker,
                    import_prefixes=[{"prefix": prefix} for prefix in [cidrs[worker]] + extra],
                    export_prefixes=[{"prefix": cidrs[worker], "action": "deny"}] + rules,
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
