# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning and applying link attributes, shared by the link modules. Private to this collection."""
from __future__ import annotations

import ipaddress

from ._netlink import OWNER, inside_session, link_index, sysctl_path

# Applied in this order: a port joins its bridge before hairpin is set, and comes up last.
LINK_ATTRS = ("mtu", "mac", "master", "hairpin", "addresses", "up")


def plan_link(have: dict, want: dict) -> list[tuple[str, object, object]]:
    """(attribute, have, want) for every attribute that `want` sets and `have` lacks. Pure."""
    return [
        (attr, have.get(attr), want[attr])
        for attr in LINK_ATTRS
        if want.get(attr) is not None and have.get(attr) != want[attr]
    ]


def compared(have: dict, want: dict) -> dict:
    """The part of `have` that `want` sets, so a diff shows only what is managed."""
    return {attr: have.get(attr) for attr, value in want.items() if value is not None}


def describe_change(name: str, attr: str, old, new) -> str:
    if attr == "addresses":
        old, new = set(old or []), set(new)
        parts = [f"+{a}" for a in sorted(new - old)] + [f"-{a}" for a in sorted(old - new)]
        return f"set {name} addresses {' '.join(parts)}"
    return f"set {name} {attr} {old} -> {new}"


def apply_change(ipr, name: str, attr: str, old, new) -> None:
    index = link_index(ipr, name)
    if attr == "mtu":
        ipr.link("set", index=index, mtu=new)
    elif attr == "mac":
        ipr.link("set", index=index, address=new)
    elif attr == "master":
        ipr.link("set", index=index, master=link_index(ipr, new) if new else 0)
    elif attr == "hairpin":
        ipr.brport("set", index=index, mode=int(new))
    elif attr == "addresses":
        # New addresses first: a link left with no address has every route through it flushed. And
        # a new address in the old one's subnet is its secondary, which the kernel deletes with the
        # primary unless told to promote it.
        old, new = set(old or []), set(new)
        if old - new:
            with inside_session(ipr), open(sysctl_path(f"net.ipv4.conf.{name}.promote_secondaries"), "w") as knob:
                knob.write("1\n")
        for op, cidrs in (("add", new - old), ("del", old - new)):
            for cidr in sorted(cidrs):
                iface = ipaddress.ip_interface(cidr)
                ipr.addr(op, index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    elif attr == "up":
        ipr.link("set", index=index, state="up" if new else "down")
    else:
        raise ValueError(f"unknown link attribute {attr}")


def owner_alias(purpose: str) -> str:
    """The alias that marks a link as ours, with what it is for."""
    return f"{OWNER} {purpose}"


def not_ours(field: str, name: str, where: str) -> ValueError:
    return ValueError(f"{field}: {name} in {where} exists and was not made by handcni.podnet; it is left alone")


def owned_links(ipr, alias: str) -> list[str]:
    """Names of the links in this namespace that carry exactly this ownership alias."""
    return [link.get_attr("IFLA_IFNAME") for link in ipr.link("dump") if link.get_attr("IFLA_IFALIAS") == alias]
