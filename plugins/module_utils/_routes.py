# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routes as owned sets: read, plan, apply. Private to this collection.

Our routes carry protocol ROUTE_PROTO. A route is identified by (table, dst, metric),
as the kernel does; a route with that identity made by anyone else is never replaced.
"""
from __future__ import annotations

import errno
import ipaddress
import socket

from . import _validate as validate
from ._netlink import ROUTE_PROTO, is_errno, kernel_errors, link_index

RTPROT_KERNEL = 2  # routes the kernel makes for a link's addresses

MAIN_TABLE = 254
# Protocol numbers the kernel and routing daemons use (kernel, boot, static, ra, bird, zebra, bgp, ...).
RESERVED_PROTOCOLS = frozenset({0, 1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15, 16, 18, 42, 99, 186, 187, 188, 189, 192})
RTNH_F_ONLINK = 4
RTN_UNICAST, LOCAL_TABLE = 1, 255
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
ROUTE_ATTRS = ("via", "dev", "onlink", "src")
LINK_GETS_MAX = 16  # above this many links, one dump of them all is cheaper than a request each

SPEC = dict(
    dst=dict(type="str", required=True),
    via=dict(type="str"),
    dev=dict(type="str"),
    onlink=dict(type="bool", default=False),
    src=dict(type="str"),
    table=dict(type="int", default=MAIN_TABLE),
    metric=dict(type="int", default=0),
)


METRIC_MAX = 0xFFFFFFFF
IPV6_DEFAULT_METRIC = 1024  # what the kernel stores for an IPv6 route added with metric 0


def normalise(route: dict, field: str, dev: str | None = None, target: bool = True) -> dict:
    """Validate one route; `dev` is the device to use when the route names none.

    target=False (removing routes) needs only what identifies a route: dst, table, metric.
    """
    via = validate.address(route["via"], f"{field}.via") if route.get("via") else None
    dst = route["dst"]
    if dst == "default":  # the family follows the gateway
        dst = "::/0" if via and ipaddress.ip_address(via).version == 6 else "0.0.0.0/0"
    out = {
        "dst": validate.network(dst, f"{field}.dst"),
        "via": via,
        "dev": validate.ifname(route.get("dev") or dev, f"{field}.dev") if route.get("dev") or dev else None,
        "onlink": bool(route.get("onlink")),
        "src": validate.address(route["src"], f"{field}.src") if route.get("src") else None,
        "table": route.get("table") or MAIN_TABLE,
        "metric": route.get("metric") or 0,
    }
    version = ipaddress.ip_network(out["dst"]).version
    for attr in ("via", "src"):
        if out[attr] and ipaddress.ip_address(out[attr]).version != version:
            raise ValueError(f"{field}.{attr}: {out[attr]} is not an IPv{version} address like dst {out['dst']}")
    if not 0 <= out["metric"] <= METRIC_MAX:
        raise ValueError(f"{field}.metric: {out['metric']} is out of range 0..{METRIC_MAX}")
    if version == 6 and out["metric"] == 0:
        out["metric"] = IPV6_DEFAULT_METRIC
    if target and not out["via"] and not out["dev"]:
        raise ValueError(f"{field}: route to {out['dst']} needs 'via' or 'dev'")
    if out["onlink"] and not (out["via"] and out["dev"]):
        raise ValueError(f"{field}.onlink: an onlink route to {out['dst']} needs both 'via' and 'dev'")
    if not 1 <= out["table"] <= 0xFFFFFFFF or out["table"] in (253, 255):
        raise ValueError(f"{field}.table: {out['table']} is not a table routes can be added to")
    return out


def key(route: dict) -> tuple:
    return (route["table"], route["dst"], route["metric"])


def describe(route: dict) -> str:
    text = route["dst"]
    if route.get("via"):
        text += f" via {route['via']}"
    if route.get("dev"):
        text += f" dev {route['dev']}"
    if route.get("onlink"):
        text += " onlink"
    if route.get("table", MAIN_TABLE) != MAIN_TABLE:
        text += f" table {route['table']}"
    if route.get("metric"):
        text += f" metric {route['metric']}"
    return text


def read(ipr, proto: int = ROUTE_PROTO, names: dict | None = None) -> dict:
    """Every unicast route in every table but local, keyed like `key()`, with `owned`.

    `names` ({link index: name}) spares reading the links when the caller has read them already.
    """
    messages = []
    # Both families in one dump (a read session: pyroute2 0.7's IPRoute dumps IPv4 only), only unicast routes
    # (a read session's kernel leaves out the local, broadcast and multicast ones; IPRoute's pyroute2 after reading).
    for msg in ipr.route("dump", type=RTN_UNICAST):
        table = msg.get_attr("RTA_TABLE") or msg["table"]
        if msg["family"] in (socket.AF_INET, socket.AF_INET6) and table != LOCAL_TABLE and msg["type"] == RTN_UNICAST:
            messages.append((msg, table))  # not another family, the local table, or other than unicast
    if names is None:
        names = link_names(ipr, {msg.get_attr("RTA_OIF") for msg, _table in messages} - {None})
    found = {}
    for msg, table in messages:
        family = msg["family"]
        dst = msg.get_attr("RTA_DST")
        zero = "0.0.0.0" if family == socket.AF_INET else "::"
        route = {
            "dst": str(ipaddress.ip_network(f"{dst or zero}/{msg['dst_len']}")),
            "via": msg.get_attr("RTA_GATEWAY"),
            "dev": names.get(msg.get_attr("RTA_OIF")),
            "onlink": bool(msg["flags"] & RTNH_F_ONLINK),
            "src": msg.get_attr("RTA_PREFSRC"),
            "table": table,
            "metric": msg.get_attr("RTA_PRIORITY") or 0,
            "owned": msg["proto"] == proto,
            "proto": msg["proto"],
        }
        found[key(route)] = route
    return found


def link_names(ipr, indexes: set) -> dict:
    """{index: name} of these links: asked for one by one when they are few (a node with hundreds of
    pod veths routes through a handful of links in bridge mode), else read in one dump."""
    if len(indexes) > LINK_GETS_MAX:
        return {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.link("dump")}
    names = {}
    for index in indexes:
        try:
            names[index] = ipr.link("get", index=index)[0].get_attr("IFLA_IFNAME")
        except kernel_errors() as err:
            if not is_errno(err, errno.ENODEV):  # gone since the route dump: so are its routes
                raise
    return names


def through(ipr, dev: str) -> list:
    """The routes through link `dev` but those the kernel makes for its addresses: what a link made
    again must get back (deleting a link deletes every route through it)."""
    return [r for r in read(ipr).values() if r["dev"] == dev and r["proto"] != RTPROT_KERNEL]


def differs(have: dict, want: dict) -> bool:
    """Whether a route must be replaced; the kernel picks dev and src when the route names none."""
    return any(have[attr] != want[attr] for attr in ROUTE_ATTRS
               if want[attr] is not None or attr not in ("dev", "src"))


def plan(want: list[dict], have: dict, prune: bool, field: str) -> tuple[list, list]:
    """(routes to add or replace, routes to delete). Raises on a foreign route in the way."""
    put, wanted, replaced = [], set(), []
    for index, route in enumerate(want):
        wanted.add(key(route))
        current = have.get(key(route))
        if current is None:
            put.append(route)
        elif not current["owned"]:
            raise ValueError(f"{field}[{index}]: route {describe(current)} exists and was not made by "
                             "handcni.podnet; it is left alone")
        elif differs(current, route):
            put.append(route)
            if route["onlink"] and ":" in route["dst"] and current["dev"] != route["dev"]:
                # IPv6 checks an onlink gateway against the route being replaced (now through another
                # device) and refuses: that one goes first.
                replaced.append(current)
    remove = [r for k, r in have.items() if prune and r["owned"] and k not in wanted]
    return put, replaced + remove


def request(ipr, route: dict, proto: int, indexes: dict | None = None) -> dict:
    """Keyword arguments for ipr.route() for one of our routes; `indexes` ({name: index}) are links
    the caller knows already."""
    args = dict(
        dst=route["dst"],
        table=route["table"],
        priority=route["metric"],
        proto=proto,
        scope=RT_SCOPE_UNIVERSE if route.get("via") else RT_SCOPE_LINK,
    )
    if route.get("via"):
        args["gateway"] = route["via"]
    if route.get("dev"):
        args["oif"] = (indexes or {}).get(route["dev"]) or link_index(ipr, route["dev"])
    if route.get("onlink"):
        args["flags"] = RTNH_F_ONLINK
    if route.get("src"):
        args["prefsrc"] = route["src"]
    return args


def put(ipr, route: dict, proto: int = ROUTE_PROTO, indexes: dict | None = None) -> None:
    ipr.route("replace", **request(ipr, route, proto, indexes))


def delete(ipr, route: dict, proto: int = ROUTE_PROTO) -> None:
    # Scope "nowhere" matches a route of any scope, as `ip route del` does.
    args = dict(dst=route["dst"], table=route["table"], priority=route["metric"], proto=proto, scope=RT_SCOPE_NOWHERE)
    ipr.route("del", **args)


def public(route: dict) -> dict:
    """What the diff shows of a route."""
    return {k: route[k] for k in ("dst", "via", "dev", "onlink", "src", "table", "metric") if route.get(k) is not None}
