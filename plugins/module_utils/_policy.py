# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes NetworkPolicy for the inventory's pods: the model. Private to this collection.

Policies come in the shape of a Kubernetes `networking.k8s.io/v1` NetworkPolicy (metadata, spec with
podSelector, policyTypes, ingress[].from / egress[].to with podSelector, namespaceSelector and ipBlock,
ports with protocol, port and endPort). Pods have a namespace (default `default`) and labels;
namespaces have labels (`podnet_namespaces`), and always `kubernetes.io/metadata.name`, as Kubernetes
gives them.

Two ways through the same semantics, kept apart so that each checks the other:
- `compile_pod` turns the policies into one pod's allow lists of addresses and ports, what the
  network_policy module enforces (a selector becomes the /32s of the pods it selects, an ipBlock its
  CIDR less its exceptions);
- `allowed` judges one flow (source, destination, protocol, port) from the policies and the pods'
  labels directly, for verify.yml's truth table.

Semantics as Kubernetes defines them: a pod selected by no policy of a direction is open in that
direction; once selected, only the union of the rules of every policy selecting it is allowed;
policies only add; both the source's egress and the destination's ingress must allow a flow between
two pods; replies pass (conntrack, in the module); the pod's own node always reaches it.
Bad input raises ValueError naming the field.
"""
from __future__ import annotations

import functools
import ipaddress
from typing import NamedTuple

from . import _validate as validate

FIELD = "podnet_network_policies"
DEFAULT_NAMESPACE = "default"
NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
DIRECTIONS = {"Ingress": ("ingress", "from"), "Egress": ("egress", "to")}


class Selector(NamedTuple):
    """A Kubernetes label selector; empty matches everything."""
    labels: tuple = ()       # (key, value) pairs, all must be there
    expressions: tuple = ()  # (key, operator, values)

    def matches(self, labels: dict) -> bool:
        if any(labels.get(key) != value for key, value in self.labels):
            return False
        for key, operator, values in self.expressions:
            there = key in labels
            if operator == "In" and not (there and labels[key] in values) or \
                    operator == "NotIn" and there and labels[key] in values or \
                    operator == "Exists" and not there or operator == "DoesNotExist" and there:
                return False
        return True


class Peer(NamedTuple):
    """One entry of from/to: pods (selectors) or an ipBlock (cidr less excepts)."""
    pods: Selector | None = None
    namespaces: Selector | None = None
    cidr: str | None = None
    excepts: tuple = ()


class Port(NamedTuple):
    protocol: str              # tcp, udp or sctp
    port: int | None = None    # None: every port of the protocol
    end_port: int | None = None

    def matches(self, protocol: str, port: int | None) -> bool:
        if protocol != self.protocol:
            return False
        return self.port is None or port is not None and self.port <= port <= (self.end_port or self.port)

    def public(self) -> dict:
        return {"protocol": self.protocol, "port": self.port, "end_port": self.end_port}


class Rule(NamedTuple):
    peers: tuple | None  # None: every peer (no from/to, or empty)
    ports: tuple | None  # None: every protocol and port (no ports, or empty)


class Policy(NamedTuple):
    name: str
    namespace: str
    selector: Selector
    ingress: tuple | None  # None: not an ingress policy; () denies every ingress
    egress: tuple | None


class Pod(NamedTuple):
    node: str
    name: str
    namespace: str
    labels: dict
    ip: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# --- reading the inventory ----------------------------------------------------

_mapping = functools.partial(validate.mapping, optional=True)  # a Kubernetes object leaves out what is empty
_list = validate.items


def _text(value, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field}: must be a non-empty string, got {value!r}")
    return value


def labels_of(value, field: str) -> dict:
    """A label map: string keys and values (numbers and booleans as Kubernetes would refuse them)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{field}: must be a mapping of label names to values, got {value!r}")
    for key, item in value.items():
        if not isinstance(key, str) or not key or not isinstance(item, str):
            raise ValueError(f"{field}.{key}: label values are strings (quote them), got {item!r}")
    return dict(value)


def selector(value, field: str) -> Selector:
    body = _mapping(value, field, ("matchLabels", "matchExpressions"))
    expressions = []
    for index, expression in enumerate(_list(body.get("matchExpressions"), f"{field}.matchExpressions")):
        where = f"{field}.matchExpressions[{index}]"
        expression = _mapping(expression, where, ("key", "operator", "values"))
        operator = expression.get("operator")
        if operator not in OPERATORS:
            raise ValueError(f"{where}.operator: {operator!r} is not one of {', '.join(OPERATORS)}")
        values = _list(expression.get("values"), f"{where}.values")
        if (operator in ("In", "NotIn")) != bool(values) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"{where}.values: {operator} needs {'a non-empty' if operator in ('In', 'NotIn') else 'no'}"
                             f" list of strings, got {expression.get('values')!r}")
        expressions.append((_text(expression.get("key"), f"{where}.key"), operator, tuple(sorted(values))))
    return Selector(tuple(sorted(labels_of(body.get("matchLabels"), f"{field}.matchLabels").items())),
                    tuple(expressions))


def network(value, field: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value, strict=False) if isinstance(value, str) else None
    except ValueError:
        net = None
    if net is None or net.version != 4 or "/" not in value:
        raise ValueError(f"{field}: {value!r} is not an IPv4 network in CIDR form")
    return net


def _peer(value, field: str) -> Peer:
    body = _mapping(value, field, ("podSelector", "namespaceSelector", "ipBlock"))
    if "ipBlock" in body:
        if len(body) > 1:
            raise ValueError(f"{field}: ipBlock goes alone, not with podSelector or namespaceSelector")
        block = _mapping(body["ipBlock"], f"{field}.ipBlock", ("cidr", "except"))
        cidr = network(block.get("cidr"), f"{field}.ipBlock.cidr")
        excepts = []
        for index, item in enumerate(_list(block.get("except"), f"{field}.ipBlock.except")):
            net = network(item, f"{field}.ipBlock.except[{index}]")
            if not net.subnet_of(cidr):
                raise ValueError(f"{field}.ipBlock.except[{index}]: {item} is not within cidr {cidr}")
            excepts.append(str(net))
        return Peer(cidr=str(cidr), excepts=tuple(sorted(excepts)))
    if not body:
        raise ValueError(f"{field}: give podSelector, namespaceSelector or ipBlock")
    return Peer(selector(body["podSelector"], f"{field}.podSelector") if "podSelector" in body else None,
                selector(body["namespaceSelector"], f"{field}.namespaceSelector") if "namespaceSelector" in body else None)


def _port(value, field: str) -> Port:
    body = _mapping(value, field, ("protocol", "port", "endPort"))
    protocol = body.get("protocol", "TCP")
    if protocol not in PROTOCOLS:
        raise ValueError(f"{field}.protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    port, end = body.get("port"), body.get("endPort")
    if isinstance(port, str):
        raise ValueError(f"{field}.port: {port!r} is a named port, which is not supported; give the number")
    for key, number in (("port", port), ("endPort", end)):
        if number is not None and (isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535):
            raise ValueError(f"{field}.{key}: {number!r} is not a port number (1-65535)")
    if end is not None and port is None:
        raise ValueError(f"{field}.endPort: needs port")
    if end is not None and end < port:
        raise ValueError(f"{field}.endPort: {end} is below port {port}")
    return Port(protocol.lower(), port, end if end != port else None)


def _rules(items, field: str, peers_key: str) -> tuple:
    rules = []
    for index, item in enumerate(_list(items, field)):
        where = f"{field}[{index}]"
        body = _mapping(item, where, (peers_key, "ports"))
        peers = [_peer(p, f"{where}.{peers_key}[{n}]") for n, p in enumerate(_list(body.get(peers_key), f"{where}.{peers_key}"))]
        ports = [_port(p, f"{where}.ports[{n}]") for n, p in enumerate(_list(body.get("ports"), f"{where}.ports"))]
        rules.append(Rule(tuple(peers) or None, tuple(ports) or None))
    return tuple(rules)


def normalise_policies(items, field: str = FIELD) -> list:
    """The inventory's policies as Policy tuples; ValueError names the field of the first problem."""
    policies, seen = [], {}
    for index, item in enumerate(_list(items, field)):
        where = f"{field}[{index}]"
        body = _mapping(item, where, ("apiVersion", "kind", "metadata", "spec"))
        if body.get("apiVersion", "networking.k8s.io/v1") != "networking.k8s.io/v1":
            raise ValueError(f"{where}.apiVersion: {body['apiVersion']!r} is not networking.k8s.io/v1")
        if body.get("kind", "NetworkPolicy") != "NetworkPolicy":
            raise ValueError(f"{where}.kind: {body['kind']!r} is not NetworkPolicy")
        meta = _mapping(body.get("metadata"), f"{where}.metadata", ("name", "namespace", "labels", "annotations"))
        name = _text(meta.get("name"), f"{where}.metadata.name")
        namespace = _text(meta.get("namespace", DEFAULT_NAMESPACE), f"{where}.metadata.namespace")
        if (namespace, name) in seen:
            raise ValueError(f"{where}.metadata.name: {namespace}/{name} is also {field}[{seen[namespace, name]}]")
        seen[namespace, name] = index
        spec = _mapping(body.get("spec"), f"{where}.spec", ("podSelector", "policyTypes", "ingress", "egress"))
        if "podSelector" not in spec:
            raise ValueError(f"{where}.spec.podSelector: required ({{}} selects every pod of the namespace)")
        types = spec.get("policyTypes")
        if types is None:  # Kubernetes' default: Ingress, and Egress when there are egress rules
            types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
        for number, kind in enumerate(_list(types, f"{where}.spec.policyTypes")):
            if kind not in DIRECTIONS:
                raise ValueError(f"{where}.spec.policyTypes[{number}]: {kind!r} is not Ingress or Egress")
        for kind, (key, _peers) in DIRECTIONS.items():
            if spec.get(key) and kind not in types:
                raise ValueError(f"{where}.spec.{key}: given, but policyTypes {types} leaves out {kind}")
        directions = {key: _rules(spec.get(key), f"{where}.spec.{key}", peers) if kind in types else None
                      for kind, (key, peers) in DIRECTIONS.items()}
        policies.append(Policy(name, namespace, selector(spec["podSelector"], f"{where}.spec.podSelector"),
                               directions["ingress"], directions["egress"]))
    return policies


def namespace_labels(namespaces, pods: list, field: str = "podnet_namespaces") -> dict:
    """{namespace: labels} of every namespace named by `podnet_namespaces` or by a pod, each with its name label."""
    body = namespaces if namespaces is not None else {}
    if not isinstance(body, dict):
        raise ValueError(f"{field}: must be a mapping of namespace names to {{labels}}, got {namespaces!r}")
    out = {pod.namespace: {} for pod in pods}
    for name, item in body.items():
        entry = _mapping(item, f"{field}.{name}", ("labels",))
        out[_text(name, field)] = labels_of(entry.get("labels"), f"{field}.{name}.labels")
    return {name: dict(labels, **{NAME_LABEL: name}) for name, labels in out.items()}


# --- the semantics ------------------------------------------------------------

def _selected(peer: Peer, pod: Pod, policy: Policy, namespaces: dict) -> bool:
    """Whether a selector peer of `policy` selects `pod` (never for an ipBlock)."""
    if peer.cidr is not None:
        return False
    if peer.namespaces is None:
        in_scope = pod.namespace == policy.namespace
    else:
        in_scope = peer.namespaces.matches(namespaces.get(pod.namespace, {NAME_LABEL: pod.namespace}))
    return in_scope and (peer.pods is None or peer.pods.matches(pod.labels))


def _blocked(peer: Peer) -> list:
    """An ipBlock's addresses: its CIDR less its exceptions."""
    nets = [ipaddress.ip_network(peer.cidr)]
    for excluded in peer.excepts:
        excluded = ipaddress.ip_network(excluded)
        nets = [part for net in nets for part in
                ([net] if not net.overlaps(excluded) else [] if net.subnet_of(excluded) else net.address_exclude(excluded))]
    return nets


def _policies_of(pod: Pod, policies: list, direction: str) -> list:
    return [p for p in policies if p.namespace == pod.namespace and getattr(p, direction) is not None
            and p.selector.matches(pod.labels)]


def compile_pod(pod: Pod, policies: list, pods: list, namespaces: dict, direction: str) -> list | None:
    """The pod's allow list for a direction (`ingress` or `egress`) as the network_policy module takes it:
    None when no policy isolates it, else [{peers: [CIDR] | None, ports: [{protocol, port, end_port}] | None}]."""
    chosen = _policies_of(pod, policies, direction)
    if not chosen:
        return None
    rules = []
    for policy in chosen:
        for rule in getattr(policy, direction):
            peers = None
            if rule.peers is not None:
                nets = []
                for peer in rule.peers:
                    nets += _blocked(peer) if peer.cidr else \
                        [ipaddress.ip_network(other.ip) for other in pods if _selected(peer, other, policy, namespaces)]
                peers = [str(net) for net in ipaddress.collapse_addresses(nets)]
            ports = None if rule.ports is None else [port.public() for port in rule.ports]
            entry = {"peers": peers, "ports": ports}
            if entry not in rules:
                rules.append(entry)
    return rules


def node_rules(policies: list, pods: list, namespaces: dict, node: str) -> list:
    """The network_policy module's `pods` for one node: each of its pods isolated in some direction."""
    out = []
    for pod in pods:
        if pod.node != node:
            continue
        ingress, egress = (compile_pod(pod, policies, pods, namespaces, d) for d in ("ingress", "egress"))
        if ingress is not None or egress is not None:
            out.append({"name": pod.key, "ip": pod.ip, "ingress": ingress, "egress": egress})
    return out


def _admits(policies: list, pod: Pod, direction: str, peer_ip: str, peer_pod: Pod | None, namespaces: dict,
            protocol: str, port: int | None) -> bool:
    chosen = _policies_of(pod, policies, direction)
    if not chosen:
        return True
    address = ipaddress.ip_address(peer_ip)
    for policy in chosen:
        for rule in getattr(policy, direction):
            if rule.ports is not None and not any(p.matches(protocol, port) for p in rule.ports):
                continue
            if rule.peers is None or any(
                    any(address in net for net in _blocked(peer)) if peer.cidr else
                    peer_pod is not None and _selected(peer, peer_pod, policy, namespaces) for peer in rule.peers):
                return True
    return False


def allowed(policies: list, pods: list, namespaces: dict, source: str, destination: str, protocol: str,
            port: int | None = None, nodes: dict | None = None) -> bool:
    """Whether a new flow from address `source` to address `destination` (`protocol` tcp, udp, sctp or icmp;
    `port` the destination port) is allowed: the source pod's egress and the destination pod's ingress.
    `nodes` ({node: address}): a pod and its own node always reach each other (the node's INPUT and OUTPUT
    are not filtered)."""
    by_ip, nodes = {pod.ip: pod for pod in pods}, nodes or {}
    src, dst = by_ip.get(source), by_ip.get(destination)
    if src is not None and nodes.get(src.node) == destination:
        return True
    if src is not None and not _admits(policies, src, "egress", destination, dst, namespaces, protocol, port):
        return False
    if dst is not None and nodes.get(dst.node) == source:
        return True
    return dst is None or _admits(policies, dst, "ingress", source, src, namespaces, protocol, port)
