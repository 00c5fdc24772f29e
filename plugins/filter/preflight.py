# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks across the whole inventory, run by site.yml before any node is touched."""
from __future__ import annotations

import ipaddress
import itertools

from ansible_collections.handcni.podnet.plugins.filter.podnet import OVERHEAD, encapsulation_overhead, pod_cidr_of
from ansible.errors import AnsibleFilterError


def podnet_problems(hostvars: dict, groups: dict) -> list:
    """Every inconsistency in the declared cluster, each naming the host and the field."""
    problems: list = []
    workers = list(groups.get("workers", []))
    cidrs, node_ips, pod_ips = {}, {}, {}
    for host in workers:
        hv = hostvars[host]
        try:
            node_ip = ipaddress.ip_address(hv.get("podnet_node_ip"))
        except ValueError:
            problems.append(f"{host}: podnet_node_ip: {hv.get('podnet_node_ip')!r} is not an IP address")
        else:
            if node_ip in node_ips:
                problems.append(f"{host}: podnet_node_ip: {node_ip} is also {node_ips[node_ip]}'s")
            node_ips[node_ip] = host
        try:
            cidr = ipaddress.ip_network(pod_cidr_of(host, hostvars, workers))
        except AnsibleFilterError as err:
            problems.append(str(err))
            continue
        cidrs[host] = cidr
        cluster = hv.get("podnet_cluster_cidr")
        if cluster and not cidr.subnet_of(ipaddress.ip_network(cluster)):
            problems.append(f"{host}: podnet_pod_cidr: {cidr} is outside podnet_cluster_cidr {cluster}")
        gateway = cidr.broadcast_address - 1
        names = set()
        for index, pod in enumerate(hv.get("podnet_pods") or []):
            field = f"{host}: podnet_pods[{index}]"
            name = pod.get("name") if isinstance(pod, dict) else None
            if not name:
                problems.append(f"{field}: each pod needs a name")
                continue
            if name in names:
                problems.append(f"{field}.name: {name} is listed twice on {host}")
            names.add(name)
            if pod.get("ip") is None:
                continue
            try:
                ip = ipaddress.ip_address(pod["ip"])
            except ValueError:
                problems.append(f"{field}.ip: {pod['ip']!r} is not an IP address")
                continue
            if ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address, gateway):
                problems.append(f"{field}.ip: {ip} is not a usable pod address of {host}'s pod CIDR {cidr}")
            if ip in pod_ips:
                problems.append(f"{field}.ip: {ip} is also pod {pod_ips[ip]}")
            pod_ips[ip] = f"{host}/{name}"
        method = hv.get("cross_node_method", "none")
        overhead = encapsulation_overhead(method, hv.get("podnet_node_ip")) if method in OVERHEAD else 0
        node_mtu = int(hv.get("podnet_node_mtu", 1500))
        if "pod_network_mtu" in hv and int(hv["pod_network_mtu"]) + overhead > node_mtu:
            problems.append(f"{host}: pod_network_mtu: {hv['pod_network_mtu']} does not fit the underlay MTU {node_mtu}"
                            + (f" with {overhead} bytes of {method}" if overhead else ""))
    for (a, net_a), (b, net_b) in itertools.combinations(cidrs.items(), 2):
        if net_a.overlaps(net_b):
            problems.append(f"{b}: podnet_pod_cidr: {net_b} overlaps {a}'s {net_a}")
    return problems + _router_id_problems(hostvars, workers + list(groups.get("leaf", []))) + \
        _endpoint_problems(hostvars, workers)


def _router_id_problems(hostvars: dict, speakers: list) -> list:
    """With BGP, every speaker's router id (bgp_router_id, else its node address) is its own."""
    problems, seen = [], {}
    for host in speakers:
        hv = hostvars[host]
        if hv.get("cross_node_method") != "bgp":
            continue
        router_id = hv.get("bgp_router_id") or hv.get("podnet_node_ip")
        if router_id is None:
            continue  # the leaf's comes from its subnets
        if router_id in seen:
            problems.append(f"{host}: bgp_router_id: {router_id} is also {seen[router_id]}'s")
        seen[router_id] = host
    return problems


def _endpoint_problems(hostvars: dict, workers: list) -> list:
    """Every service endpoint given as {node, pod} names a worker and one of its pods."""
    if not workers:
        return []
    problems = []
    for i, service in enumerate(hostvars[workers[0]].get("podnet_services") or []):
        for j, endpoint in enumerate(service.get("endpoints") or [] if isinstance(service, dict) else []):
            if not isinstance(endpoint, dict) or "node" not in endpoint:
                continue  # {ip, port}: checked by the services role
            field = f"podnet_services[{i}].endpoints[{j}]"
            node, pod = endpoint["node"], endpoint.get("pod")
            if node not in workers:
                problems.append(f"{field}.node: {node} is not a worker")
            elif pod not in {p.get("name") for p in hostvars[node].get("podnet_pods") or [] if isinstance(p, dict)}:
                problems.append(f"{field}.pod: {pod} is not a pod of {node}")
    return problems


class FilterModule:
    def filters(self):
        return {"podnet_problems": podnet_problems}
