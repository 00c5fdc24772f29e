# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """The options of the modules whose bodies the pods module runs in one process (sysctl, netns, bridge, veth,
    route): documented once, for each module and for pods."""

    DOCUMENTATION = r"""
options: {}
"""

    SYSCTL = r"""
options:
  sysctls:
    description:
      - "Sysctl names and values, for example C(net.ipv4.ip_forward: 1)."
      - With O(state=absent) only the names matter.
    type: dict
    required: true
  state_file:
    description: Where the values found before our changes are recorded, one file per node.
    type: path
    default: /var/lib/handcni/sysctl.json
"""

    NETNS = r"""
options:
  names:
    description: Names of the namespaces, as in C(ip netns list).
    type: list
    elements: str
    required: true
"""

    BRIDGE = r"""
options:
  bridges:
    description: The bridges.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Bridge name (at most 15 bytes).
        type: str
        required: true
      mtu:
        description: MTU of the bridge.
        type: int
      mac:
        description: MAC address of the bridge.
        type: str
      addresses:
        description: Addresses of the bridge, as C(ip/prefix). The listed set is exact.
        type: list
        elements: str
        default: []
"""

    VETH = r"""
options:
  veths:
    description: The veth pairs.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Host-side interface name (at most 15 bytes).
        type: str
        required: true
      peer:
        description: Pod-side interface name.
        type: str
        default: eth0
      peer_netns:
        description: Network namespace of the pod side. Omit to keep both sides where the host side is.
        type: str
      mtu:
        description: MTU of both sides.
        type: int
      mac:
        description: MAC address of the host side.
        type: str
      peer_mac:
        description: MAC address of the pod side.
        type: str
      master:
        description: Bridge the host side is a port of. Omit for a routed (unbridged) veth.
        type: str
      hairpin:
        description:
          - Hairpin mode on the bridge port, so a pod can reach itself through a service
            (traffic sent back out of the port it came in on). Needs O(veths[].master).
        type: bool
        default: false
      proxy_arp:
        description:
          - Proxy ARP on the host side (with C(proxy_delay 0)), so the host answers the pod's ARP for
            any address it routes, such as the gateway V(169.254.1.1) of Calico (seed lab 2, option 2).
        type: bool
        default: false
      proxy_ndp:
        description:
          - IPv6 addresses the host side answers the pod's neighbour solicitations for by proxy NDP, the IPv6
            analogue of O(veths[].proxy_arp). For the pod's IPv6 gateway in routed mode, such as a link-local
            V(fe80::1) held by nobody (Calico) or a gateway address held on another link of the node.
          - One proxy neighbour entry per address on the host side, with C(net.ipv6.conf.<name>.proxy_ndp=1) and
            C(proxy_delay 0). The listed set is exact; an empty list removes the entries and turns proxy NDP off.
          - The node answers only while it forwards IPv6 (C(net.ipv6.conf.all.forwarding=1)).
        type: list
        elements: str
        default: []
      addresses:
        description: Addresses of the host side, as C(ip/prefix). The listed set is exact.
        type: list
        elements: str
        default: []
      peer_addresses:
        description: Addresses of the pod side, as C(ip/prefix). The listed set is exact.
        type: list
        elements: str
        default: []
      peer_routes:
        description:
          - Routes inside the pod's namespace, through the pod side unless O(veths[].peer_routes[].dev) says otherwise.
          - Routes the module made earlier in that namespace and no longer listed are removed.
        type: list
        elements: dict
        default: []
        suboptions:
          dst:
            description: Destination network, or V(default).
            type: str
            required: true
          via:
            description: Gateway address.
            type: str
          dev:
            description: Output device; defaults to the pod side.
            type: str
          onlink:
            description: Treat the gateway as directly reachable on the device.
            type: bool
            default: false
          src:
            description: Preferred source address.
            type: str
          table:
            description: Routing table number.
            type: int
            default: 254
          metric:
            description: Route metric.
            type: int
            default: 0
"""

    ROUTE = r"""
options:
  routes:
    description: The routes.
    type: list
    elements: dict
    required: true
    suboptions:
      dst:
        description: Destination network in CIDR form, or V(default).
        type: str
        required: true
      via:
        description: Gateway address.
        type: str
      dev:
        description: Output device.
        type: str
      onlink:
        description: Treat the gateway as directly reachable on O(routes[].dev), as for a tunnel or a /32 pod.
        type: bool
        default: false
      src:
        description: Preferred source address.
        type: str
      table:
        description: Routing table number.
        type: int
        default: 254
      metric:
        description: Route metric.
        type: int
        default: 0
  protocol:
    description: Route protocol number that marks the routes of this set as ours.
    type: int
    default: 201
"""
