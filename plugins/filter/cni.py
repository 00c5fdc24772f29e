# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the CNI network config a container runtime reads on each node (seed 003)."""
from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

FILTERS = ("cni_ranges",)


def cni_ranges(cidr: str, reserved: list | None, gateway: str) -> list:
    """The host-local range set of `cidr` that avoids `reserved` and `gateway`.

    host-local hands out every address between a range's rangeStart and rangeEnd and cannot
    exclude single addresses, so the usable addresses of the subnet (its defaults: from the
    first after the network address to the last before the broadcast address; IPv6 keeps the
    last) are cut into the sub-ranges between the excluded ones, in address order. Each
    sub-range names the whole subnet and the pods' gateway, as host-local and the bridge
    plugin expect. Pure; raises AnsibleFilterError naming the field.
    """
    try:
        if not isinstance(cidr, str):
            raise TypeError("expected a string like 192.168.10.0/24")
        network = ipaddress.ip_network(cidr, strict=True)
    except (TypeError, ValueError) as err:
        raise AnsibleFilterError(f"cni_config_pod_cidr: {cidr!r} is not a valid network: {err}") from None
    first = network.network_address + 1
    last = network.broadcast_address - (1 if network.version == 4 else 0)
    if first > last:
        raise AnsibleFilterError(f"cni_config_pod_cidr: {cidr} has no usable address for pods")

    def address(value, field: str, usable: bool):
        try:
            if not isinstance(value, str):
                raise TypeError(value)
            ip = ipaddress.ip_address(value)
        except (TypeError, ValueError):
            raise AnsibleFilterError(f"{field}: {value!r} is not an IP address") from None
        if ip.version != network.version or ip not in network:
            raise AnsibleFilterError(f"{field}: {ip} is not in cni_config_pod_cidr {network}")
        if usable and not first <= ip <= last:
            raise AnsibleFilterError(f"{field}: {ip} is not a usable address of cni_config_pod_cidr {network}")
        return ip

    if reserved is None:
        reserved = []
    if isinstance(reserved, (str, bytes, dict)) or not hasattr(reserved, "__iter__"):
        raise AnsibleFilterError(f"cni_config_reserved_ips: expected a list of addresses, got {reserved!r}")
    gateway_ip = address(gateway, "gateway", usable=True)
    # Network and broadcast addresses are outside the ranges anyway; listing them is harmless.
    excluded = {address(ip, f"cni_config_reserved_ips[{index}]", usable=False) for index, ip in enumerate(reserved)}
    excluded.add(gateway_ip)

    ranges = []
    start = first
    for ip in sorted(excluded):
        if ip < start or ip > last:
            continue
        if ip > start:
            ranges.append((start, ip - 1))
        if ip == last:
            start = None
            break
        start = ip + 1
    if start is not None:
        ranges.append((start, last))
    if not ranges:
        raise AnsibleFilterError(f"cni_config_reserved_ips: every usable address of {network} is reserved or "
                                 f"the gateway; none is left for the runtime's pods")
    return [{"subnet": str(network), "rangeStart": str(low), "rangeEnd": str(high), "gateway": str(gateway_ip)}
            for low, high in ranges]


class FilterModule:
    def filters(self):
        return {name: globals()[name] for name in FILTERS}
