# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPAM and topology helpers: derive each node's wiring from the inventory once."""
from __future__ import annotations

import hashlib
import ipaddress

from ansible.errors import AnsibleFilterError

FILTERS = ("pod_gateway", "veth_name", "node_pod_cidr", "pod_wiring")


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


class FilterModule:
    def filters(self):
        return {name: globals()[name] for name in FILTERS}
