# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The route module's body (an owned set of routes, by protocol), run alone or as a part of pod_network."""
from __future__ import annotations

from . import _routes as routes
from ._module import COMMON_OPTIONS, Action
from ._netlink import link_by_name

COMMON = tuple(COMMON_OPTIONS)
OPTIONS = dict(
    routes=dict(type="list", elements="dict", required=True, options=dict(routes.SPEC)),
    protocol=dict(type="int", default=routes.ROUTE_PROTO),
)


def want(module) -> list:
    params = module.params
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
    return wanted


def run(module, wanted: list) -> None:
    params = module.params
    proto = params["protocol"]
    with module.errors(), module.sessions() as sessions:
        ipr, reader = sessions[params["netns"]], sessions.reader(params["netns"])
        have = routes.read(reader, proto)
        if params["state"] == "present":
            for index, route in enumerate(wanted):
                # In check mode an earlier task may only have planned the device.
                if route.get("dev") and link_by_name(reader, route["dev"]) is None and not module.check_mode:
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
