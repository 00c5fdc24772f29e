# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes-style services as NAT: the model, its validation, and the conntrack flushes a change
needs. Private to this collection; pure (bad input raises ValueError naming the field).

A service is a virtual address, its cluster IP and port (optionally also a node port on the node's
own addresses), whose new connections are DNATed to one of its endpoints, chosen at random, as
kube-proxy does (seed 004 labs 4 and 5). The firewall backends (_iptables.py, _nftables.py) render and read it.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from typing import NamedTuple

from ansible.module_utils.parsing.convert_bool import boolean

from ._netlink import OWNER

PROTOCOLS = ("tcp", "udp")
# Kubernetes' externalTrafficPolicy: Cluster (any endpoint, client source masqueraded) or Local (this node's
# endpoints only, client source kept), for node ports and external addresses.
POLICIES = ("Cluster", "Local")
# The packet mark asking postrouting to masquerade: set for node-port traffic (so replies come
# back through the node that translated it) and for a pod reaching itself through its service
# (hairpin). kube-proxy uses 0x4000; ours is another bit, so both can run on one node.
MASQUERADE_MARK = 0x2000
SERVICE_COMMENT = f"{OWNER} service"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

SERVICE_SPEC = dict(
    name=dict(type="str", required=True),
    cluster_ip=dict(type="str"),
    port=dict(type="int"),
    protocol=dict(type="str", default="tcp", choices=list(PROTOCOLS)),
    node_port=dict(type="int"),
    target_port=dict(type="int"),
    external_ips=dict(type="list", elements="str", default=[]),
    load_balancer_ip=dict(type="str"),
    external_traffic_policy=dict(type="str", default="Cluster", choices=list(POLICIES)),
    endpoints=dict(type="list", elements="dict", default=[], options=dict(
        ip=dict(type="str", required=True),
        port=dict(type="int"),
        local=dict(type="bool", default=False),
    )),
)


class Endpoint(NamedTuple):
    ip: str
    port: int

    def text(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    def public(self) -> dict:
        return {"ip": self.ip, "port": self.port}


class Service(NamedTuple):
    """One service port: traffic to cluster_ip:port (and node_port on the node addresses) goes to an endpoint."""
    name: str
    cluster_ip: str
    port: int
    protocol: str = "tcp"
    node_port: int | None = None
    endpoints: tuple = ()  # Endpoints, sorted
    external: tuple = ()   # its external IPs and load-balancer IP, sorted: reached on `port` as the cluster IP
    local: tuple | None = None  # externalTrafficPolicy Local: this node's endpoints (sorted); None: Cluster

    @property
    def comment(self) -> str:
        return f"{SERVICE_COMMENT} {self.name}"

    @property
    def version(self) -> int:
        """The entry's family (its cluster IP's; its endpoints and external addresses are of the same): a
        dual-stack Service is two entries of one name, one per family."""
        return 6 if ":" in self.cluster_ip else 4

    @property
    def key(self) -> tuple:
        """What identifies an entry: its name and family."""
        return self.name, self.version

    def public(self) -> dict:
        return {"name": self.name, "cluster_ip": self.cluster_ip, "port": self.port, "protocol": self.protocol,
                "node_port": self.node_port, "endpoints": [e.public() for e in self.endpoints],
                "external_ips": list(self.external),
                "external_traffic_policy": "Cluster" if self.local is None else "Local",
                "local_endpoints": [e.public() for e in self.local or ()]}


def ip_key(address: str) -> tuple:
    """Sort key of an address, numerically: IPv4 in dotted quad form (cheap: thousands are sorted per run),
    then IPv6."""
    if ":" in address:
        return 256, int(ipaddress.IPv6Address(address))
    return tuple(int(part) for part in address.split("."))


def endpoint_key(endpoint: Endpoint) -> tuple:
    return ip_key(endpoint.ip), endpoint.port


def name_of(comment: str | None) -> str | None:
    """The service a rule belongs to, from its comment; None if the comment names no service."""
    prefix = SERVICE_COMMENT + " "
    if comment and comment.startswith(prefix) and _NAME.fullmatch(comment[len(prefix):]):
        return comment[len(prefix):]
    return None


def _hash(*parts: str) -> str:
    """16 characters naming a chain, as kube-proxy's KUBE-SVC-<hash>: base32 of a SHA-256."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return base64.b32encode(digest[:10]).decode()  # 10 bytes are 16 base32 characters, the digest's first 16


def service_hash(service: Service) -> str:
    return _hash("service", service.name)


def endpoint_hash(service: Service, endpoint: Endpoint) -> str:
    return _hash("endpoint", service.name, service.protocol, endpoint.text())


# --- validation -----------------------------------------------------------------------

def _port(value, field: str) -> int:
    if isinstance(value, str) and value.isdigit():  # as Ansible's argument check converts it
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{field}: {value!r} is not a port number (1-65535)")
    return value


DOTTED_QUAD = re.compile(r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")


def ipv4_address(value, field: str) -> str:
    if isinstance(value, str) and DOTTED_QUAD.fullmatch(value):  # the usual case, without ipaddress's cost
        first = int(value.split(".", 1)[0])
        if value not in ("0.0.0.0", "255.255.255.255") and not 224 <= first <= 239:
            return value
    try:
        address = ipaddress.ip_address(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: {value!r} is not a valid IPv4 address") from None
    if address.version != 4:
        raise ValueError(f"{field}: {value!r} is not an IPv4 address (IPv6 is not supported yet)")
    if address.is_unspecified or address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(f"{field}: {value!r} cannot be a service or endpoint address")
    return str(address)


def service_address(value, field: str, version: int | None = None) -> str:
    """A service or endpoint address, IPv4 or IPv6 (canonical); of family `version` when given."""
    if not (isinstance(value, str) and ":" in value):
        if version == 6:
            raise ValueError(f"{field}: {value!r} is not an IPv6 address, as the service's cluster_ip is "
                             "(a dual-stack service is one entry per family)")
        return ipv4_address(value, field)
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        raise ValueError(f"{field}: {value!r} is not a valid IP address") from None
    if version == 4:
        raise ValueError(f"{field}: {value!r} is an IPv6 address, but the service's cluster_ip is IPv4 "
                         "(a dual-stack service is one entry per family)")
    if address.is_unspecified or address.is_multicast:
        raise ValueError(f"{field}: {value!r} cannot be a service or endpoint address")
    return str(address)


def service_name(value, field: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{field}: {value!r} is not a valid service name "
                         "(letters, digits, '_', '.', '-', starting with a letter or digit, at most 63)")
    return value


def external_addresses(item: dict) -> list:
    """A service's external addresses as given, each with its field: [("external_ips[0]", ip), ...,
    ("load_balancer_ip", ip)]."""
    return [(f"external_ips[{index}]", value) for index, value in enumerate(item.get("external_ips") or [])] + \
        ([("load_balancer_ip", item["load_balancer_ip"])] if item.get("load_balancer_ip") else [])


def answers_outside(service: dict, node: str) -> bool:
    """Whether a node answers the service's node port and external addresses: always, but with
    external_traffic_policy Local only where one of its endpoints runs ({node, pod} endpoints name their node)."""
    return (service.get("external_traffic_policy") or "Cluster") != "Local" or \
        any(isinstance(e, dict) and e.get("node") == node for e in service.get("endpoints") or [])


def prefix_limit_problem(count: int, limit: int) -> str | None:
    """Why a node announcing `count` prefixes cannot: the leaf accepts at most `limit` (0: no limit)."""
    if limit and count > limit:
        return (f"bgp_prefix_limit: {limit} is less than the {count} prefixes it announces (its pod CIDR and the "
                "service addresses); the leaf would reset its session")
    return None


def _known(item: dict, spec: dict, field: str) -> None:
    """No key but the spec's: the module checks its services itself (Ansible's check of 10,000 of them costs more
    than the rest of an unchanged run)."""
    unknown = sorted(set(item) - set(spec), key=str)
    if unknown:
        raise ValueError(f"{field}.{unknown[0]}: unknown key (known: {', '.join(spec)})")


def normalise_service(item: dict, field: str) -> Service:
    _known(item, SERVICE_SPEC, field)
    name = service_name(item.get("name"), f"{field}.name")
    if item.get("cluster_ip") is None:
        raise ValueError(f"{field}.cluster_ip: required for service {name}")
    cluster_ip = service_address(item.get("cluster_ip"), f"{field}.cluster_ip")
    version = 6 if ":" in cluster_ip else 4
    if item.get("port") is None:
        raise ValueError(f"{field}.port: required for service {name}")
    port = _port(item.get("port"), f"{field}.port")
    protocol = str(item.get("protocol") or "tcp").lower()
    if protocol not in PROTOCOLS:
        raise ValueError(f"{field}.protocol: {item.get('protocol')!r} is not one of {', '.join(PROTOCOLS)}")
    node_port = item.get("node_port")
    if node_port is not None:
        node_port = _port(node_port, f"{field}.node_port")
    target_port = item.get("target_port")
    target_port = port if target_port is None else _port(target_port, f"{field}.target_port")
    if not isinstance(item.get("external_ips") or [], list):
        raise ValueError(f"{field}.external_ips: {item['external_ips']!r} is not a list of addresses")
    external = []
    for key, value in external_addresses(item):
        where = f"{field}.{key}"
        ip = service_address(value, where, version)
        if ip == cluster_ip or ip in external:
            raise ValueError(f"{where}: {ip} is listed twice for service {name}")
        external.append(ip)
    policy = item.get("external_traffic_policy") or "Cluster"
    if policy not in POLICIES:
        raise ValueError(f"{field}.external_traffic_policy: {policy!r} is not one of {', '.join(POLICIES)}")
    endpoints, seen, local = [], {}, []
    for index, endpoint in enumerate(item.get("endpoints") or []):
        where = f"{field}.endpoints[{index}]"
        if not isinstance(endpoint, dict):
            raise ValueError(f"{where}: {endpoint!r} is not a dict with ip and port")
        _known(endpoint, SERVICE_SPEC["endpoints"]["options"], where)
        ip = service_address(endpoint.get("ip"), f"{where}.ip", version)
        eport = target_port if endpoint.get("port") is None else _port(endpoint.get("port"), f"{where}.port")
        entry = Endpoint(ip, eport)
        if entry in seen:
            raise ValueError(f"{where}: {entry.text()} is listed twice (also {field}.endpoints[{seen[entry]}])")
        seen[entry] = index
        endpoints.append(entry)
        try:
            is_local = boolean(endpoint.get("local") or False, strict=True)
        except TypeError:
            raise ValueError(f"{where}.local: {endpoint['local']!r} is not true or false") from None
        if is_local:
            local.append(entry)
    endpoints.sort(key=endpoint_key)
    return Service(name, cluster_ip, port, protocol, node_port, tuple(endpoints), tuple(sorted(external, key=ip_key)),
                   tuple(sorted(local, key=endpoint_key)) if policy == "Local" else None)


# What must be unique among services: the name, the cluster IP and port, the node port, each external address
# (one service's: it is announced, and answered, for that service).
_UNIQUE = {
    "name": lambda s: [s.key],
    "cluster_ip": lambda s: [(s.cluster_ip, s.protocol, s.port)],
    "node_port": lambda s: [(s.version, s.protocol, s.node_port)] if s.node_port else [],  # a dual-stack one: each family
    "external_ips": lambda s: list(s.external),
}


def _label(index: int, field: str, labels: list | None) -> str:
    return labels[index] if labels else f"{field}[{index}]"


def check_unique(services: list, field: str, listed: int, labels: list | None = None) -> None:
    """Names, cluster IP:port and node ports must be unique. `services[:listed]` are `field`'s items, in
    order (or named by `labels`); the rest are ours already and kept (not pruned)."""
    for attribute, key in _UNIQUE.items():
        seen = {}
        for index, service in enumerate(services):
            for value in key(service):
                if value in seen:
                    first = seen[value]
                    six = " (IPv6)" if service.version == 6 else ""
                    what = {"name": service.name + six,
                            "cluster_ip": f"{Endpoint(service.cluster_ip, service.port).text()}/{service.protocol}",
                            "node_port": f"{service.node_port}/{service.protocol}{six}", "external_ips": value}[attribute]
                    if index < listed:
                        raise ValueError(f"{_label(index, field, labels)}.{attribute}: {what} is also used by "
                                         f"{_label(first, field, labels)}")
                    if first < listed:
                        raise ValueError(f"{_label(first, field, labels)}.{attribute}: {what} is also used by service "
                                         f"{service.name}, which handcni.podnet has already (list it too, or use prune)")
                seen[value] = index


def normalise_services(items, field: str = "services", state: str = "present", unique: bool = True) -> list:
    """The listed services, validated. With state=absent only the names matter. `unique`: check that no two
    share a name, a cluster IP and port, a node port (False where `wanted` checks them with ours next)."""
    services = []
    for index, item in enumerate(items or []):
        where = f"{field}[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: {item!r} is not a dict")
        if state == "absent":
            services.append(Service(service_name(item.get("name"), f"{where}.name"), "", 0))
        else:
            services.append(normalise_service(item, where))
    if state == "absent":
        names = [s.name for s in services]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"{field}[{index}].name: {name!r} is listed twice")
    elif unique:
        check_unique(services, field, len(services))
    return services


def normalise_addresses(values, field: str = "node_addresses") -> tuple:
    addresses = [service_address(value, f"{field}[{index}]") for index, value in enumerate(values or [])]
    for index, address in enumerate(addresses):
        if address in addresses[:index]:
            raise ValueError(f"{field}[{index}]: {address} is listed twice")
    return tuple(sorted(addresses, key=ip_key))


def wanted(listed: list, have: list, state: str, prune: bool, field: str = "services") -> tuple:
    """The services a backend should hold after this run, sorted by name.

    present: the listed ones, plus (unless pruned) ours that are not listed by name.
    absent: ours minus the listed names; with none listed, nothing."""
    names = {s.name for s in listed}
    if state == "absent":
        return tuple(sorted((s for s in have if s.name not in names), key=service_order)) if listed else ()
    kept = [] if prune else [s for s in have if s.name not in names]
    seen, unique = set(), []
    for service in kept:
        if service.key not in seen:
            seen.add(service.key)
            unique.append(service)
    check_unique(list(listed) + unique, field, len(listed))
    return tuple(sorted(list(listed) + unique, key=service_order))


def endpoints_alone(old: Service, new: Service) -> bool:
    """Whether `new` differs from `old` in its endpoints alone, never from none to some or back: then only the
    service's own chains change, not one dispatch rule or map element that it shares with the other services."""
    return (new._replace(endpoints=old.endpoints, local=old.local) == old and bool(new.endpoints) == bool(old.endpoints)
            and (new.local is None) == (old.local is None) and bool(new.local) == bool(old.local))


def service_order(service: Service) -> tuple:
    """Services by name, a dual-stack one's IPv4 entry first."""
    return service.key


def check_node_addresses(services, addresses: tuple) -> None:
    """A node port needs node addresses of its service's family."""
    versions = {6 if ":" in address else 4 for address in addresses}
    for service in services:
        if service.node_port and service.version not in versions:
            which = "IPv6 addresses" if service.version == 6 else "own addresses"
            raise ValueError(f"node_addresses: service {service.name} has node_port {service.node_port}, "
                             f"so the node's {which} are needed (the addresses node ports listen on)")


# --- conntrack ------------------------------------------------------------------------

class Flush(NamedTuple):
    """One `conntrack -D` run: argument list and why."""
    argv: list
    reason: str

    @property
    def description(self) -> str:
        return f"{' '.join(self.argv)} ({self.reason})"


def _delete(service: Service) -> list:
    """conntrack -D of the service's family (IPv4's is the default)."""
    return ["conntrack", "-D"] + (["-f", "ipv6"] if service.version == 6 else []) + ["-p", "udp"]


def _flush_to_endpoint(service: Service, endpoint: Endpoint, why: str) -> list:
    reply = ["--reply-src", endpoint.ip, "--reply-port-src", str(endpoint.port)]
    flushes = [Flush([*_delete(service), "--orig-dst", service.cluster_ip,
                      "--orig-port-dst", str(service.port), *reply],
                     f"UDP flows of service {service.name} to {why} endpoint {endpoint.text()}")]
    flushes += [Flush([*_delete(service), "--orig-dst", external, "--orig-port-dst", str(service.port),
                       *reply], f"UDP flows to {external} of service {service.name} to {why} endpoint {endpoint.text()}")
                for external in service.external]
    if service.node_port:
        flushes.append(Flush([*_delete(service), "--orig-port-dst", str(service.node_port), *reply],
                             f"UDP flows to node port {service.node_port} of service {service.name} "
                             f"to {why} endpoint {endpoint.text()}"))
    return flushes


def _flush_unnatted(service: Service, addresses: tuple) -> list:
    flushes = [Flush([*_delete(service), "--orig-dst", service.cluster_ip,
                      "--orig-port-dst", str(service.port)],
                     f"UDP flows to {service.cluster_ip}:{service.port} from before service {service.name} "
                     "had endpoints")]
    flushes += [Flush([*_delete(service), "--orig-dst", external, "--orig-port-dst", str(service.port)],
                      f"UDP flows to {external}:{service.port} from before service {service.name} had endpoints")
                for external in service.external]
    if service.node_port:
        flushes += [Flush([*_delete(service), "--orig-dst", address,
                           "--orig-port-dst", str(service.node_port)],
                          f"UDP flows to {address}:{service.node_port} from before service {service.name} "
                          "had endpoints")
                    for address in addresses if (":" in address) == (service.version == 6)]
    return flushes


def _addresses(service: Service) -> tuple:
    return service.cluster_ip, service.port, service.node_port, service.external


def conntrack_flushes(before, after, addresses: tuple = ()) -> list:
    """UDP flows that would keep going where the new rules no longer send them (kube-proxy does the same).

    A UDP "connection" lives in conntrack as long as datagrams keep coming, so without a flush a client
    keeps talking to an endpoint removed from its service. Flows to a service address that had no
    endpoints were never translated and would never be: they are flushed too. TCP is left alone:
    established connections finish where they are."""
    old = {s.key: s for s in before if s.protocol == "udp"}
    new = {s.key: s for s in after if s.protocol == "udp"}
    flushes = []
    for name in sorted(set(old) | set(new)):
        was, now = old.get(name), new.get(name)
        if was is not None and was.endpoints:
            same_address = now is not None and _addresses(now) == _addresses(was)
            kept = set(now.endpoints) if same_address else set()
            for endpoint in was.endpoints:
                if endpoint not in kept:
                    flushes += _flush_to_endpoint(was, endpoint, "removed" if now is None or endpoint not in
                                                  now.endpoints else "moved")
        if now is not None and now.endpoints and (was is None or not was.endpoints or _addresses(was) != _addresses(now)):
            flushes += _flush_unnatted(now, addresses)
    return flushes


# --- announcement by BGP ------------------------------------------------------------

def announced(services: list, workers: list, service_cidr: str | None = None) -> dict:
    """{worker: [prefix, ...]} each worker announces for the inventory's services (bgp_advertise_services),
    as Calico and MetalLB do: the service CIDR from every worker; each external IP and load-balancer IP as a
    /32 from every worker, or with external_traffic_policy Local only from the workers holding an endpoint
    ({node, pod} endpoints name their node), so traffic never enters a node that would not answer it."""
    prefixes = {worker: [service_cidr] if service_cidr else [] for worker in workers}
    for service in services or []:
        hosts = [f"{address}/32" for _key, address in external_addresses(service)]
        for worker in workers:
            if answers_outside(service, worker):
                prefixes[worker] += [prefix for prefix in hosts if prefix not in prefixes[worker]]
    return prefixes
