#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: veth
short_description: Wire pods to a node with veth pairs, in one netlink session
version_added: 0.1.0
description:
  - Manages a set of veth pairs whose host side lives in O(netns) (the node) and whose peer
    side lives in a pod's network namespace, like C(ip link add veth1 type veth peer name eth0 netns netns1).
  - Sets, on both sides, the MTU, MAC, addresses and link state; on the host side the bridge
    (master) and hairpin mode; on the pod side its routes (for example the default route).
  - IPv6 addresses are added without duplicate address detection (C(nodad)), so a pod can talk at once. A pod
    side with an IPv6 address accepts no router advertisements (C(accept_ra=0) in its namespace, set before it
    comes up), so a rogue advertisement from another pod on the bridge cannot give it a default route.
  - Every veth it makes carries the alias C(handcni.podnet veth); a link with a listed name that
    does not carry it is never changed, and the module fails naming it before any change.
  - All pairs of one call are read, planned and applied together, so wiring 300 pods is one task.
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.common
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
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
        description: Network namespace of the pod side. Omit to keep both sides in O(netns).
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
seealso:
  - module: handcni.podnet.netns
  - module: handcni.podnet.bridge
  - module: handcni.podnet.route
notes:
  - Removing a veth (O(state=absent) or O(prune)) removes both sides, and with them the pod-side routes.
"""

EXAMPLES = r"""
- name: Put two pods on br0 (seed lab 1 and 3)
  handcni.podnet.veth:
    veths:
      - name: veth1
        peer_netns: netns1
        master: br0
        hairpin: true
        mtu: 9150
        peer_addresses: [192.168.10.1/24]
        peer_routes: [{dst: default, via: 192.168.10.254}]
      - name: veth3
        peer_netns: netns3
        master: br0
        hairpin: true
        mtu: 9150
        peer_addresses: [192.168.10.3/24]
        peer_routes: [{dst: default, via: 192.168.10.254}]
    prune: true

- name: A routed pod with the gateway on the host side (seed lab 2, option 1)
  handcni.podnet.veth:
    veths:
      - name: veth1
        peer_netns: netns1
        addresses: [192.168.10.254/32]
        peer_addresses: [192.168.10.1/32]
        peer_routes: [{dst: default, via: 192.168.10.254, onlink: true}]

# The node routes fd00:10:244:1::2/128 to veth1 (handcni.podnet.route) and forwards IPv6.
- name: A routed IPv6 pod whose gateway, fe80::1, the host side answers for by proxy NDP (Calico style)
  handcni.podnet.veth:
    veths:
      - name: veth1
        peer_netns: netns1
        peer_addresses: [fd00:10:244:1::2/128]
        peer_routes: [{dst: '::/0', via: 'fe80::1'}]  # a link-local gateway needs no onlink
        proxy_ndp: ['fe80::1']

- name: Remove a pod's veth
  handcni.podnet.veth:
    veths: [{name: veth3}]
    state: absent
"""

RETURN = r"""
actions:
  description: What was changed, or in check mode what would be, one line per kernel change.
  returned: always
  type: list
  elements: str
  sample:
    - "create veth veth1 <-> netns1/eth0"
    - "set veth1 master None -> br0"
    - "add route default via 192.168.10.254 dev eth0 in netns1"
    - "set netns1/eth0 accept_ra 1 -> 0"
    - "set veth1 proxy_ndp +fe80::1"
veths:
  description:
    - The listed veths as they are after the run (as requested, for O(state=present)).
    - A veth whose pod side has an IPv6 address also shows C(peer_accept_ra) (0), and one with O(veths[].proxy_ndp)
      shows its addresses.
  returned: always
  type: list
  elements: dict
  sample: [{name: veth1, peer: eth0, peer_netns: netns1, mtu: 9150, master: br0, hairpin: true, up: true}]
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _veth as body
from ansible_collections.handcni.podnet.plugins.module_utils._module import run_alone


def main():
    run_alone(body)


if __name__ == "__main__":
    main()
