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
  - handcni.podnet.pods.veth
  - handcni.podnet.common
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
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
