# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole inventory checked at once, before any node is touched (site.yml's first play). Private.

`problems(hostvars, groups, options)` returns one line per problem, each naming the host (where there
is one), the field and the value; it never raises. `options` are the known variables as argument-spec
options: the roles' (their meta/argument_specs.yml) and the inventory's own (FIELDS). Every variable
with one of our prefixes is checked against them: an unknown name (a typo), a wrong type, a value out
of range or not among the choices, an unknown key inside a list entry. Then the cluster as a whole:
overlapping CIDRs, duplicate addresses, names and ports, service addresses in the pod ranges or on a
node, and references to nodes or pods that do not exist.
"""
from __future__ import annotations

import difflib
import ipaddress

from ansible.module_utils.common.validation import check_type_dict, check_type_list
from ansible.module_utils.parsing.convert_bool import boolean

from . import _policy as policy_model
from . import _service_families as service_families
from . import _services as services_model
from . import _dual_stack as dual_stack
from . import _topology as topology
from . import _validate as validate

PREFIXES = ("podnet_", "pod_network_", "egress_", "services_", "network_policy_", "cni_config_", "cross_node_", "bgp_",
            "node_prep_", "verify_")
NODE_PORT_RANGE = "30000-32767"  # Kubernetes' --service-node-port-range default
PORT = (1, 65535)
MTU = (validate.MTU_MIN, validate.MTU_MAX)
AS_NUMBER = (1, 2 ** 32 - 1)

_POD = {"name": {"type": "str", "required": True}, "ip": {"type": "str"}, "ip6": {"type": "str"}, "veth": {"type": "str"},
        "namespace": {"type": "str", "default": policy_model.DEFAULT_NAMESPACE}, "labels": {"type": "dict", "default": {}}}
_ENDPOINT = {"node": {"type": "str"}, "pod": {"type": "str"}, "ip": {"type": "str"}, "port": {"type": "int", "range": PORT}}
_SERVICE = {
    "name": {"type": "str", "required": True}, "cluster_ip": {"type": "str", "required": True},
    "port": {"type": "int", "required": True, "range": PORT},
    "protocol": {"type": "str", "choices": ["tcp", "udp"], "default": "tcp"},
    "node_port": {"type": "int", "range": PORT}, "target_port": {"type": "int", "range": PORT},
    "external_ips": {"type": "list", "elements": "str", "default": []}, "load_balancer_ip": {"type": "str"},
    "external_traffic_policy": {"type": "str", "choices": list(services_model.POLICIES), "default": "Cluster"},
    "endpoints": {"type": "list", "elements": "dict", "options": _ENDPOINT, "default": []},
    "cluster_ips": {"type": "list", "elements": "str"},
    "ip_families": {"type": "list", "elements": "str"},
    "ip_family_policy": {"type": "str", "choices": list(service_families.POLICIES)},
}

# The inventory's own variables, as argument-spec options (README's inventory reference lists them all).
FIELDS = {
    "podnet_node_ip": {"type": "str", "required": True,
                       "description": "the node's underlay address (on every worker and external host)"},
    "podnet_node_interface": {"type": "str", "default": "eth0", "description": "the underlay NIC"},
    "podnet_node_mtu": {"type": "int", "range": MTU, "default": 1500, "description": "the underlay MTU"},
    "podnet_pod_cidr": {"type": "str", "description": "a worker's pod CIDR"},
    "podnet_cluster_cidr": {"type": "str", "description": "split into each worker's pod CIDR"},
    "podnet_node_prefix": {"type": "int", "range": (0, 128), "default": topology.NODE_PREFIX,
                           "description": "the prefix length of each worker's block of podnet_cluster_cidr"},
    "podnet_pods": {"type": "list", "elements": "dict", "options": _POD, "default": [],
                    "description": "a worker's pods"},
    "podnet_dual_stack": {"type": "bool", "default": False,
                          "description": "every pod gets an IPv6 address beside its IPv4 one (docs/dual-stack.md)"},
    "podnet_pod_cidr6": {"type": "str", "description": "a worker's IPv6 pod prefix (dual stack)"},
    "podnet_cluster_cidr6": {"type": "str", "default": topology.CLUSTER_CIDR6,
                             "description": "split into each worker's IPv6 pod prefix (dual stack)"},
    "podnet_node_prefix6": {"type": "int", "range": (0, 128), "default": topology.NODE_PREFIX6,
                            "description": "the prefix length of each worker's block of podnet_cluster_cidr6"},
    "podnet_node_ip6": {"type": "str", "description": "the node's IPv6 underlay address (dual stack: static routes "
                                                      "and direct paths carry the pods' IPv6 traffic over it, BGP its "
                                                      "IPv6 session)"},
    "podnet_leaf_subnets": {"type": "list", "elements": "dict", "default": [], "description": "the leaf's SVIs",
                            "options": {"name": {"type": "str", "required": True},
                                        "address": {"type": "str", "required": True},
                                        "address6": {"type": "str"}}},
    "podnet_services": {"type": "list", "elements": "dict", "options": _SERVICE, "default": [],
                        "description": "services every worker translates"},
    "podnet_service_cidr": {"type": "str", "description": "where cluster IPs lie (Kubernetes' "
                                                          "--service-cluster-ip-range); bgp_advertise_services "
                                                          "announces it"},
    "podnet_service_cidr6": {"type": "str", "description": "where IPv6 cluster IPs lie (dual stack)"},
    "podnet_service_node_port_range": {"type": "str", "default": NODE_PORT_RANGE,
                                       "description": "where node ports may lie (Kubernetes' --service-node-port-range)"},
    "podnet_firewall_backend": {"type": "str", "choices": ["iptables", "nftables"], "default": "iptables",
                                "description": "egress, services and network policy backend"},
    "podnet_network_policies": {"type": "list", "elements": "dict", "default": [],
                                "description": "Kubernetes NetworkPolicy objects (metadata, spec) every worker "
                                               "enforces for its pods"},
    "podnet_namespaces": {"type": "dict", "default": {},
                          "description": "labels of the pods' namespaces, {NAME: {labels: {...}}}, for namespaceSelector"},
    "podnet_sysctls": {"type": "dict", "default": {},
                       "description": "more net.* sysctls every worker sets, now and at every boot"},
    "podnet_restore": {"type": "bool", "description": "the node-side restore of what the roles make (default: on "
                                                      "for real nodes, off for the namespace lab)"},
    "pod_network_assigned": {"type": "list", "elements": "dict", "description": "set by pod_network: the pods with "
                                                                                "their addresses"},
    "podnet_held": {"type": "dict", "description": "set by site.yml (node_info): what of ours the node holds; a role "
                                                   "call that could only remove is skipped where nothing is held"},
    "bgp_as": {"type": "int", "range": AS_NUMBER, "description": "a worker's own AS (bgp_as_mode per_node)"},
    "bgp_router_id": {"type": "str", "description": "a BGP speaker's router id; defaults to its node address"},
    "verify_whoami_port": {"type": "int", "range": PORT, "default": 8080,
                           "description": "verify.yml's listener outside the cluster"},
    "verify_json": {"type": "path", "default": "build/verify.json", "description": "where verify.yml writes the matrix"},
}

# Ranges of the roles' whole-number options (argument specs have no ranges).
RANGES = {
    "pod_network_mtu": MTU, "cni_config_mtu": MTU, "cross_node_underlay_mtu": MTU,
    "cross_node_vxlan_vni": (1, 2 ** 24 - 1), "cross_node_vxlan_port": PORT, "cross_node_route_protocol": (5, 255),
    "bgp_leaf_as": AS_NUMBER, "bgp_node_as_base": (0, 2 ** 32 - 2), "bgp_prefix_limit": (0, 2 ** 32 - 1),
    "bgp_hold_time": (3, 65535), "bgp_keepalive_time": (1, 21845), "bgp_connect_retry_time": (1, 65535),
    "bgp_bfd_interval": (10, 60000), "bgp_bfd_multiplier": (2, 255), "bgp_leaf_multipath_hash_policy": (0, 3),
    "bgp_wait_timeout": (1, 3600),
}
POD_ROUTE_PROTOCOL = 201  # pod_network's host routes
_WORDS = {"int": "a whole number", "bool": "true or false", "str": "a string", "path": "a path", "list": "a list",
          "dict": "a mapping"}


class Problems(list):
    """(host or None, text) pairs; `lines()` joins a problem seen on several hosts into one line."""

    def add(self, host: str | None, text: str) -> None:
        self.append((host, text))

    def lines(self) -> list:
        hosts: dict = {}
        for host, text in self:
            hosts.setdefault(text, [])
            if host and host not in hosts[text]:
                hosts[text].append(host)
        return [f"{', '.join(names)}: {text}" if names else text for text, names in hosts.items()]


def _typed(value, spec: dict, field: str):
    """The value converted as Ansible's argument spec validation converts it; ValueError names the field."""
    kind = spec.get("type", "raw")
    try:
        if kind == "int":
            value = validate.integer(value, field, *(spec.get("range") or (None, None)))
        elif kind == "bool":
            value = boolean(value, strict=True)
        elif kind in ("str", "path"):
            if isinstance(value, (dict, list, bool)):
                raise TypeError
            value = str(value)
        elif kind == "list":
            value = check_type_list(value)
        elif kind == "dict":
            value = check_type_dict(value)
    except (TypeError, ValueError) as err:
        if isinstance(err, ValueError) and str(err).startswith(f"{field}: "):
            raise
        raise ValueError(f"{field}: {value!r} is not {_WORDS[kind]}") from None
    if spec.get("choices") and value not in spec["choices"]:
        raise ValueError(f"{field}: {value!r} is not one of {', '.join(map(str, spec['choices']))}")
    if kind == "list" and spec.get("elements"):
        value = [_typed(item, {"type": spec["elements"]}, f"{field}[{index}]") for index, item in enumerate(value)]
    return value


def _checked(value, spec: dict, field: str, host: str | None, found: Problems):
    """The value converted and its entries' keys checked; None (after recording why) when it is not usable."""
    try:
        value = _typed(value, spec, field)
    except ValueError as err:
        found.add(host, str(err))
        return None
    if spec.get("options") and isinstance(value, list):
        entries = []
        for index, entry in enumerate(value):
            entry = _entry(entry, spec["options"], f"{field}[{index}]", host, found)
            if entry is None:
                return None
            entries.append(entry)
        value = entries
    return value


def _entry(entry: dict, options: dict, field: str, host: str | None, found: Problems) -> dict | None:
    """One list entry: known keys only, required ones present, each of its type."""
    result, ok = {}, True
    for key in entry:
        if key not in options:
            found.add(host, f"{field}.{key}: unknown key{_suggestion(str(key), options)} "
                            f"(known: {', '.join(options)})")
            ok = False
    for key, spec in options.items():
        if entry.get(key) is None:
            if spec.get("required"):
                found.add(host, f"{field}.{key}: required")
                ok = False
            continue
        value = _checked(entry[key], spec, f"{field}.{key}", host, found)
        ok = ok and value is not None
        result[key] = value
    return result if ok else None


def _suggestion(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _variables(hostvars: dict, hosts: list, options: dict, found: Problems) -> dict:
    """{host: {name: converted value}} of every variable of ours; unknown names and bad values recorded."""
    result = {}
    for host in hosts:
        hv, values = hostvars[host], {}
        for name in list(hv.keys()):
            if not isinstance(name, str) or name.startswith("_") or not name.startswith(PREFIXES):
                continue
            if name not in options:
                found.add(host, f"{name}: unknown variable{_suggestion(name, options)}")
                continue
            try:
                raw = hv[name]
            except Exception as err:  # an inventory template that cannot be rendered
                found.add(host, f"{name}: cannot be evaluated ({getattr(err, 'message', None) or type(err).__name__})")
                continue
            if raw is None:  # an empty list may be left empty; anything else overrides a default with nothing
                if options[name].get("type", "raw") not in ("list", "dict", "raw"):
                    found.add(host, f"{name}: no value (give one, or leave the variable out)")
                continue
            spec = dict(options[name], range=options[name].get("range") or RANGES.get(name))
            value = _checked(raw, spec, name, host, found)
            if value is not None:
                values[name] = value
        result[host] = values
    return result


def _address(value, field: str, host: str | None, found: Problems):
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        found.add(host, f"{field}: {value!r} is not an IP address")
        return None


def problems(hostvars: dict, groups: dict, options: dict) -> list:
    """Every problem of the inventory, one line each (an empty list: it may be applied)."""
    found = Problems()
    options = dict(FIELDS, **options)
    grouped = [h for group in ("workers", "leaf", "external") for h in groups.get(group, []) if h in hostvars]
    values = _variables(hostvars, list(dict.fromkeys(grouped + sorted(hostvars))), options, found)
    workers = [h for h in groups.get("workers", []) if h in values]
    leaves = [h for h in groups.get("leaf", []) if h in values]
    subnets = _leaf_subnets(values, leaves, found)
    nodes = _node_addresses(values, workers + [h for h in groups.get("external", []) if h in values], workers, subnets,
                            found)
    cidrs = _pod_cidrs(values, workers, subnets, nodes, found)
    cidrs6 = dual_stack.check(values, workers, leaves, found)
    for host in workers:
        if host in cidrs:
            _pods(host, values[host], cidrs[host], found)
        _mtu(host, values[host], found)
        if values[host].get("cross_node_route_protocol") == POD_ROUTE_PROTOCOL:
            found.add(host, f"cross_node_route_protocol: {POD_ROUTE_PROTOCOL} is pod_network's own")
    if workers:
        _services(values, workers, cidrs, nodes, subnets, found, cidrs6)
        _policies(values, workers, found)
    _router_ids(values, workers + leaves, found)
    _announcements(values, workers, options, found)
    return found.lines()


def _policies(values: dict, workers: list, found: Problems) -> None:
    """The network policies, the namespaces' labels and every pod's labels in Kubernetes' terms."""
    pods = []
    for host in workers:
        for index, pod in enumerate(values[host].get("podnet_pods") or []):
            try:
                labels = policy_model.labels_of(pod.get("labels"), f"podnet_pods[{index}].labels")
                pods.append(policy_model.Pod(host, pod["name"], pod.get("namespace") or policy_model.DEFAULT_NAMESPACE,
                                             labels, ""))
            except ValueError as err:
                found.add(host, str(err))
    holders: dict = {}  # usually one list for all, from group_vars: its problems then name no host
    for host in workers:
        holders.setdefault(repr([values[host].get(key) for key in ("podnet_network_policies", "podnet_namespaces")]),
                           []).append(host)
    for hosts in holders.values():
        try:
            policy_model.normalise_policies(values[hosts[0]].get("podnet_network_policies"))
            policy_model.namespace_labels(values[hosts[0]].get("podnet_namespaces"), pods)
        except ValueError as err:
            for host in hosts if len(holders) > 1 else [None]:
                found.add(host, str(err))


def _leaf_subnets(values: dict, leaves: list, found: Problems) -> dict:
    """{interface: leaf} of every leaf SVI; overlapping subnets and duplicate names recorded."""
    subnets = {}
    for leaf in leaves:
        names = set()
        for index, subnet in enumerate(values[leaf].get("podnet_leaf_subnets") or []):
            field = f"podnet_leaf_subnets[{index}]"
            try:
                validate.ifname(subnet["name"], f"{field}.name")
                iface = ipaddress.ip_interface(validate.interface(subnet["address"], f"{field}.address"))
            except ValueError as err:
                found.add(leaf, str(err))
                continue
            if subnet["name"] in names:
                found.add(leaf, f"{field}.name: {subnet['name']} is listed twice")
            names.add(subnet["name"])
            if iface.ip in (iface.network.network_address, iface.network.broadcast_address) and \
                    iface.network.num_addresses > 2:
                found.add(leaf, f"{field}.address: {iface} is not a host address of its subnet")
            clash = next((other for other in subnets if other.network.overlaps(iface.network)), None)
            if clash:
                found.add(leaf, f"{field}.address: {iface} overlaps {clash}")
                continue
            subnets[iface] = leaf
    return subnets


def _node_addresses(values: dict, hosts: list, workers: list, subnets: dict, found: Problems) -> dict:
    """{address: host} of every node; missing, duplicate or off-subnet addresses recorded."""
    nodes: dict = {iface.ip: f"{leaf} (SVI)" for iface, leaf in subnets.items()}
    for host in hosts:
        if "podnet_node_ip" not in values[host]:
            found.add(host, "podnet_node_ip: required")
            continue
        ip = _address(values[host]["podnet_node_ip"], "podnet_node_ip", host, found)
        if ip is None:
            continue
        if ip in nodes:
            found.add(host, f"podnet_node_ip: {ip} is also {nodes[ip]}'s")
            continue
        nodes[ip] = host
        if not any(ip in iface.network for iface in subnets):
            if subnets or (host in workers and _needs_subnet(values[host])):
                found.add(host, f"podnet_node_ip: {ip} is in none of the leaf's podnet_leaf_subnets")
        elif any(ip in (i.network.network_address, i.network.broadcast_address) for i in subnets if ip in i.network):
            found.add(host, f"podnet_node_ip: {ip} is not a host address of its subnet")
    return nodes


def _needs_subnet(hv: dict) -> bool:
    """Whether the node's cross-node method must know its underlay subnet: static routes (without a
    cross_node_gateway), a tunnel only across subnets, and BGP (peering with the leaf there)."""
    method = hv.get("cross_node_method", "static")
    return (method == "static" and not hv.get("cross_node_gateway")) or method == "bgp" or (
        method in ("ipip", "vxlan") and hv.get("cross_node_encapsulation") == "cross_subnet")


def _pod_cidrs(values: dict, workers: list, subnets: dict, nodes: dict, found: Problems) -> dict:
    """{worker: pod CIDR}; CIDRs that cannot be made, overlap each other, the underlay or a node recorded."""
    cidrs = {}
    for host in workers:
        hv = values[host]
        try:
            cidr = ipaddress.ip_network(topology.pod_cidr_of(host, values, workers))
            topology.pod_gateway(str(cidr))
        except ValueError as err:
            text = str(err)
            found.add(host, text.removeprefix(f"{host}: "))
            continue
        field = "podnet_pod_cidr" if hv.get("podnet_pod_cidr") else "podnet_cluster_cidr"
        if cidr.version != 4:  # the IPv6 side of a dual-stack cluster has its own fields
            found.add(host, f"{field}: {cidr} is not IPv4 (IPv6 pod prefixes go in podnet_pod_cidr6 or "
                            "podnet_cluster_cidr6, with podnet_dual_stack: true)")
            continue
        cluster = hv.get("podnet_cluster_cidr")
        if cluster and hv.get("podnet_pod_cidr"):
            try:
                inside = cidr.subnet_of(ipaddress.ip_network(cluster))
            except (TypeError, ValueError):
                found.add(host, f"podnet_cluster_cidr: {cluster!r} is not a valid network")
                continue
            if not inside:
                found.add(host, f"podnet_pod_cidr: {cidr} is outside podnet_cluster_cidr {cluster}")
        underlay = next((i.network for i in subnets if i.network.overlaps(cidr)), None)
        node = next((f"{ip} ({name})" for ip, name in nodes.items() if ip in cidr), None)
        other = next((f"{h}'s {c}" for h, c in cidrs.items() if c.overlaps(cidr)), None)
        for clash in (other, underlay and f"the underlay subnet {underlay}", node and f"the node address {node}"):
            if clash:
                found.add(host, f"{field}: {cidr} overlaps {clash}")
        if not (other or underlay or node):
            cidrs[host] = cidr
    return cidrs


def _pods(host: str, hv: dict, cidr, found: Problems) -> None:
    """A worker's pods: names, addresses and veths valid and its own, and room for all of them."""
    gateway = cidr.broadcast_address - 1
    seen: dict = {}
    pods = hv.get("podnet_pods") or []
    for index, pod in enumerate(pods):
        field = f"podnet_pods[{index}]"
        try:
            validate.netns(pod["name"], f"{field}.name")
            veth = pod.get("veth")
            if veth is not None:
                validate.ifname(veth, f"{field}.veth")
                if veth in ("veth-host", "veth-net"):
                    raise ValueError(f"{field}.veth: {veth!r} is reserved for the veth_gateway style")
        except ValueError as err:
            found.add(host, str(err))
            continue
        ip = _address(pod["ip"], f"{field}.ip", host, found) if pod.get("ip") is not None else None
        if ip is not None and (ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address, gateway)):
            found.add(host, f"{field}.ip: {ip} is not a usable pod address of {host}'s pod CIDR {cidr}")
        for key, value in (("name", pod["name"]), ("ip", ip), ("veth", pod.get("veth"))):
            if value is not None and (key, value) in seen:
                found.add(host, f"{field}.{key}: {value} is also podnet_pods[{seen[key, value]}]'s")
            seen.setdefault((key, value), index)
    usable = cidr.num_addresses - 3
    if len(pods) > usable:
        found.add(host, f"podnet_pods: {len(pods)} pods do not fit in {cidr} ({usable} addresses)")


def _mtu(host: str, hv: dict, found: Problems) -> None:
    """The pod MTU fits the underlay with the cross-node encapsulation."""
    method = hv.get("cross_node_method", "static")
    try:
        room = topology.pod_mtu(hv.get("podnet_node_mtu", 1500), method, hv.get("podnet_node_ip"))
    except ValueError as err:
        found.add(host, str(err))
        return
    mtu = hv.get("pod_network_mtu")
    if mtu is not None and mtu > room:
        overhead = topology.OVERHEAD[method]
        found.add(host, f"pod_network_mtu: {mtu} does not fit the underlay MTU {hv.get('podnet_node_mtu', 1500)}"
                        + (f" with {overhead} bytes of {method}" if overhead else ""))


def port_range(text: str, field: str = "podnet_service_node_port_range") -> tuple:
    """(low, high) of a port range 'LOW-HIGH', as Kubernetes' --service-node-port-range."""
    low, high = (str(text).split("-", 1) + [""])[:2]
    try:
        bounds = validate.integer(low, field, *PORT), validate.integer(high, field, *PORT)
    except ValueError:
        bounds = (0, -1)
    if bounds[0] > bounds[1]:
        raise ValueError(f"{field}: {text!r} is not a port range like {NODE_PORT_RANGE}")
    return bounds


def _node_port_range(hv: dict, found: Problems) -> tuple:
    try:
        return port_range(hv.get("podnet_service_node_port_range", NODE_PORT_RANGE))
    except ValueError as err:
        found.add(None, str(err))
        return port_range(NODE_PORT_RANGE)


def _services(values: dict, workers: list, cidrs: dict, nodes: dict, subnets: dict, found: Problems,
              cidrs6: dict | None = None) -> None:
    """The services of every worker (usually one list for all, from group_vars; its problems then name no
    host): each valid, none on a pod range or a node's address, no ClusterIP+port or node port twice, node
    ports in range, every endpoint naming a pod that exists."""
    holders: dict = {}
    for host in workers:
        holders.setdefault(repr(values[host].get("podnet_services") or []), []).append(host)
    for hosts in holders.values():
        for host in hosts if len(holders) > 1 else [None]:
            _service_list(values[hosts[0]], host, values, workers, cidrs, nodes, subnets, found, cidrs6 or {})


def _service_list(hv: dict, host: str | None, values: dict, workers: list, cidrs: dict, nodes: dict, subnets: dict,
                  found: Problems, cidrs6: dict) -> None:
    low, high = _node_port_range(hv, found)
    service_cidr = None
    if hv.get("podnet_service_cidr") is not None:
        try:
            service_cidr = ipaddress.ip_network(hv["podnet_service_cidr"])
        except (TypeError, ValueError):
            found.add(host, f"podnet_service_cidr: {hv['podnet_service_cidr']!r} is not a valid network")
        for worker, cidr in cidrs.items() if service_cidr else ():
            if service_cidr.overlaps(cidr):
                found.add(host, f"podnet_service_cidr: {service_cidr} overlaps {worker}'s pod CIDR {cidr}")
    service_cidr6 = _service_cidr6(hv, host, found)
    clusters = [ipaddress.ip_network(c) for c in {values[w].get("podnet_cluster_cidr") for w in workers} - {None}
                if _is_network(c)]
    pods = {w: {p["name"] for p in values[w].get("podnet_pods") or []} for w in workers}
    valid, valid6, fields6 = [], [], []
    for index, service in enumerate(hv.get("podnet_services") or []):
        field = f"podnet_services[{index}]"
        try:  # a dual-stack service is checked side by side, each as nat_rule takes it
            sides = service_families.families(service, bool(hv.get("podnet_dual_stack")), field)
            models = [(services_model.normalise_service(dict(service_families.entry(service, version, ip), endpoints=[]),
                                                        field), ip) for version, ip in sides]
        except ValueError as err:
            found.add(host, str(err))
            continue
        for problem in service_families.foreign_addresses(service, field):
            found.add(host, problem)
        ranges = [(f"{w}'s pod CIDR {c}", c) for w, c in list(cidrs.items()) + list(cidrs6.items())] + \
                 [(f"podnet_cluster_cidr {c}", c) for c in clusters] + \
                 [(f"the underlay subnet {i.network}", i.network) for i in subnets]
        for model, given in models:
            cluster_key = "cluster_ip" if not service.get("cluster_ips") else f"cluster_ips[{service['cluster_ips'].index(given)}]"
            (valid6 if model.version == 6 else valid).append(model)
            fields6 += [field] if model.version == 6 else []
            for key, value in [(cluster_key, model.cluster_ip)] + services_model.external_addresses(
                    service_families.entry(service, model.version, given)):
                ip = ipaddress.ip_address(value)
                where = next((name for name, net in ranges if ip in net), None)
                if ip in nodes:
                    found.add(host, f"{field}.{key}: {ip} is the address of {nodes[ip]}")
                elif where:
                    found.add(host, f"{field}.{key}: {ip} is inside {where}")
            within, name = (service_cidr6, "podnet_service_cidr6") if model.version == 6 else (service_cidr, "podnet_service_cidr")
            if within and ipaddress.ip_address(model.cluster_ip) not in within:
                found.add(host, f"{field}.{cluster_key}: {model.cluster_ip} is outside {name} {within}")
        node_port = models[0][0].node_port if models else None
        if node_port is not None and not low <= node_port <= high:
            found.add(host, f"{field}.node_port: {node_port} is outside the node-port range {low}-{high} "
                            "(podnet_service_node_port_range)")
        for number, endpoint in enumerate(service.get("endpoints") or []):
            _endpoint(endpoint, f"{field}.endpoints[{number}]", pods, host, found)
    for listed, labels in ((valid, None), (valid6, fields6)):
        try:
            services_model.check_unique(listed, "podnet_services", len(listed), labels)
        except ValueError as err:
            found.add(host, str(err))


def _service_cidr6(hv: dict, host: str | None, found: Problems):
    """podnet_service_cidr6: an IPv6 network, or None."""
    value = hv.get("podnet_service_cidr6")
    if value is None:
        return None
    try:
        net = ipaddress.ip_network(value)
    except (TypeError, ValueError):
        net = None
    if net is None or net.version != 6:
        found.add(host, f"podnet_service_cidr6: {value!r} is not a valid IPv6 network")
        return None
    return net


def _endpoint(endpoint: dict, field: str, pods: dict, host: str | None, found: Problems) -> None:
    """{node, pod, port?} naming a pod of a worker, or {ip, port?}."""
    if endpoint.get("node") is not None or endpoint.get("pod") is not None:
        if endpoint.get("ip") is not None:
            found.add(host, f"{field}: give {{node, pod}} or {{ip}}, not both")
        elif endpoint.get("node") not in pods:
            found.add(host, f"{field}.node: {endpoint.get('node')!r} is not a worker")
        elif endpoint.get("pod") not in pods[endpoint["node"]]:
            found.add(host, f"{field}.pod: {endpoint.get('pod')!r} is not a pod of {endpoint['node']}")
        return
    try:
        services_model.service_address(endpoint.get("ip"), f"{field}.ip")
    except ValueError as err:
        found.add(host, str(err) if endpoint.get("ip") is not None else f"{field}: needs {{node, pod}} or {{ip}}")


def _is_network(value) -> bool:
    try:
        ipaddress.ip_network(value)
    except (TypeError, ValueError):
        return False
    return True


def _announcements(values: dict, workers: list, options: dict, found: Problems) -> None:
    """With the services announced by BGP, what each worker announces fits in the leaf's prefix limit."""
    for host in workers:
        hv = values[host]
        if hv.get("cross_node_method") != "bgp" or not hv.get("bgp_advertise_services"):
            continue
        limit = hv.get("bgp_prefix_limit", options.get("bgp_prefix_limit", {}).get("default", 0))
        count = 1 + len(services_model.announced(hv.get("podnet_services") or [], workers,
                                                 hv.get("podnet_service_cidr"))[host])
        problem = services_model.prefix_limit_problem(count, limit)
        if problem:
            found.add(host, problem)


def _router_ids(values: dict, speakers: list, found: Problems) -> None:
    """With BGP, every speaker's router id (bgp_router_id, else its node address) is its own."""
    seen: dict = {}
    for host in speakers:
        hv = values[host]
        if hv.get("cross_node_method") != "bgp":
            continue
        router_id = hv.get("bgp_router_id") or hv.get("podnet_node_ip")
        if router_id is None:
            continue  # the leaf's comes from its subnets
        if router_id in seen:
            found.add(host, f"bgp_router_id: {router_id} is also {seen[router_id]}'s")
        seen[router_id] = host
