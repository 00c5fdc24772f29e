#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: route
short_description: Manage a namespace's routes as one owned set
version_added: 0.1.0
description:
  - Manages IPv4 and IPv6 unicast routes in O(netns), like C(ip route add 192.168.10.1/32 dev veth1)
    (seed lab 2) or C(ip route add 192.168.30.0/24 via 192.168.210.254) (seed lab 8).
  - Every route it makes carries the protocol number O(protocol) (default 201, C(ip route show proto 201)).
    That is the ownership mark, and O(prune) only ever removes routes with it, so roles keep separate
    sets apart by protocol (pod host routes 201, cross-node routes 202). A route is identified by table,
    destination and metric; if one with that identity exists with another protocol, the module fails
    naming it before any change and never replaces it.
  - All routes of one call are read, planned and applied in one netlink session.
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.common
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
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
seealso:
  - module: handcni.podnet.veth
"""

EXAMPLES = r"""
- name: Host routes to routed pods (seed lab 2)
  handcni.podnet.route:
    routes:
      - {dst: 192.168.10.1/32, dev: veth1}
      - {dst: 192.168.10.3/32, dev: veth3}
    prune: true

- name: Static routes to the other nodes' pods (seed lab 8)
  handcni.podnet.route:
    routes:
      - {dst: 192.168.20.0/24, via: 192.168.210.22}
      - {dst: 192.168.30.0/24, via: 192.168.210.254}
"""

RETURN = r"""
actions:
  description: What was changed, or in check mode what would be.
  returned: always
  type: list
  elements: str
  sample: ["add route 192.168.10.1/32 dev veth1", "delete route 192.168.10.3/32 dev veth3"]
routes:
  description: The listed routes, normalised.
  returned: always
  type: list
  elements: dict
  sample: [{dst: 192.168.10.1/32, dev: veth1, onlink: false, table: 254, metric: 0}]
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _route as body
from ansible_collections.handcni.podnet.plugins.module_utils._module import run_alone


def main():
    run_alone(body)


if __name__ == "__main__":
    main()
