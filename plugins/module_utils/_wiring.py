# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's pod wiring (seed labs 1-3): its bridge, one veth per pod and, routed, a host route per pod, from its pods
and their addresses. The pods module wires a node from it; the pod_wiring filter gives it to a play."""
from __future__ import annotations

import hashlib
import ipaddress

from . import _topology as topology

# The names errors give the inputs: the inventory's by default.
INVENTORY_FIELDS = {"mode": "pod_network_mode", "gateway_style": "pod_network_gateway_style", "pods": "podnet_pods"}


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
CALICO_GATEWAY6 = "fe80::1"  # its IPv6 twin: a link-local gateway, answered by proxy NDP
VETH_GATEWAY = ("veth-host", "veth-net")  # seed lab 2, option 3: Cilium's cilium_host/cilium_net


def pod_wiring(pods: list, allocation: list, cidr: str, mode: str = "bridge", gateway_style: str = "host_ip",
               bridge: str = "br0", mtu: int = 1500, hairpin: bool = True, cidr6: str = "",
               fields: dict | None = None) -> dict:
    """The node's bridges, veths and host routes for its pods, ready for the bridge, veth and route modules (seed
    labs 1-3).

    `pods` are the node's pods (name, optional ip and veth), `allocation` the ipam module's [{name, ip, ip6?}] for
    them; `cidr6`, the node's IPv6 pod prefix, gives every pod its IPv6 side too. `fields`: the names errors give
    the mode, the gateway style and the pods (the inventory's by default, or the pods module's options).
    """
    fields = fields or INVENTORY_FIELDS
    if mode not in MODES:
        raise ValueError(f"{fields['mode']}: {mode!r} is not one of {', '.join(MODES)}")
    if mode == "routed" and gateway_style not in GATEWAY_STYLES:
        raise ValueError(f"{fields['gateway_style']}: {gateway_style!r} is not one of {', '.join(GATEWAY_STYLES)}")
    families = [("ip", _Family(cidr, CALICO_GATEWAY))] + ([("ip6", _Family(cidr6, CALICO_GATEWAY6))] if cidr6 else [])
    addresses = {item["name"]: item for item in allocation or []}
    seen: dict = {}
    veths, routes = [], []
    for index, pod in enumerate(pods or []):
        field = f"{fields['pods']}[{index}]"
        if not isinstance(pod, dict) or not pod.get("name"):
            raise ValueError(f"{field}: each pod needs a 'name', got {pod!r}")
        for key, _family in families:
            if not addresses.get(pod["name"], {}).get(key):
                raise ValueError(f"{field}: pod {pod['name']} has no {_family.word}address allocated")
        veth = pod.get("veth") or veth_name(pod["name"])
        if len(veth.encode()) > 15 or veth in VETH_GATEWAY:
            raise ValueError(f"{field}.veth: {veth!r} is longer than 15 bytes or a reserved name")
        for key, value in (("name", pod["name"]), ("veth", veth)):
            if (key, value) in seen:
                raise ValueError(f"{field}.{key}: {value} is also used by {fields['pods']}[{seen[key, value]}]")
            seen[key, value] = index
        entry = {"name": veth, "peer": "eth0", "peer_netns": pod["name"], "mtu": mtu,
                 "peer_mac": address_mac(addresses[pod["name"]]["ip"]), "peer_addresses": [], "peer_routes": []}
        if mode == "bridge":
            entry.update(master=bridge, hairpin=hairpin)
        else:
            entry.update(addresses=[], proxy_arp=gateway_style == "proxy_arp")
        for key, family in families:
            ip = addresses[pod["name"]][key]
            if mode == "bridge":
                entry["peer_addresses"].append(f"{ip}/{family.network.prefixlen}")
                entry["peer_routes"].append({"dst": family.default, "via": family.gateway})
                continue
            entry["peer_addresses"].append(f"{ip}/{family.host}")
            routes.append({"dst": f"{ip}/{family.host}", "dev": veth})
            if gateway_style == "host_ip":
                entry["addresses"].append(f"{family.gateway}/{family.host}")
            if gateway_style == "proxy_arp" and family.version == 6:  # a link-local gateway: no onlink needed
                entry["peer_routes"].append({"dst": family.default, "via": family.calico})
                entry["proxy_ndp"] = [family.calico]
                continue
            entry["peer_routes"].append({"dst": family.default, "onlink": True,
                                         "via": family.calico if gateway_style == "proxy_arp" else family.gateway})
            if gateway_style == "veth_gateway" and family.version == 6:  # held on veth-host: answered here by proxy
                entry["proxy_ndp"] = [family.gateway]
        veths.append(entry)
    gateways = [f"{family.gateway}/{family.network.prefixlen}" for _key, family in families]
    if mode == "routed" and gateway_style == "veth_gateway":
        host, net = VETH_GATEWAY
        veths.append({"name": host, "peer": net, "mtu": mtu,
                      "addresses": [f"{family.gateway}/{family.host}" for _key, family in families]})
    # A fixed bridge MAC: otherwise the bridge takes its lowest port MAC, and the gateway's MAC
    # changes under the pods whenever a port comes or goes.
    bridges = [{"name": bridge, "mtu": mtu, "mac": address_mac(families[0][1].gateway),
                "addresses": gateways}] if mode == "bridge" else []
    return {"bridges": bridges, "veths": veths, "routes": routes}


class _Family:
    """One address family of a node's pods: its prefix, gateway and default route."""

    def __init__(self, cidr: str, calico: str):
        self.gateway = topology.pod_gateway(cidr)  # validates the CIDR
        self.network = ipaddress.ip_network(cidr)
        self.version = self.network.version
        self.host = self.network.max_prefixlen
        self.default = "default" if self.version == 4 else "::/0"
        self.word = "" if self.version == 4 else "IPv6 "
        self.calico = calico
