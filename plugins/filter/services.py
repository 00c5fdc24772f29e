# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Services of the inventory (podnet_services) turned into what the nat_rule module and the pods'
servers need: endpoints given as {node, pod} resolved to the pod's address; a dual-stack service expanded
into one entry per family (module_utils/_service_families.py)."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.module_utils._lazy import lazy

service_families = lazy("ansible_collections.handcni.podnet.plugins.module_utils._service_families")

FIELD = "podnet_services"
SERVER_KINDS = {"tcp": "http", "udp": "udp"}


def _pod_ip(hostvars: dict, node: str, pod: str, where: str, version: int = 4) -> str:
    """A pod's address of a family: what the ipam module allocated in this run, else the inventory's."""
    if node not in hostvars:
        raise AnsibleFilterError(f"{where}.node: {node!r} is not a host of the inventory")
    hv, key = hostvars[node], "ip6" if version == 6 else "ip"
    for source in (hv.get("pod_network_assigned") or [], hv.get("podnet_pods") or []):
        for item in source:
            if isinstance(item, dict) and item.get("name") == pod and item.get(key):
                return str(item[key])
    if not any(isinstance(p, dict) and p.get("name") == pod for p in hv.get("podnet_pods") or []):
        raise AnsibleFilterError(f"{where}.pod: {node} has no pod {pod!r} in podnet_pods")
    raise AnsibleFilterError(f"{where}.pod: pod {pod} on {node} has no {'IPv6 ' if version == 6 else ''}address yet "
                             f"(give podnet_pods[].{key}, or run the pod_network role first)")


def _families(service: dict, hostvars: dict, node: str | None, where: str) -> list:
    """[(version, cluster IP)] of a service on `node`'s cluster (dual-stack or not)."""
    dual_stack = bool(node is not None and (hostvars.get(node) or {}).get("podnet_dual_stack"))
    try:
        return service_families.families(service, dual_stack, where)
    except ValueError as err:
        raise AnsibleFilterError(str(err)) from None


def _services(services, field: str) -> list:
    if services is None:
        return []
    if not isinstance(services, list):
        raise AnsibleFilterError(f"{field}: must be a list of services, got {services!r}")
    for index, service in enumerate(services):
        if not isinstance(service, dict):
            raise AnsibleFilterError(f"{field}[{index}]: must be a dict, got {service!r}")
    return services


def service_rules(services: list, hostvars: dict, node: str | None = None, field: str = FIELD) -> list:
    """The services as nat_rule's `services` option on `node`: every endpoint as {ip, port, local}.

    An endpoint is {ip, port?} as it is, or {node, pod, port?}: that pod's address, local on its node (what
    external_traffic_policy Local sends to). The port defaults to the service's target_port (nat_rule's
    default: the service port). A dual-stack service is an entry per family (the same name), its pods' addresses
    of that family; an {ip} endpoint goes to its own family's entry."""
    rules = []
    for index, service in enumerate(_services(services, field)):
        for version, cluster_ip in _families(service, hostvars, node, f"{field}[{index}]"):
            rules.append(_rule(service_families.entry(service, version, cluster_ip), version, hostvars, node,
                               f"{field}[{index}]"))
    return rules


def _rule(service: dict, version: int, hostvars: dict, node: str | None, field: str) -> dict:
    """One family's entry of a service as nat_rule takes it."""
    endpoints = []
    for number, endpoint in enumerate(service.get("endpoints") or []):
        where = f"{field}.endpoints[{number}]"
        if not isinstance(endpoint, dict):
            raise AnsibleFilterError(f"{where}: must be {{node, pod}} or {{ip, port}}, got {endpoint!r}")
        if endpoint.get("pod") is not None or endpoint.get("node") is not None:
            if not endpoint.get("pod") or not endpoint.get("node"):
                raise AnsibleFilterError(f"{where}: a pod endpoint needs both node and pod, got {endpoint!r}")
            ip = _pod_ip(hostvars, endpoint["node"], endpoint["pod"], where, version)
        elif endpoint.get("ip"):
            if service_families.version_of(endpoint["ip"]) not in (version, None):
                continue  # the other family's entry has it
            ip = endpoint["ip"]
        else:
            raise AnsibleFilterError(f"{where}: needs {{node, pod}} or {{ip}}, got {endpoint!r}")
        endpoints.append({"ip": ip, "port": endpoint.get("port"),
                          "local": node is not None and endpoint.get("node") == node})
    rule = {key: service.get(key) for key in ("name", "cluster_ip", "port", "protocol", "node_port", "target_port",
                                              "external_ips", "load_balancer_ip")}
    rule["protocol"] = rule["protocol"] or "tcp"
    rule["external_ips"] = rule["external_ips"] or []
    rule["external_traffic_policy"] = service.get("external_traffic_policy") or "Cluster"
    rule["endpoints"] = endpoints
    return rule


def service_servers(services: list, hostvars: dict, node: str, field: str = FIELD) -> list:
    """The servers this node's endpoint pods run in the lab: the seed's `python3 -m http.server` for TCP
    services, a UDP echo for UDP ones; each answers with its node/pod name. A pod serving a service's IPv6
    side has its IPv6 address too (`ip6`: the server listens on both families)."""
    servers = {}
    for index, service in enumerate(_services(services, field)):
        protocol = service.get("protocol") or "tcp"
        if protocol not in SERVER_KINDS:
            raise AnsibleFilterError(f"{field}[{index}].protocol: {protocol!r} is not tcp or udp")
        six = any(version == 6 for version, _ip in _families(service, hostvars, node, f"{field}[{index}]"))
        for number, endpoint in enumerate(service.get("endpoints") or []):
            if not isinstance(endpoint, dict) or endpoint.get("node") != node or not endpoint.get("pod"):
                continue
            where = f"{field}[{index}].endpoints[{number}]"
            port = endpoint.get("port") or service.get("target_port") or service.get("port")
            server = {"pod": endpoint["pod"], "kind": SERVER_KINDS[protocol],
                      "ip": _pod_ip(hostvars, node, endpoint["pod"], where), "port": int(port),
                      "identity": f"{node}/{endpoint['pod']}"}
            key = (server["pod"], server["kind"], server["port"])
            if six or "ip6" in servers.get(key, {}):
                server["ip6"] = _pod_ip(hostvars, node, endpoint["pod"], where, 6)
            servers[key] = server
    return [servers[key] for key in sorted(servers)]


class FilterModule:
    def filters(self):
        return {"service_rules": service_rules, "service_servers": service_servers}
