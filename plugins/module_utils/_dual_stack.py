# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory's IPv6 side (podnet_dual_stack), checked with the rest by _inventory.problems. Private.

Every worker or none is dual-stack; each dual-stack worker's IPv6 pod prefix can be made and overlaps
no other; the pods' fixed IPv6 addresses are usable ones of it; the cross-node method carries IPv6
(IPIP cannot), and no network policy is asked for (IPv4 only so far); where IPv6 pod traffic crosses the
underlay unencapsulated (static routes, BGP's IPv6 sessions and routes, direct paths of cross_subnet) every
worker has an IPv6 underlay address on one of the leaf's IPv6 subnets. One line per problem, naming the host,
the field and the value.
"""
from __future__ import annotations

import ipaddress

from . import _topology as topology
from . import _validate as validate

NO_IPV6 = {"ipip": "ipip carries IPv4 only (an IPv4-in-IPv4 tunnel); with podnet_dual_stack use vxlan, static, "
                   "bgp or none"}


def check(values: dict, workers: list, leaves: list, found) -> dict:
    """{worker: IPv6 pod prefix} of a dual-stack cluster ({} for an IPv4-only one); problems into `found`."""
    dual = [host for host in workers if values[host].get("podnet_dual_stack")]
    if not dual:
        return {}
    if len(dual) < len(workers):
        found.add(None, f"podnet_dual_stack: true on {', '.join(dual)} but not on "
                        f"{', '.join(h for h in workers if h not in dual)}; every worker or none")
        return {}
    subnets = _subnets6(values, leaves, found)
    cidrs: dict = {}
    for host in workers:
        hv = values[host]
        method = hv.get("cross_node_method", "static")
        if method in NO_IPV6:
            found.add(host, f"cross_node_method: {NO_IPV6[method]}")
        if hv.get("podnet_network_policies"):
            found.add(host, "podnet_network_policies: enforced for IPv4 only so far; with podnet_dual_stack the pods' "
                            "IPv6 traffic would pass unfiltered")
        if method in ("static", "bgp") or (method == "vxlan" and hv.get("cross_node_encapsulation") == "cross_subnet"):
            _underlay(host, hv, subnets, found)
        cidr = _cidr6(host, values, workers, cidrs, subnets, found)
        if cidr is not None:
            cidrs[host] = cidr
            _pods6(host, hv, cidr, found)
    return cidrs


def _subnets6(values: dict, leaves: list, found) -> list:
    """The leaf's SVIs as (name, IPv4 interface or None, IPv6 interface or None) (podnet_leaf_subnets[].address6)."""
    subnets = []
    for leaf in leaves:
        for index, subnet in enumerate(values[leaf].get("podnet_leaf_subnets") or []):
            try:
                four = ipaddress.ip_interface(subnet["address"])
            except ValueError:
                four = None  # named by the IPv4 check
            six, field = None, f"podnet_leaf_subnets[{index}].address6"
            if subnet.get("address6") is not None:
                try:
                    six = ipaddress.ip_interface(validate.interface(subnet["address6"], field))
                except ValueError as err:
                    found.add(leaf, str(err))
                clash = next((s[2] for s in subnets if six and s[2] and s[2].network.overlaps(six.network)), None)
                if six is not None and (six.version != 6 or clash):
                    found.add(leaf, f"{field}: {six} " + (f"overlaps {clash}" if clash else "is not an IPv6 address"))
                    six = None
            subnets.append((subnet["name"], four, six))
    return subnets


def _underlay(host: str, hv: dict, subnets: list, found) -> None:
    """IPv6 pod traffic goes over the IPv6 underlay: the node's IPv6 address is on the IPv6 subnet of the
    leaf's SVI where its IPv4 address is (the same link)."""
    value = hv.get("podnet_node_ip6")
    if value is None:
        found.add(host, f"podnet_node_ip6: required with podnet_dual_stack and cross_node_method "
                        f"{hv.get('cross_node_method', 'static')} (the pods' IPv6 routes go via the node's IPv6 address"
                        f"{', learned over its IPv6 BGP session' if hv.get('cross_node_method') == 'bgp' else ''})")
        return
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        ip = None
    if ip is None or ip.version != 6:
        found.add(host, f"podnet_node_ip6: {value!r} is not an IPv6 address")
        return
    try:
        four = ipaddress.ip_address(hv.get("podnet_node_ip"))
    except ValueError:
        return  # named by the IPv4 check
    svi = next((s for s in subnets if s[1] and four in s[1].network), None)
    if svi is None:
        if subnets:
            found.add(host, f"podnet_node_ip6: {ip} has no leaf subnet: none holds podnet_node_ip {four}")
    elif svi[2] is None:
        found.add(host, f"podnet_node_ip6: {ip} needs the IPv6 subnet of the leaf's {svi[0]} (its address6), "
                        f"where podnet_node_ip {four} is")
    elif ip not in svi[2].network:
        found.add(host, f"podnet_node_ip6: {ip} is not in {svi[2].network}, the IPv6 subnet of the leaf's {svi[0]} "
                        f"where podnet_node_ip {four} is")


def _cidr6(host: str, values: dict, workers: list, cidrs: dict, subnets: list, found):
    """The worker's IPv6 pod prefix, or None after recording why it cannot be used."""
    try:
        cidr = ipaddress.ip_network(topology.pod_cidr6_of(host, values, workers))
        topology.pod_gateway(str(cidr))
    except ValueError as err:
        found.add(host, str(err).removeprefix(f"{host}: "))
        return None
    field = "podnet_pod_cidr6" if values[host].get("podnet_pod_cidr6") else "podnet_cluster_cidr6"
    other = next((f"{h}'s {c}" for h, c in cidrs.items() if c.overlaps(cidr)), None)
    underlay = next((f"the underlay subnet {s[2].network}" for s in subnets if s[2] and s[2].network.overlaps(cidr)),
                    None)
    if other or underlay:
        found.add(host, f"{field}: {cidr} overlaps {other or underlay}")
        return None
    return cidr


def _pods6(host: str, hv: dict, cidr, found) -> None:
    """The pods' fixed IPv6 addresses: usable ones of the node's prefix, each once."""
    gateway = ipaddress.ip_address(topology.pod_gateway(str(cidr)))
    seen: dict = {}
    for index, pod in enumerate(hv.get("podnet_pods") or []):
        if pod.get("ip6") is None:
            continue
        field = f"podnet_pods[{index}].ip6"
        try:
            ip = ipaddress.ip_address(pod["ip6"])
        except ValueError:
            found.add(host, f"{field}: {pod['ip6']!r} is not an IP address")
            continue
        if ip.version != 6 or ip not in cidr or ip in (cidr.network_address, gateway):
            found.add(host, f"{field}: {ip} is not a usable pod address of {host}'s IPv6 pod prefix {cidr}")
        elif ip in seen:
            found.add(host, f"{field}: {ip} is also podnet_pods[{seen[ip]}]'s")
        seen.setdefault(ip, index)
