# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPAM and topology helpers: derive each node's wiring from the inventory once."""
from __future__ import annotations

import hashlib
import ipaddress

from ansible.errors import AnsibleFilterError

FILTERS = ("pod_gateway", "veth_name", "pod_veths")


def pod_gateway(cidr: str) -> str:
    """The pods' gateway on a node: the last usable address of its pod CIDR (seed: .254)."""
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as err:
        raise AnsibleFilterError(f"podnet_pod_cidr: {cidr!r} is not a valid network: {err}") from None
    if network.num_addresses < 4:
        raise AnsibleFilterError(f"podnet_pod_cidr: {cidr} is too small for pods and a gateway")
    return str(network.broadcast_address - 1)


def veth_name(pod: str) -> str:
    """A stable host-side veth name for a pod, 15 bytes: 'veth' + 11 hex digits."""
    return "veth" + hashlib.sha1(pod.encode()).hexdigest()[:11]


def pod_veths(pods: list, cidr: str, bridge: str, mtu: int, hairpin: bool = True) -> list:
    """The veth module's list for pods on a node bridge (seed labs 1 and 3)."""
    gateway = pod_gateway(cidr)  # validates the CIDR
    network = ipaddress.ip_network(cidr)
    seen: dict = {}
    veths = []
    for index, pod in enumerate(pods or []):
        field = f"podnet_pods[{index}]"
        if not isinstance(pod, dict) or "name" not in pod or "ip" not in pod:
            raise AnsibleFilterError(f"{field}: each pod needs 'name' and 'ip', got {pod!r}")
        try:
            ip = ipaddress.ip_address(pod["ip"])
        except ValueError:
            raise AnsibleFilterError(f"{field}.ip: {pod['ip']!r} is not an IP address") from None
        if ip not in network or ip in (network.network_address, network.broadcast_address):
            raise AnsibleFilterError(f"{field}.ip: {ip} is not a usable address of the node's pod CIDR {cidr}")
        if str(ip) == gateway:
            raise AnsibleFilterError(f"{field}.ip: {ip} is the pods' gateway address")
        veth = pod.get("veth") or veth_name(pod["name"])
        if len(veth.encode()) > 15:
            raise AnsibleFilterError(f"{field}.veth: interface name {veth!r} is longer than 15 bytes")
        for key, value in (("name", pod["name"]), ("ip", str(ip)), ("veth", veth)):
            if (key, value) in seen:
                raise AnsibleFilterError(f"{field}.{key}: {value} is also used by podnet_pods[{seen[key, value]}]")
            seen[key, value] = index
        veths.append({
            "name": veth,
            "peer": "eth0",
            "peer_netns": pod["name"],
            "master": bridge,
            "hairpin": hairpin,
            "mtu": mtu,
            "peer_addresses": [f"{ip}/{network.prefixlen}"],
            "peer_routes": [{"dst": "default" if network.version == 4 else "::/0", "via": gateway}],
        })
    return veths


class FilterModule:
    def filters(self):
        return {name: globals()[name] for name in FILTERS}
