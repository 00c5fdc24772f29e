# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPAM and topology helpers: derive each node's wiring from the inventory once."""
from __future__ import annotations

import hashlib
import ipaddress

from ansible.errors import AnsibleFilterError

FILTERS = ("pod_gateway", "veth_name", "node_pod_cidr", "worker_pod_cidrs", "pod_wiring", "static_routes",
           "pod_mtu", "vtep_mac", "tunnel_address", "cross_node_plan")


def pod_gateway(cidr: str) -> str:
    """The pods' gateway on a node: the last usable address of its pod CIDR (seed: .254)."""
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as err:
        raise AnsibleFilterError(f"podnet_pod_cidr: {cidr!r} is not a valid network: {err}") from None
    if network.num_addresses < 4:
        raise AnsibleFilterError(f"podnet_pod_cidr: {cidr} is too small for pods and a gateway")
    return str(network.broadcast_address - 1)


def address_mac(address: str) -> str:
    """A stable, locally administered MAC for an address: 0a:58 and its last 4 bytes, as the CNI bridge
    plugin gives its pods. A pod made again keeps its MAC, so its neighbours' ARP entries stay right."""
    return "0a:58:" + ":".join(f"{byte:02x}" for byte in ipaddress.ip_address(address).packed[-4:])


def veth_name(pod: str) -> str:
    """A stable host-side veth name for a pod, 15 bytes: 'veth' + 11 hex digits."""
    return "veth" + hashlib.sha1(pod.encode()).hexdigest()[:11]


MODES = ("bridge", "routed")
GATEWAY_STYLES = ("host_ip", "proxy_arp", "veth_gateway")
CALICO_GATEWAY = "169.254.1.1"  # seed lab 2, option 2: answered by proxy ARP, held by nobody
VETH_GATEWAY = ("veth-host", "veth-net")  # seed lab 2, option 3: Cilium's cilium_host/cilium_net


def node_pod_cidr(cluster_cidr: str, node_prefix: int, index: int) -> str:
    """The index-th /node_prefix block of the cluster CIDR, as kindnet and host-local split it."""
    try:
        cluster = ipaddress.ip_network(cluster_cidr, strict=True)
    except ValueError as err:
        raise AnsibleFilterError(f"podnet_cluster_cidr: {cluster_cidr!r} is not a valid network: {err}") from None
    if not cluster.prefixlen <= int(node_prefix) <= cluster.max_prefixlen - 2:
        raise AnsibleFilterError(f"podnet_node_prefix: /{node_prefix} does not fit in {cluster_cidr}")
    blocks = 2 ** (int(node_prefix) - cluster.prefixlen)
    if not 0 <= index < blocks:
        raise AnsibleFilterError(f"podnet_cluster_cidr: {cluster_cidr} has only {blocks} /{node_prefix} blocks, "
                                 f"node number {index + 1} needs more")
    size = 2 ** (cluster.max_prefixlen - int(node_prefix))
    return str(ipaddress.ip_network((int(cluster.network_address) + index * size, int(node_prefix))))


def pod_cidr_of(host: str, hostvars: dict, workers: list) -> str:
    """A worker's pod CIDR: podnet_pod_cidr, or its block of podnet_cluster_cidr in the workers' order."""
    hv = hostvars[host]
    if hv.get("podnet_pod_cidr"):
        try:
            return str(ipaddress.ip_network(hv["podnet_pod_cidr"], strict=True))
        except ValueError as err:
            raise AnsibleFilterError(f"{host}: podnet_pod_cidr: {hv['podnet_pod_cidr']!r} is not a valid network "
                                     f"({err})") from None
    if hv.get("podnet_cluster_cidr"):
        try:
            return node_pod_cidr(hv["podnet_cluster_cidr"], hv.get("podnet_node_prefix", 24), workers.index(host))
        except AnsibleFilterError as err:
            raise AnsibleFilterError(f"{host}: {err}") from None
    raise AnsibleFilterError(f"{host}: podnet_pod_cidr: not set, and no podnet_cluster_cidr to split")


def worker_pod_cidrs(hostvars: dict, workers: list) -> dict:
    """{worker: pod CIDR} for every worker."""
    return {host: pod_cidr_of(host, hostvars, list(workers)) for host in workers}


def pod_wiring(pods: list, allocation: list, cidr: str, mode: str = "bridge", gateway_style: str = "host_ip",
               bridge: str = "br0", mtu: int = 1500, hairpin: bool = True) -> dict:
    """The node's bridges, veths and host routes for its pods, ready for the modules (seed labs 1-3).

    `pods` are the inventory's pods (name, optional ip and veth), `allocation` the ipam module's
    [{name, ip}] for them.
    """
    if mode not in MODES:
        raise AnsibleFilterError(f"pod_network_mode: {mode!r} is not one of {', '.join(MODES)}")
    if mode == "routed" and gateway_style not in GATEWAY_STYLES:
        raise AnsibleFilterError(f"pod_network_gateway_style: {gateway_style!r} is not one of "
                                 f"{', '.join(GATEWAY_STYLES)}")
    gateway = pod_gateway(cidr)  # validates the CIDR
    network = ipaddress.ip_network(cidr)
    default = "default" if network.version == 4 else "::/0"
    addresses = {item["name"]: item["ip"] for item in allocation or []}
    seen: dict = {}
    veths, routes = [], []
    for index, pod in enumerate(pods or []):
        field = f"podnet_pods[{index}]"
        if not isinstance(pod, dict) or not pod.get("name"):
            raise AnsibleFilterError(f"{field}: each pod needs a 'name', got {pod!r}")
        if pod["name"] not in addresses:
            raise AnsibleFilterError(f"{field}: pod {pod['name']} has no address allocated")
        veth = pod.get("veth") or veth_name(pod["name"])
        if len(veth.encode()) > 15 or veth in VETH_GATEWAY:
            raise AnsibleFilterError(f"{field}.veth: {veth!r} is longer than 15 bytes or a reserved name")
        for key, value in (("name", pod["name"]), ("veth", veth)):
            if (key, value) in seen:
                raise AnsibleFilterError(f"{field}.{key}: {value} is also used by podnet_pods[{seen[key, value]}]")
            seen[key, value] = index
        ip = addresses[pod["name"]]
        entry = {"name": veth, "peer": "eth0", "peer_netns": pod["name"], "mtu": mtu, "peer_mac": address_mac(ip)}
        if mode == "bridge":
            entry.update(master=bridge, hairpin=hairpin, peer_addresses=[f"{ip}/{network.prefixlen}"],
                         peer_routes=[{"dst": default, "via": gateway}])
        else:
            via = CALICO_GATEWAY if gateway_style == "proxy_arp" else gateway
            entry.update(peer_addresses=[f"{ip}/{network.max_prefixlen}"],
                         peer_routes=[{"dst": default, "via": via, "onlink": True}],
                         addresses=[f"{gateway}/{network.max_prefixlen}"] if gateway_style == "host_ip" else [],
                         proxy_arp=gateway_style == "proxy_arp")
            routes.append({"dst": f"{ip}/{network.max_prefixlen}", "dev": veth})
        veths.append(entry)
    if mode == "routed" and gateway_style == "veth_gateway":
        host, net = VETH_GATEWAY
        veths.append({"name": host, "peer": net, "mtu": mtu, "addresses": [f"{gateway}/{network.max_prefixlen}"]})
    # A fixed bridge MAC: otherwise the bridge takes its lowest port MAC, and the gateway's MAC
    # changes under the pods whenever a port comes or goes.
    bridges = [{"name": bridge, "mtu": mtu, "mac": address_mac(gateway),
                "addresses": [f"{gateway}/{network.prefixlen}"]}] if mode == "bridge" else []
    return {"bridges": bridges, "veths": veths, "routes": routes}


def _leaf_subnet(hostvars: dict, groups: dict, ip) -> ipaddress.IPv4Interface | None:
    """The leaf's interface on the subnet of `ip` (its address is that subnet's gateway)."""
    for leaf in groups.get("leaf", []):
        for subnet in hostvars[leaf].get("podnet_leaf_subnets", []):
            iface = ipaddress.ip_interface(subnet["address"])
            if ip in iface.network:
                return iface
    return None


def static_routes(host: str, hostvars: dict, groups: dict, node_cidrs: dict, gateway: str | None = None) -> list:
    """Seed lab 8: the routes to the other workers' pod CIDRs, for a worker or for the leaf.

    A worker reaches a worker on its own subnet directly (via that node, as in lab 6), any other
    through `gateway` (default: its cross_node_gateway, else its gateway on the leaf); the leaf
    reaches every worker's pods via that worker. `node_cidrs` maps each worker to its pod CIDR.
    """
    workers = [w for w in groups.get("workers", []) if w in node_cidrs]
    if host not in workers:  # the leaf
        return [{"dst": node_cidrs[w], "via": hostvars[w]["podnet_node_ip"]} for w in workers]
    own = ipaddress.ip_address(hostvars[host]["podnet_node_ip"])
    subnet = _leaf_subnet(hostvars, groups, own)
    gateway = gateway or hostvars[host].get("cross_node_gateway") or (str(subnet.ip) if subnet else None)
    routes = []
    for peer in (w for w in workers if w != host):
        peer_ip = ipaddress.ip_address(hostvars[peer]["podnet_node_ip"])
        if subnet and peer_ip in subnet.network:
            routes.append({"dst": node_cidrs[peer], "via": str(peer_ip)})
        elif gateway:
            routes.append({"dst": node_cidrs[peer], "via": gateway})
        else:
            raise AnsibleFilterError(f"{host}: cross_node_gateway: no leaf subnet holds {own}; "
                                     f"set the next hop towards the other nodes")
    return routes


# --- cross-node: seed labs 6 (IPIP), 7 (VXLAN), 8 (static) ------------------------------------

# bgp: the bgp role has the routes learned (seed lab 9); this role then makes nothing.
CROSS_NODE_METHODS = ("none", "static", "ipip", "vxlan", "bgp")
ENCAPSULATIONS = ("always", "cross_subnet")
# Bytes an encapsulation adds to every pod packet on the underlay: the outer IPv4 header (IPIP);
# outer IP + UDP + VXLAN header + inner Ethernet (VXLAN: 50 over IPv4, 70 over IPv6).
OVERHEAD = {"none": 0, "static": 0, "bgp": 0, "ipip": 20, "vxlan": 50}
IP_MIN_MTU = 68


def encapsulation_overhead(method: str, node_ip: str | None = None) -> int:
    if method not in OVERHEAD:
        raise AnsibleFilterError(f"cross_node_method: {method!r} is not one of {', '.join(CROSS_NODE_METHODS)}")
    if method == "vxlan" and node_ip and ":" in str(node_ip):  # an IPv6 underlay
        return 70
    return OVERHEAD[method]


def pod_mtu(node_mtu, method: str = "static", node_ip: str | None = None) -> int:
    """The pods' MTU: the underlay MTU less what the cross-node encapsulation adds to each packet."""
    try:
        mtu = int(node_mtu)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"podnet_node_mtu: {node_mtu!r} is not a number") from None
    result = mtu - encapsulation_overhead(method, node_ip)
    if result < IP_MIN_MTU:
        raise AnsibleFilterError(f"podnet_node_mtu: {mtu} leaves no room for pods with {method} "
                                 f"(pod MTU {result} < {IP_MIN_MTU})")
    return result


def vtep_mac(node_ip: str) -> str:
    """The node's VTEP MAC, from its underlay address alone, so a rebuilt node keeps it (and its peers'
    FDB entries stay right): 0e:00 (locally administered, unicast) + the 4 bytes of an IPv4 address,
    or 0e + 5 bytes of a hash of an IPv6 one."""
    try:
        packed = ipaddress.ip_address(node_ip).packed
    except ValueError:
        raise AnsibleFilterError(f"podnet_node_ip: {node_ip!r} is not an IP address") from None
    tail = packed if len(packed) == 4 else hashlib.sha256(packed).digest()[:5]
    return ":".join(["0e"] + (["00"] if len(tail) == 4 else []) + [f"{byte:02x}" for byte in tail])


def tunnel_address(cidr: str) -> str:
    """A node's address on its tunnel device: its pod CIDR's network address, never a pod's (as flannel)."""
    try:
        return str(ipaddress.ip_network(cidr, strict=True).network_address)
    except ValueError as err:
        raise AnsibleFilterError(f"podnet_pod_cidr: {cidr!r} is not a valid network: {err}") from None


def cross_node_plan(host: str, hostvars: dict, groups: dict, node_cidrs: dict, settings: dict) -> dict:
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
    `settings`: method, encapsulation, manage_leaf, gateway, ipip_device, vxlan_device, vxlan_vni,
    vxlan_port, underlay_interface, underlay_mtu.
    """
    method, encapsulation = settings.get("method", "static"), settings.get("encapsulation", "always")
    encapsulation_overhead(method)  # validates the method
    if encapsulation not in ENCAPSULATIONS:
        raise AnsibleFilterError(f"cross_node_encapsulation: {encapsulation!r} is not one of "
                                 f"{', '.join(ENCAPSULATIONS)}")
    plan: dict = {"routes": [], "tunnels": [], "vxlans": [], "paths": {}}
    workers = [w for w in groups.get("workers", []) if w in node_cidrs]
    if host not in workers:  # the leaf routes the pod CIDRs only when the workers do not tunnel
        if method == "static" and settings.get("manage_leaf", True):
            plan["routes"] = static_routes(host, hostvars, groups, node_cidrs)
        return plan
    if method in ("none", "bgp"):
        return plan
    if method == "static":
        plan["routes"] = static_routes(host, hostvars, groups, node_cidrs, settings.get("gateway") or None)
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
    mtu = int(settings.get("underlay_mtu") or 1500) - encapsulation_overhead(method, own_ip)
    peers = []
    for peer in (w for w in workers if w != host):
        peer_ip = hostvars[peer]["podnet_node_ip"]
        direct = encapsulation == "cross_subnet" and ipaddress.ip_address(peer_ip) in subnet.network
        if direct:
            plan["routes"].append({"dst": node_cidrs[peer], "via": peer_ip})
            plan["paths"][peer] = "direct"
            continue
        plan["paths"][peer] = device
        if method == "ipip":
            plan["routes"].append({"dst": node_cidrs[peer], "via": peer_ip, "dev": device, "onlink": True})
        else:
            peer_tunnel = tunnel_address(node_cidrs[peer])
            peers.append({"mac": vtep_mac(peer_ip), "dst": peer_ip, "ip": peer_tunnel})
            plan["routes"].append({"dst": node_cidrs[peer], "via": peer_tunnel, "dev": device, "onlink": True})
    if method == "ipip":
        plan["tunnels"] = [{"name": device, "local": own_ip, "mtu": mtu, "addresses": [f"{own_tunnel}/{prefix}"]}]
    else:
        plan["vxlans"] = [{
            "name": device, "vni": int(settings.get("vxlan_vni") or 100), "port": int(settings.get("vxlan_port") or 4789),
            "local": own_ip, "dev": settings.get("underlay_interface") or None, "learning": False, "mtu": mtu,
            "mac": vtep_mac(own_ip), "addresses": [f"{own_tunnel}/{prefix}"], "peers": peers,
        }]
    return plan


def _static_paths(host: str, hostvars: dict, groups: dict, workers: list) -> list:
    own = ipaddress.ip_address(hostvars[host]["podnet_node_ip"])
    subnet = _leaf_subnet(hostvars, groups, own)
    return [{"peer": peer, "path": "direct" if subnet and ipaddress.ip_address(hostvars[peer]["podnet_node_ip"])
             in subnet.network else "routed"} for peer in workers if peer != host]


class FilterModule:
    def filters(self):
        return {name: globals()[name] for name in FILTERS}
