# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Input validation shared by every module. Private to this collection.

Pure functions: each returns the normalised value or raises ValueError whose
message names the field and the value, so the module can fail before any change.
"""
from __future__ import annotations

import ipaddress
import re

IFNAME_MAX_BYTES = 15  # IFNAMSIZ - 1
MTU_MIN, MTU_MAX = 68, 65535
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def ifname(value, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: interface name must be a non-empty string, got {value!r}")
    if len(value.encode()) > IFNAME_MAX_BYTES:
        raise ValueError(f"{field}: interface name {value!r} is longer than {IFNAME_MAX_BYTES} bytes")
    if value in (".", "..") or any(c in "/:" or c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"{field}: interface name {value!r} contains '/', ':', whitespace or a control character")
    return value


def netns(value, field: str) -> str:
    return _simple_name(value, field, "network namespace name")


def name(value, field: str) -> str:
    """A name that is also a file name: a netns, a restore record."""
    return _simple_name(value, field, "name")


def _simple_name(value, field: str, noun: str) -> str:
    if not isinstance(value, str) or not _NETNS.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"{field}: {value!r} is not a valid {noun} (letters, digits, '.', '_', '-', at most 64)")
    return value


def interface(value, field: str) -> str:
    """An address with prefix length, as on an interface: '192.168.10.1/24'."""
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"{field}: {value!r} is not an address with a prefix length, like 192.168.10.1/24")
    try:
        return str(ipaddress.ip_interface(value))
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a valid address with a prefix length") from None


def address_order(cidr: str) -> tuple:
    """Sort key for 'ip/prefix' strings: IPv4 first, then numerically."""
    iface = ipaddress.ip_interface(cidr)
    return (iface.version, iface)


def interfaces(values, field: str) -> list[str]:
    """A list of interface addresses, normalised and in one canonical order."""
    return sorted((interface(v, f"{field}[{i}]") for i, v in enumerate(values or [])), key=address_order)


def network(value, field: str) -> str:
    """A network in CIDR form; 'default' means 0.0.0.0/0."""
    if value == "default":
        return "0.0.0.0/0"
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except (TypeError, ValueError):
        raise ValueError(f"{field}: {value!r} is not a valid network (CIDR with host bits zero, or 'default')") from None


def address(value, field: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except (TypeError, ValueError):
        raise ValueError(f"{field}: {value!r} is not a valid IP address") from None


def mac(value, field: str) -> str:
    normalised = value.lower() if isinstance(value, str) else value
    if not isinstance(normalised, str) or not _MAC.fullmatch(normalised):
        raise ValueError(f"{field}: {value!r} is not a MAC address like 02:00:00:00:00:01")
    if int(normalised[:2], 16) & 1:
        raise ValueError(f"{field}: {value!r} is a multicast MAC address")
    if normalised == "00:00:00:00:00:00":
        raise ValueError(f"{field}: {value!r} is the all-zero MAC address")
    return normalised


def integer(value, field: str, low: int | None = None, high: int | None = None) -> int:
    """A whole number, also given as text (as `-e name=1500` gives it); within low..high when given."""
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field}: {value!r} is not a whole number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{field}: {value} is out of range {low}..{high}")
    return value


def mtu(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MTU_MIN <= value <= MTU_MAX:
        raise ValueError(f"{field}: MTU {value!r} is out of range {MTU_MIN}..{MTU_MAX}")
    return value


def unique(items: list, key: str | None, field: str) -> None:
    """Each item's `key` (None: the item itself) appears once in list `field`."""
    seen = set()
    for index, item in enumerate(items):
        value = item if key is None else item[key]
        if value in seen:
            raise ValueError(f"{field}[{index}]{'' if key is None else '.' + key}: {value!r} is listed twice")
        seen.add(value)


def mapping(value, field: str, keys: tuple, optional: bool = False) -> dict:
    """A dict holding no key but `keys` (None is an empty one when `optional`)."""
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{field}: must be a mapping with {', '.join(keys)}, got {value!r}")
    unknown = sorted(set(value) - set(keys), key=str)
    if unknown:
        raise ValueError(f"{field}.{unknown[0]}: unknown key (known: {', '.join(keys)})")
    return value


def items(value, field: str) -> list:
    """A list; None is an empty one."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{field}: must be a list or null, got {value!r}")
    return value
