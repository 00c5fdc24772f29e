# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPAM and topology helpers: derive each node's wiring from the inventory once."""
from __future__ import annotations

import functools
import ipaddress

from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.module_utils import _topology as topology
from ansible_collections.handcni.podnet.plugins.module_utils import _validate as validate
from ansible_collections.handcni.podnet.plugins.module_utils import _wiring as wiring
from ansible_collections.handcni.podnet.plugins.module_utils._wiring import VETH_GATEWAY, veth_name

FILTERS = ("pod_gateway", "veth_name", "node_pod_cidr", "worker_pod_cidrs", "worker_pod_cidrs6", "cluster_cidrs", "pod_wiring",
           "node_interfaces", "sysctl_modules", "static_routes", "pod_mtu", "vtep_mac", "tunnel_address", "cross_node_plan", "holds")


def _filter(function):
    """The topology function as a filter: its ValueError, which names the field, becomes the play's error."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ValueError as err:
            raise AnsibleFilterError(str(err)) from None
    return wrapper


pod_gateway = _filter(topology.pod_gateway)
node_pod_cidr = _filter(topology.node_pod_cidr)
pod_cidr_of = _filter(topology.pod_cidr_of)
worker_pod_cidrs = _filter(topology.worker_pod_cidrs)
worker_pod_cidrs6 = _filter(topology.worker_pod_cidrs6)
cluster_cidrs = _filter(topology.cluster_cidrs)
encapsulation_overhead = _filter(topology.encapsulation_overhead)
pod_mtu = _filter(topology.pod_mtu)
vtep_mac = _filter(topology.vtep_mac)
tunnel_address = _filter(topology.tunnel_address)
pod_wiring = _filter(wiring.pod_wiring)
CROSS_NODE_METHODS = topology.CROSS_NODE_METHODS
ENCAPSULATIONS = ("always", "cross_subnet")


def node_interfaces(pods: list, mode: str = "bridge", bridge: str = "br0", gateway_style: str = "host_ip",
                    tunnels: list = ()) -> list:
    """The names of every interface the collection makes in the node's own namespace: each pod's host-side
    veth, the bridge (bridge mode), the gateway veths (routed, veth_gateway) and the tunnel devices; for the
    node's network managers to leave alone (node_prep)."""
    names = [pod.get("veth") or veth_name(pod["name"]) for pod in pods or [] if isinstance(pod, dict) and pod.get("name")]
    names += [bridge] if mode == "bridge" else list(VETH_GATEWAY) if gateway_style == "veth_gateway" else []
    return sorted(set(names) | {name for name in tunnels or [] if name})


# Sysctls that exist only once a kernel module is loaded (systemd/systemd#43362: at boot they must be
# loaded before systemd-sysctl runs, which modules-load.d does).
SYSCTL_MODULES = {"net.bridge.": "br_netfilter", "net.netfilter.nf_conntrack_": "nf_conntrack"}


def sysctl_modules(sysctls: dict) -> list:
    """The kernel modules the given sysctls need (node_prep loads them and lists them for every boot)."""
    return sorted({module for name in sysctls or {} for prefix, module in SYSCTL_MODULES.items()
                   if str(name).startswith(prefix)})


# Where each family's underlay addresses are: a node's, a leaf SVI's.
NODE_IP = {4: "podnet_node_ip", 6: "podnet_node_ip6"}
SVI_ADDRESS = {4: "address", 6: "address6"}


def _node_ip(hostvars: dict, host: str, version: int = 4):
    value = hostvars[host].get(NODE_IP[version])
    if not value:
        raise AnsibleFilterError(f"{host}: {NODE_IP[version]}: not set; IPv{version} pods across nodes need "
                                 f"the node's IPv{version} underlay address")
    return ipaddress.ip_address(value)


def _leaf_subnet(hostvars: dict, groups: dict, ip) -> ipaddress.IPv4Interface | None:
    """The leaf's interface on the subnet of `ip` (its address is that subnet's gateway), in ip's family."""
    for leaf in groups.get("leaf", []):
        for subnet in hostvars[leaf].get("podnet_leaf_subnets", []):
            if subnet.get(SVI_ADDRESS[ip.version]):
                iface = ipaddress.ip_interface(subnet[SVI_ADDRESS[ip.version]])
                if ip in iface.network:
                    return iface
    return None


def static_routes(host: str, hostvars: dict, groups: dict, node_cidrs: dict, gateway: str | None = None) -> list:
    """Seed lab 8: the routes to the other workers' pod CIDRs, for a worker or for the leaf.

    A worker reaches a worker on its own subnet directly (via that node, as in lab 6), any other
    through `gateway` (default: its cross_node_gateway, else its gateway on the leaf); the leaf
    reaches every worker's pods via that worker. `node_cidrs` maps each worker to its pod CIDR, of
    either family: IPv6 prefixes are reached over the IPv6 underlay (podnet_node_ip6, the SVIs' address6).
    """
    workers = [w for w in groups.get("workers", []) if w in node_cidrs]
    version = next((ipaddress.ip_network(c).version for c in node_cidrs.values()), 4)
    if host not in workers:  # the leaf
        return [{"dst": node_cidrs[w], "via": str(_node_ip(hostvars, w, version))} for w in workers]
    own = _node_ip(hostvars, host, version)
    subnet = _leaf_subnet(hostvars, groups, own)
    gateway = (gateway or hostvars[host].get("cross_node_gateway")) if version == 4 else None  # both IPv4
    gateway = gateway or (str(subnet.ip) if subnet else None)
    routes = []
    for peer in (w for w in workers if w != host):
        peer_ip = _node_ip(hostvars, peer, version)
        if subnet and peer_ip in subnet.network:
            routes.append({"dst": node_cidrs[peer], "via": str(peer_ip)})
        elif gateway:
            routes.append({"dst": node_cidrs[peer], "via": gateway})
        else:
            field = "cross_node_gateway" if version == 4 else "podnet_leaf_subnets"
            raise AnsibleFilterError(f"{host}: {field}: no leaf subnet holds {own}; "
                                     f"set the next hop towards the other nodes")
    return routes


# --- cross-node: seed labs 6 (IPIP), 7 (VXLAN), 8 (static) ------------------------------------
# bgp: the bgp role has the routes learned (seed lab 9); this role then makes nothing.

def cross_node_plan(host: str, hostvars: dict, groups: dict, node_cidrs: dict, settings: dict,
                    node_cidrs6: dict | None = None) -> dict:
    """What the cross_node role puts on `host` (a worker or the leaf), for the modules.

    {routes: [...], tunnels: [...] (ipip_tunnel), vxlans: [...] (vxlan_fdb), paths: {peer: how}}
    - static (lab 8): routes only; on the leaf too.
    - ipip (lab 6): one IPIP device without a remote; each tunnelled peer's pod CIDR
      `via <peer node IP> dev ipip0 onlink`, so the kernel sends the outer packet to that node.
    - vxlan (lab 7): one VXLAN device with the node's VTEP MAC; per tunnelled peer an FDB entry
      (its MAC at its node IP), a neighbour entry (its tunnel address at its MAC) and
      `<peer pod CIDR> via <peer tunnel address> dev vxlan100 onlink`.
    - encapsulation cross_subnet: peers on the node's own underlay subnet are routed directly via
      their node IP (no tunnel); the others are tunnelled. `always`: every peer is tunnelled.
    `node_cidrs6` (dual stack): the workers' IPv6 prefixes, routed as well: static routes over the IPv6
    underlay; VXLAN carries them over the IPv4 one (one more neighbour entry per peer); IPIP cannot.
    `settings`: method, encapsulation, manage_leaf, gateway, ipip_device, vxlan_device, vxlan_vni,
    vxlan_port, underlay_interface, underlay_mtu.
    """
    method, encapsulation = settings.get("method", "static"), settings.get("encapsulation", "always")
    encapsulation_overhead(method)  # validates the method
    if encapsulation not in ENCAPSULATIONS:
        raise AnsibleFilterError(f"cross_node_encapsulation: {encapsulation!r} is not one of "
                                 f"{', '.join(ENCAPSULATIONS)}")
    node_cidrs6 = node_cidrs6 or {}
    if node_cidrs6 and method == "ipip":
        raise AnsibleFilterError(f"{host}: cross_node_method: ipip carries IPv4 only; with podnet_dual_stack "
                                 "use vxlan, static or bgp")
    plan: dict = {"routes": [], "tunnels": [], "vxlans": [], "paths": {}}
    workers = [w for w in groups.get("workers", []) if w in node_cidrs]
    if host not in workers:  # the leaf routes the pod CIDRs only when the workers do not tunnel
        if method == "static" and settings.get("manage_leaf", True):
            plan["routes"] = [route for cidrs in (node_cidrs, node_cidrs6) if cidrs
                              for route in static_routes(host, hostvars, groups, cidrs)]
        return plan
    if method in ("none", "bgp"):
        return plan
    if method == "static":
        plan["routes"] = static_routes(host, hostvars, groups, node_cidrs, settings.get("gateway") or None)
        if node_cidrs6:
            plan["routes"] += static_routes(host, hostvars, groups, node_cidrs6)
        plan["paths"] = {r["peer"]: r["path"] for r in _static_paths(host, hostvars, groups, workers)}
        return plan

    own_ip = hostvars[host]["podnet_node_ip"]
    subnet = _leaf_subnet(hostvars, groups, ipaddress.ip_address(own_ip))
    if encapsulation == "cross_subnet" and subnet is None:
        raise AnsibleFilterError(f"{host}: cross_node_encapsulation: cross_subnet needs the underlay subnets; "
                                 f"no leaf subnet (podnet_leaf_subnets) holds {own_ip}")
    device = settings.get(f"{method}_device") or ("ipip0" if method == "ipip" else "vxlan100")
    own_tunnel = tunnel_address(node_cidrs[host])
    prefix = ipaddress.ip_network(node_cidrs[host]).max_prefixlen
    mtu = _setting(settings, "underlay_mtu", 1500) - encapsulation_overhead(method, own_ip)
    peers = []
    for peer in (w for w in workers if w != host):
        peer_ip = hostvars[peer]["podnet_node_ip"]
        direct = encapsulation == "cross_subnet" and ipaddress.ip_address(peer_ip) in subnet.network
        if direct:
            plan["routes"].append({"dst": node_cidrs[peer], "via": peer_ip})
            if peer in node_cidrs6:
                plan["routes"].append({"dst": node_cidrs6[peer], "via": str(_node_ip(hostvars, peer, 6))})
            plan["paths"][peer] = "direct"
            continue
        plan["paths"][peer] = device
        if method == "ipip":
            plan["routes"].append({"dst": node_cidrs[peer], "via": peer_ip, "dev": device, "onlink": True})
            continue
        entry = {"mac": vtep_mac(peer_ip), "dst": peer_ip}
        for cidrs, key in ((node_cidrs, "ip"), (node_cidrs6, "ip6")):
            if peer in cidrs:
                entry[key] = tunnel_address(cidrs[peer])
                plan["routes"].append({"dst": cidrs[peer], "via": entry[key], "dev": device, "onlink": True})
        peers.append(entry)
    if method == "ipip":
        plan["tunnels"] = [{"name": device, "local": own_ip, "mtu": mtu, "addresses": [f"{own_tunnel}/{prefix}"]}]
    else:
        plan["vxlans"] = [{
            "name": device, "vni": _setting(settings, "vxlan_vni", 100), "port": _setting(settings, "vxlan_port", 4789),
            "local": own_ip, "dev": settings.get("underlay_interface") or None, "learning": False, "mtu": mtu,
            "mac": vtep_mac(own_ip), "addresses": [f"{own_tunnel}/{prefix}"], "peers": peers,
        }]
    return plan


def _setting(settings: dict, key: str, default: int) -> int:
    """A whole-number setting of the cross_node role; the default only when it is not given at all."""
    try:
        return validate.integer(settings.get(key, default), f"cross_node_{key}")
    except ValueError as err:
        raise AnsibleFilterError(str(err)) from None


def _static_paths(host: str, hostvars: dict, groups: dict, workers: list) -> list:
    own = ipaddress.ip_address(hostvars[host]["podnet_node_ip"])
    subnet = _leaf_subnet(hostvars, groups, own)
    return [{"peer": peer, "path": "direct" if subnet and ipaddress.ip_address(hostvars[peer]["podnet_node_ip"])
             in subnet.network else "routed"} for peer in workers if peer != host]


def holds(held, kind: str, name=None, record: str | None = None) -> bool:
    """Whether a node may hold something of ours of `kind` (a key of node_info's result), by `name` if
    given (or any of a list): a link's maker (a link under a provisional name may be any maker's), a route
    protocol, a path;
    or the restore record `record`, which would make it again. Without node_info's result (not run, skipped,
    failed) the answer is yes: the call must run."""
    if not isinstance(held, dict) or held.get("skipped") or held.get("failed") or kind not in held:
        return True
    if record is not None and record in held.get("restore_records", [record]):
        return True
    found = held[kind]
    if name is None:
        return bool(found)
    if kind == "links" and "provisional" in found:
        return True
    names = name if isinstance(name, list) else [name]
    return any((int(n) if kind == "route_protocols" else n) in found for n in names)


class FilterModule:
    def filters(self):
        return {name: globals()[name] for name in FILTERS}
