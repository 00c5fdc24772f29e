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

from ansible_collections.handcni.podnet.plugins.module_utils import _routes as routes
from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._netlink import Sessions, link_by_name


def main():
    module = PodnetModule(
        argument_spec=dict(
            routes=dict(type="list", elements="dict", required=True, options=dict(routes.SPEC)),
            protocol=dict(type="int", default=routes.ROUTE_PROTO),
        ),
    )
    params = module.params
    with module.errors():
        proto = params["protocol"]
        if not 1 <= proto <= 255 or proto in routes.RESERVED_PROTOCOLS:
            raise ValueError(f"protocol: {proto} is not a protocol number for our routes "
                             f"(1..255, not {sorted(routes.RESERVED_PROTOCOLS)})")
        wanted = [routes.normalise(r, f"routes[{i}]", target=params["state"] == "present")
                  for i, r in enumerate(params["routes"])]
        first = {}
        for index, route in enumerate(wanted):
            listed = first.setdefault(routes.key(route), index)
            if listed != index:
                raise ValueError(f"routes[{index}]: the route to {route['dst']} (table {route['table']}, metric "
                                 f"{route['metric']}) is listed twice (also routes[{listed}])")
        with Sessions() as sessions:
            ipr = sessions[params["netns"]]
            have = routes.read(ipr, proto)
            if params["state"] == "present":
                for index, route in enumerate(wanted):
                    # In check mode an earlier task may only have planned the device.
                    if route.get("dev") and link_by_name(ipr, route["dev"]) is None and not module.check_mode:
                        raise ValueError(f"routes[{index}].dev: device {route['dev']!r} does not exist in {module.where}")
                put, remove = routes.plan(wanted, have, params["prune"], "routes")
            else:
                put, remove = [], []
                for index, route in enumerate(wanted):
                    current = have.get(routes.key(route))
                    if current is not None and not current["owned"]:
                        raise ValueError(f"routes[{index}]: route {routes.describe(current)} was not made by "
                                         "handcni.podnet; it is left alone")
                    if current is not None:
                        remove.append(current)
            owned_before = [routes.public(r) for r in have.values() if r["owned"]]
            gone = {routes.key(r) for r in remove} | {routes.key(r) for r in put}
            module.before = {"routes": owned_before}
            module.after = {"routes": [r for r in owned_before if (r["table"], r["dst"], r["metric"]) not in gone]
                            + [routes.public(r) for r in put]}
            module.apply(
                [Action(f"delete route {routes.describe(r)}", lambda r=r: routes.delete(ipr, r, proto)) for r in remove]
                + [Action(f"add route {routes.describe(r)}", lambda r=r: routes.put(ipr, r, proto)) for r in put]
            )
    if params["netns"] is None:  # the watcher reads the main table of the node (/proc/net/route)
        module.canary["routes"] = [r["dst"] for r in wanted if r["table"] == routes.MAIN_TABLE and ":" not in r["dst"]]
    module.leaves_nothing = not wanted
    module.finish(routes=[routes.public(r) for r in wanted])


if __name__ == "__main__":
    main()
