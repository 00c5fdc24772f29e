# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tunnel devices (IPIP, VXLAN) and a VXLAN device's FDB and neighbour entries. Private to this collection.

Pure parts (validation, normalising what the kernel reports, planning entry sets) are separate
from the netlink calls, so they are unit-tested without a kernel.
"""
from __future__ import annotations

import errno
import ipaddress
import socket
import time

from . import _validate as validate
from ._netlink import is_errno, kernel_errors
from ._topology import encapsulation_overhead

VNI_MIN, VNI_MAX = 1, 2 ** 24 - 1
PORT_MIN, PORT_MAX = 1, 65535
TTL_MAX = 255
VXLAN_PORT = 4789  # IANA
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
NTF_SELF = 0x02
ANY4 = "0.0.0.0"


# --- validation ---------------------------------------------------------------------------

def _int(value, field: str, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field}: {what} {value!r} is out of range {low}..{high}")
    return value


def vni(value, field: str) -> int:
    return _int(value, field, VNI_MIN, VNI_MAX, "VNI")


def port(value, field: str) -> int:
    return _int(value, field, PORT_MIN, PORT_MAX, "UDP port")


def ttl(value, field: str) -> int:
    return _int(value, field, 0, TTL_MAX, "TTL")


def ipv4(value, field: str) -> str:
    """An IPv4 address: IPIP carries IPv4 in IPv4."""
    text = validate.address(value, field)
    if ipaddress.ip_address(text).version != 4:
        raise ValueError(f"{field}: {value!r} is not an IPv4 address (IPIP carries IPv4 over IPv4)")
    return text


def same_family(value: str, other: str | None, field: str, other_field: str) -> None:
    if other and ipaddress.ip_address(value).version != ipaddress.ip_address(other).version:
        raise ValueError(f"{field}: {value} is not of the same address family as {other_field} {other}")


def overhead(kind: str, local: str | None) -> int:
    """Bytes the tunnel device adds on the underlay (the table is the topology's)."""
    return encapsulation_overhead(kind, local)


# --- reading links ------------------------------------------------------------------------

def info_data(link):
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_DATA") if info else None


def _addr(value) -> str | None:
    return None if value in (None, ANY4, "::") else str(value)


def ipip_params(link) -> dict:
    """local, remote, ttl of an IPIP device, as the module compares them."""
    data = info_data(link)
    get = data.get_attr if data is not None else (lambda _name: None)
    return {"local": _addr(get("IFLA_IPIP_LOCAL")), "remote": _addr(get("IFLA_IPIP_REMOTE")),
            "ttl": get("IFLA_IPIP_TTL") or 0}


def vxlan_params(link, names: dict) -> dict:
    """vni, port, local, dev, learning of a VXLAN device; `names` maps ifindex to name."""
    data = info_data(link)
    get = data.get_attr if data is not None else (lambda _name: None)
    lower = get("IFLA_VXLAN_LINK")
    return {
        "vni": get("IFLA_VXLAN_ID"),
        "port": get("IFLA_VXLAN_PORT") or VXLAN_PORT,
        "local": _addr(get("IFLA_VXLAN_LOCAL")) or _addr(get("IFLA_VXLAN_LOCAL6")),
        "dev": names.get(lower) if lower else None,
        "learning": bool(get("IFLA_VXLAN_LEARNING")),
    }


def wait_link(ipr, name: str, timeout: float = 5.0) -> int:
    """The index of `name`, polling a moment: a new link can appear late to a lookup."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        found = ipr.link_lookup(ifname=name)
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise OSError(errno.ENODEV, f"link {name} did not appear within {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def delete_link(ipr, name: str) -> None:
    """Delete a link; one already gone is what was wanted."""
    try:
        ipr.link("del", ifname=name)
    except kernel_errors() as err:
        if not is_errno(err, errno.ENODEV):
            raise


# --- VXLAN forwarding entries -------------------------------------------------------------

def ip_order(ip: str) -> tuple:
    address = ipaddress.ip_address(ip)
    return (address.version, address)


def fdb_view(mac: str, dst: str, port_: int, vni_: int) -> dict:
    return {"mac": mac, "dst": dst, "port": port_, "vni": vni_}


def normalise_fdb(msg_attrs: dict, device: dict) -> dict:
    """One FDB entry as the kernel reports it, with the VNI and port it leaves out filled in.

    The kernel omits NDA_VNI when it equals the device's VNI and NDA_PORT when it equals the
    device's port; left unfilled, every entry we made would look different from what we asked.
    """
    return fdb_view(msg_attrs["NDA_LLADDR"], msg_attrs.get("NDA_DST"), msg_attrs.get("NDA_PORT") or device["port"],
                    msg_attrs.get("NDA_VNI") or device["vni"])


def read_fdb(ipr, index: int, device: dict) -> dict:
    """{mac: [entries]} of the permanent FDB entries of the device itself (ours, on our device)."""
    found: dict = {}
    for msg in ipr.fdb("dump", ifindex=index):
        if msg["ifindex"] != index or not msg["flags"] & NTF_SELF or not msg["state"] & NUD_PERMANENT:
            continue
        attrs = {name: msg.get_attr(name) for name in ("NDA_LLADDR", "NDA_DST", "NDA_PORT", "NDA_VNI")}
        if attrs["NDA_LLADDR"]:
            found.setdefault(attrs["NDA_LLADDR"], []).append(normalise_fdb(attrs, device))
    return {mac: sorted(entries, key=lambda e: str(e["dst"])) for mac, entries in found.items()}


def read_neighbours(ipr, index: int) -> dict:
    """{ip: mac} of the permanent neighbour entries on the device (learned ones are not ours)."""
    found = {}
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.neigh("dump", ifindex=index, family=family):
            if msg["ifindex"] != index or not msg["state"] & NUD_PERMANENT:
                continue
            dst, mac = msg.get_attr("NDA_DST"), msg.get_attr("NDA_LLADDR")
            if dst and mac:
                found[str(ipaddress.ip_address(dst))] = mac
    return found


def plan_fdb(want: dict, have: dict, prune: bool) -> tuple[list, list]:
    """(entries to put, MACs to delete). `want` is {mac: entry}, `have` {mac: [entries]}. Pure."""
    put = [entry for mac, entry in sorted(want.items()) if have.get(mac) != [entry]]
    delete = sorted(mac for mac in have if prune and mac not in want)
    return put, delete


def plan_neighbours(want: dict, have: dict, prune: bool) -> tuple[list, list]:
    """(ip, mac) pairs to put, and IPs to delete. `want` and `have` are {ip: mac}. Pure."""
    put = [(ip, mac) for ip, mac in sorted(want.items(), key=lambda kv: ip_order(kv[0])) if have.get(ip) != mac]
    delete = sorted((ip for ip in have if prune and ip not in want), key=ip_order)
    return put, delete


def put_fdb(ipr, index: int, entry: dict, replace: bool) -> None:
    if replace:  # a MAC has one remote of ours: drop the old one(s), then add
        ipr.fdb("del", ifindex=index, lladdr=entry["mac"])
    ipr.fdb("add", ifindex=index, lladdr=entry["mac"], dst=entry["dst"], port=entry["port"], vni=entry["vni"])


def delete_fdb(ipr, index: int, mac: str) -> None:
    ipr.fdb("del", ifindex=index, lladdr=mac)


def put_neighbour(ipr, index: int, ip: str, mac: str) -> None:
    ipr.neigh("replace", dst=ip, lladdr=mac, ifindex=index, state=NUD_PERMANENT)


def delete_neighbour(ipr, index: int, ip: str) -> None:
    ipr.neigh("del", dst=ip, ifindex=index)


def describe_fdb(entry: dict, device: str) -> str:
    return f"{entry['mac']} dst {entry['dst']} dev {device}"
