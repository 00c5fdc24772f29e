# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dual-stack Services of the inventory, as Kubernetes' spec.ipFamilies, spec.ipFamilyPolicy and spec.clusterIPs:
which families a service has on a cluster, and its entry of each family for nat_rule (whose entries are of one
family each). Private to this collection; pure (bad input raises ValueError, one line naming the field).

- `cluster_ips`: one address per family, the first the primary; `cluster_ip` is cluster_ips[0] or its IPv4 one
  (without cluster_ips, cluster_ip alone is the service's one address, as before dual stack).
- `ip_families`: [IPv4], [IPv6], or both in either order (default: the families of its cluster IPs).
- `ip_family_policy`: SingleStack (one family; the default with one), PreferDualStack (the default with two: both
  on a dual-stack cluster, the IPv4 side alone on an IPv4-only one) or RequireDualStack (both, or refused).
Addresses are not allocated: each family a service has needs its cluster IP.
"""
from __future__ import annotations

import ipaddress

FAMILIES = {"IPv4": 4, "IPv6": 6}
POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")
KEYS = ("ip_families", "ip_family_policy", "cluster_ips")  # the inventory's keys nat_rule does not take
NEEDS_DUAL_STACK = "needs a dual-stack cluster (podnet_dual_stack: true)"


def version_of(value) -> int | None:
    """An address's family (4 or 6); None if it is not an address."""
    try:
        return ipaddress.ip_address(value).version
    except (TypeError, ValueError):
        return None


def _cluster_ips(service: dict, field: str) -> list:
    cluster_ip, ips = service.get("cluster_ip"), service.get("cluster_ips")
    if ips is None:
        return [] if cluster_ip is None else [cluster_ip]
    if not isinstance(ips, list) or not 1 <= len(ips) <= 2:
        raise ValueError(f"{field}.cluster_ips: {ips!r} is not a list of one or two addresses, one per family")
    versions = []
    for index, ip in enumerate(ips):
        version = version_of(ip)
        if version is None:
            raise ValueError(f"{field}.cluster_ips[{index}]: {ip!r} is not an IP address")
        if version in versions:
            raise ValueError(f"{field}.cluster_ips[{index}]: {ip} is a second IPv{version} address (one per family)")
        versions.append(version)
    if cluster_ip is not None and cluster_ip != ips[0] and not (version_of(cluster_ip) == 4 and cluster_ip in ips):
        raise ValueError(f"{field}.cluster_ip: {cluster_ip!r} is neither cluster_ips[0] nor its IPv4 address")
    return ips


def _families(service: dict, ips: list, field: str) -> list:
    families = service.get("ip_families")
    if families is None:
        return [version_of(ip) or 4 for ip in ips] or [4]
    if not isinstance(families, list) or not 1 <= len(families) <= 2 or len(set(map(str, families))) != len(families) \
            or any(family not in FAMILIES for family in families):
        raise ValueError(f"{field}.ip_families: {families!r} is not [IPv4], [IPv6], [IPv4, IPv6] or [IPv6, IPv4]")
    versions = [FAMILIES[family] for family in families]
    for index, ip in enumerate(service.get("cluster_ips") or []):
        if index >= len(versions) or version_of(ip) != versions[index]:
            raise ValueError(f"{field}.cluster_ips[{index}]: {ip} is not of ip_families[{index}] "
                             f"({families[index] if index < len(families) else 'not given'})")
    return versions


def families(service: dict, dual_stack: bool, field: str) -> list:
    """[(version, cluster IP)] of the service on a cluster (dual-stack or IPv4-only), its primary family first."""
    ips = _cluster_ips(service, field)
    versions = _families(service, ips, field)
    policy = service.get("ip_family_policy") or ("PreferDualStack" if len(versions) == 2 else "SingleStack")
    if policy not in POLICIES:
        raise ValueError(f"{field}.ip_family_policy: {policy!r} is not one of {', '.join(POLICIES)}")
    if policy == "SingleStack" and len(versions) == 2:
        raise ValueError(f"{field}.ip_families: {service['ip_families']} are two families, but ip_family_policy is "
                         "SingleStack")
    if policy == "RequireDualStack" and (len(versions) != 2 or not dual_stack):
        raise ValueError(f"{field}.ip_family_policy: RequireDualStack " + (
            NEEDS_DUAL_STACK if not dual_stack else "needs both families in ip_families"))
    if not dual_stack:
        if policy == "PreferDualStack" and 4 in versions:
            versions = [4]  # an IPv4-only cluster: the IPv4 side alone
        elif 6 in versions:
            raise ValueError(f"{field}.ip_families: {'IPv6' if 'ip_families' in service else 'an IPv6 cluster IP'} "
                             + NEEDS_DUAL_STACK)
    if service.get("cluster_ips") is None and versions == [version_of(service.get("cluster_ip")) or 4]:
        return [(versions[0], service.get("cluster_ip"))]  # as before dual stack: nat_rule checks the address
    out = []
    for version in versions:
        address = next((ip for ip in ips if version_of(ip) == version), None)
        if address is None:
            raise ValueError(f"{field}.cluster_ips: no IPv{version} address for the service's IPv{version} side "
                             "(cluster IPs are not allocated: give one per family)")
        out.append((version, address))
    return out


def listed_versions(service: dict) -> set:
    """The families the service lists (whether or not the cluster has them): of its ip_families, else its cluster IPs."""
    if isinstance(service.get("ip_families"), list):
        return {FAMILIES.get(family) for family in service["ip_families"]}
    return {version_of(ip) for ip in service.get("cluster_ips") or [service.get("cluster_ip")]}


def foreign_addresses(service: dict, field: str, endpoints: bool = True) -> list:
    """Problems of addresses (external ones, {ip} endpoints) of a family the service does not list."""
    listed, problems = listed_versions(service), []
    where = [(f"external_ips[{index}]", value) for index, value in enumerate(service.get("external_ips") or [])]
    where += [("load_balancer_ip", service["load_balancer_ip"])] if service.get("load_balancer_ip") else []
    where += [(f"endpoints[{index}].ip", endpoint["ip"]) for index, endpoint in enumerate(service.get("endpoints") or [])
              if endpoints and isinstance(endpoint, dict) and endpoint.get("ip") is not None]
    for key, value in where:
        version = version_of(value)
        if version is not None and version not in listed:
            problems.append(f"{field}.{key}: {value} is IPv{version}, but the service has no IPv{version} side "
                            "(ip_families)")
    return problems


def entry(service: dict, version: int, cluster_ip: str) -> dict:
    """The service's entry of one family: its cluster IP of that family, its external addresses of that family;
    without the dual-stack keys. Endpoints are left as they are (the caller resolves them per family)."""
    out = {key: value for key, value in service.items() if key not in KEYS}
    out["cluster_ip"] = cluster_ip
    if service.get("external_ips"):
        out["external_ips"] = [ip for ip in service["external_ips"] if version_of(ip) in (version, None)]
    if service.get("load_balancer_ip") and version_of(service["load_balancer_ip"]) not in (version, None):
        out["load_balancer_ip"] = None
    return out
