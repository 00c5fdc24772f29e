# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPAM and topology helpers: derive each node's wiring from the inventory once."""
from __future__ import annotations

import hashlib
import ipaddress

from ansible.errors import AnsibleFilterError

FILTERS = ("pod_gateway", "veth_name", "node_pod_cidr", "worker_pod_cidrs", "pod_wiring", "static_routes")


def pod_gateway(cidr: str) -> str:
    """The pods' gateway on a node: the last usable address of its pod CIDR (seed: .254)."""
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as err:
        raise AnsibleFilterError(f"podnet_pod_cidr: {cidr!r} is not a valid network: {err}") from None
    if network.num_addresses < 4:
        raise AnsibleFilterError(f"podnet_pod_cidr: {cidr} is too small for pods and a gateway")
    return str(network.broadcast_address - 1)


def gateway_mac(gateway: str) -> str:
    """A stable, locally administered MAC for the pods' gateway: 0a:58 and the address's last 4 bytes."""
    return "0a:58:" + ":".join(f"{byte:02x}" for byte in ipaddress.ip_address(gateway).packed[-4:])


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
        entry = {"name": veth, "peer": "eth0", "peer_netns": pod["name"], "mtu": mtu}
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
    bridges = [{"name": bridge, "mtu": mtu, "mac": gateway_mac(gateway),
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


def static_routes(host: str, hostvars: dict, groups: dict, node_cidrs: dict) -> list:
    """Seed lab 8: the routes to the other workers' pod CIDRs, for a worker or for the leaf.

    A worker reaches a worker on its own subnet directly (via that node, as in lab 6), any other
    through its gateway on the leaf; the leaf reaches every worker's pods via that worker.
    `node_cidrs` maps each worker to its pod CIDR.
    """
    workers = [w for w in groups.get("workers", []) if w in node_cidrs]
    if host not in workers:  # the leaf
        return [{"dst": node_cidrs[w], "via": hostvars[w]["podnet_node_ip"]} for w in workers]
    own = ipaddress.ip_address(hostvars[host]["podnet_node_ip"])
    subnet = _leaf_subnet(hostvars, groups, own)
    gateway = hostvars[host].get("cross_node_gateway") or (str(subnet.ip) if subnet else None)
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


class FilterModule:
    def filters(self):
        return {name: globals()[name] for name in FILTERS}
