# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nftables backend of the NAT sets in _firewall.py: `nft -j` parsing, rendering, and the `nft -f`
script. Private to this collection.

Ours is the table `ip handcni`. One `nft -f -` creates it, changes the chains, maps and map elements
of it that differ, or deletes it. Each kind has its chains and maps (`nft_kind`), its reader
(`_nft_masquerade`, `_nft_services`) and its drawing (in `nft_render`, `_nft_render_services`).
"""
from __future__ import annotations

import ipaddress
import json
import re
from typing import NamedTuple

from . import _services as svc
from ._command import failure
from ._firewall import (NODEPORTS_COMMENT, SERVICES_COMMENT, SERVICES_MASQ_COMMENT, Backend, Masquerade, NatSet, Owned,
                        address, chain_changes, chain_parts, collapse, host, masquerade_from, masquerade_source,
                        merge_kinds, plural, source_order)
from ._netlink import OWNER

NFT_FAMILY = "ip"
NFT_TABLE = "handcni"
NFT_DSTNAT = -100  # priority `dstnat` of a nat chain on the prerouting (and output) hook
NFT_SRCNAT = 100   # priority `srcnat` of a nat chain on the postrouting hook
NFT_MARK = f"0x{svc.MASQUERADE_MARK:08x}"
NFT_SERVICE_IPS = "service-ips"
NFT_SERVICE_NODEPORTS = "service-nodeports"
NFT_SERVICES_CHAINS = ("services", "prerouting", "output", "services-masquerade")
NFT_SERVICE_PREFIXES = ("service-", "external-", "local-", "endpoint-")


# --- nft -j expressions -------------------------------------------------------

class _Unrecognised(Exception):
    pass


NFT_ADDRESS_FIELDS = {("ip", "saddr"), ("ip", "daddr")}
# The keys our vmaps look up, as nft -j prints them and as we write them.
NFT_KEYS = {("payload", "ip", "daddr"): "ip daddr", ("meta", "l4proto"): "meta l4proto",
            ("payload", "th", "dport"): "th dport"}


def nft_networks(value) -> list:
    """An address expression of `nft -j` (address, prefix, range, or a set of those) as networks."""
    if isinstance(value, str):
        return [ipaddress.ip_network(value)]
    if isinstance(value, dict) and "prefix" in value:
        return [ipaddress.ip_network(f"{value['prefix']['addr']}/{value['prefix']['len']}")]
    if isinstance(value, dict) and "range" in value:
        low, high = (ipaddress.ip_address(a) for a in value["range"])
        return list(ipaddress.summarize_address_range(low, high))
    if isinstance(value, dict) and "set" in value:
        return [net for item in value["set"] for net in nft_networks(item)]
    raise _Unrecognised(value)


def nft_addresses(networks) -> str:
    """Networks in nft syntax: one alone, several as an anonymous set."""
    texts = []
    for net in ipaddress.collapse_addresses(ipaddress.ip_network(n) for n in networks):
        texts.append(str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net))
    return texts[0] if len(texts) == 1 else "{ " + ", ".join(texts) + " }"


_PLAIN = re.compile(r'^[ -!#-\[\]-~]*$')  # printable ASCII without '"' and '\\': quoted as it is


def nft_string(value: str) -> str:
    return f'"{value}"' if _PLAIN.match(value) else json.dumps(value)


def _nft_op(op: str) -> str:
    return "" if op in ("==", "in") else op + " "


class Term(NamedTuple):
    """One expression of a rule read from `nft -j`: what it matches or does, and its canonical text."""
    kind: str             # "ip saddr", "oifname", "masquerade", "dnat", "numgen", "vmap", ...
    text: str
    op: str | None = None
    value: object = None  # an address match's nft -j value (nft_networks), an interface name, a jump target, ...


def _nft_key(expr) -> str:
    """A vmap key we write (ip daddr, meta l4proto, th dport), as text."""
    if isinstance(expr, dict) and len(expr) == 1:
        (kind, body), = expr.items()
        if kind == "payload" and isinstance(body, dict):
            key = NFT_KEYS.get(("payload", body.get("protocol"), body.get("field")))
        elif kind == "meta" and isinstance(body, dict):
            key = NFT_KEYS.get(("meta", body.get("key")))
        else:
            key = None
        if key:
            return key
    raise _Unrecognised(expr)


def _nft_verdict(value) -> tuple:
    """A goto or jump verdict: (kind, target)."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, body), = value.items()
        if kind in ("goto", "jump") and isinstance(body, dict) and isinstance(body.get("target"), str):
            return kind, body["target"]
    raise _Unrecognised(value)


def _nft_is_mark(expr) -> bool:
    return expr == {"meta": {"key": "mark"}}


def _nft_vmap(value: dict) -> Term:
    key, data = value["key"], value["data"]
    if isinstance(key, dict) and "numgen" in key:
        numgen = key["numgen"]
        if numgen.get("mode") != "random" or numgen.get("offset", 0) != 0 or not isinstance(data, dict):
            raise _Unrecognised(value)
        pairs = data["set"]
        indexes = [pair[0] for pair in pairs]
        targets = [_nft_verdict(pair[1]) for pair in pairs]
        if indexes != list(range(numgen["mod"])) or any(verdict[0] != "goto" for verdict in targets):
            raise _Unrecognised(value)
        names = [verdict[1] for verdict in targets]
        listed = ", ".join(f"{index} : goto {target}" for index, target in enumerate(names))
        return Term("numgen", f"numgen random mod {numgen['mod']} vmap {{ {listed} }}", None, names)
    if isinstance(key, dict) and "concat" in key and isinstance(data, str) and data.startswith("@"):
        text = " . ".join(_nft_key(part) for part in key["concat"])
        return Term("vmap", f"{text} vmap {data}", None, data[1:])
    raise _Unrecognised(value)


def nft_term(expr: dict) -> Term:
    """One expression of `nft -j` output as a Term; raises _Unrecognised for anything we do not make."""
    if not isinstance(expr, dict) or len(expr) != 1:
        raise _Unrecognised(expr)
    (kind, value), = expr.items()
    if kind == "match":
        left, right, op = value["left"], value["right"], value["op"]
        payload = left.get("payload") if isinstance(left, dict) else None
        if payload and (payload.get("protocol"), payload.get("field")) in NFT_ADDRESS_FIELDS:
            name = f"{payload['protocol']} {payload['field']}"
            if isinstance(right, str) and "/" not in right:  # one address: as nft prints it (most of ours)
                return Term(name, f"{name} {_nft_op(op)}{address(right)}", op, right)
            return Term(name, f"{name} {_nft_op(op)}{nft_addresses(nft_networks(right))}", op, right)
        meta = left.get("meta") if isinstance(left, dict) else None
        if meta and meta.get("key") in ("iifname", "oifname") and isinstance(right, str):
            return Term(meta["key"], f"{meta['key']} {_nft_op(op)}{nft_string(right)}", op, right)
        if meta and meta.get("key") == "l4proto" and op == "==" and right in svc.PROTOCOLS:
            return Term("meta l4proto", f"meta l4proto {right}", op, right)
        numgen = left.get("numgen") if isinstance(left, dict) else None
        if numgen and numgen.get("mode") == "random" and numgen.get("offset", 0) == 0 and op == "==" \
                and isinstance(numgen.get("mod"), int) and isinstance(right, int) and not isinstance(right, bool):
            return Term("numgen ==", f"numgen random mod {numgen['mod']} {right}", op, (numgen["mod"], right))
        mask = left.get("&") if isinstance(left, dict) else None
        if mask and len(mask) == 2 and _nft_is_mark(mask[0]) and isinstance(mask[1], int) \
                and isinstance(right, int) and op == "==":
            return Term("mark", f"meta mark & 0x{mask[1]:08x} == 0x{right:08x}", op, (mask[1], right))
        raise _Unrecognised(expr)
    if kind == "mangle" and _nft_is_mark(value.get("key")):
        bits = value.get("value", {}).get("|") if isinstance(value.get("value"), dict) else None
        if bits and len(bits) == 2 and _nft_is_mark(bits[0]) and isinstance(bits[1], int):
            return Term("set mark", f"meta mark set meta mark | 0x{bits[1]:08x}", None, bits[1])
        raise _Unrecognised(expr)
    if kind == "dnat" and isinstance(value, dict) and set(value) <= {"addr", "port", "family"} \
            and value.get("family", NFT_FAMILY) == NFT_FAMILY \
            and isinstance(value.get("addr"), str) and isinstance(value.get("port"), int):
        endpoint = svc.Endpoint(address(value["addr"]), value["port"])
        return Term("dnat", f"dnat to {endpoint.text()}", None, endpoint)
    if kind in ("goto", "jump"):
        verdict, target = _nft_verdict(expr)
        return Term(verdict, f"{verdict} {target}", None, target)
    if kind == "vmap":
        return _nft_vmap(value)
    if kind == "counter":
        return Term("counter", "counter")
    if kind in ("masquerade", "accept", "drop", "return") and value is None:
        return Term(kind, kind)
    raise _Unrecognised(expr)


def nft_rule_text(texts: list, comment: str | None) -> str:
    text = " ".join(texts)
    return f"{text} comment {nft_string(comment)}" if comment is not None else text


# --- our table, by kind -------------------------------------------------------

def nft_kind(name: str, is_map: bool = False) -> str | None:
    """Which kind a chain (or map) of our table belongs to; None: no kind claims it."""
    if is_map:
        return "services" if name in (NFT_SERVICE_IPS, NFT_SERVICE_NODEPORTS) else None
    if name == "postrouting":
        return "masquerade"
    if name in NFT_SERVICES_CHAINS or name.startswith(NFT_SERVICE_PREFIXES):
        return "services"
    return None


class NftChain(NamedTuple):
    header: str  # "type nat hook postrouting priority 100; policy accept;" or "" for a regular chain
    rules: list  # canonical rule texts


class NftMap(NamedTuple):
    type: str        # "ipv4_addr . inet_proto . inet_service : verdict"
    elements: dict   # key text -> verdict text


class NftState(NamedTuple):
    exists: bool
    chains: dict          # name -> NftChain
    unrecognised: list    # texts of objects in our table we do not make
    maps: dict = {}       # name -> NftMap (never mutated)

    def same(self, other: "NftState") -> bool:
        """The same table as `other` (what equal lines() would say, without making them)."""
        if not (self.exists or other.exists):
            return True
        return (self.exists, self.chains, self.maps, self.unrecognised) == \
            (other.exists, other.chains, other.maps, other.unrecognised)

    def lines(self) -> list:
        return nft_table_lines(f"{NFT_FAMILY} {NFT_TABLE}", self) if self.exists else []


def nft_table_lines(prefix: str, state) -> list:
    """A table of ours (`state`: its maps, chains and what we do not make) as canonical `nft add` statements."""
    out = [f"add table {prefix}"]
    for name in sorted(state.maps):
        vmap = state.maps[name]
        out.append(f"add map {prefix} {name} {{ type {vmap.type}; }}")
        out += [f"add element {prefix} {name} {{ {key} : {vmap.elements[key]} }}" for key in sorted(vmap.elements)]
    for name in sorted(state.chains):
        chain = state.chains[name]
        out.append(f"add chain {prefix} {name}" + (f" {{ {chain.header} }}" if chain.header else ""))
        out += [f"add rule {prefix} {name} {rule}" for rule in chain.rules]
    return out + state.unrecognised


def nft_header(chain: dict) -> str:
    if "hook" not in chain:
        return ""
    policy = chain.get("policy", "accept")
    return f"type {chain.get('type')} hook {chain['hook']} priority {chain.get('prio')}; policy {policy};"


def _nft_map(body: dict) -> NftMap:
    """A verdict map of ours (concatenated keys, goto/jump values) from `nft -j`."""
    known = {"family", "name", "table", "type", "handle", "map", "elem"}
    if body.get("map") != "verdict" or set(body) - known:
        raise _Unrecognised(body)
    types = body["type"] if isinstance(body["type"], list) else [body["type"]]
    elements = {}
    for element in body.get("elem", []):
        if not isinstance(element, list) or len(element) != 2:
            raise _Unrecognised(element)
        key, value = element
        parts = key["concat"] if isinstance(key, dict) and "concat" in key else [key]
        if not all(isinstance(part, (str, int)) and not isinstance(part, bool) for part in parts):
            raise _Unrecognised(element)
        verdict, target = _nft_verdict(value)
        elements[" . ".join(str(part) for part in parts)] = f"{verdict} {target}"
    return NftMap(" . ".join(types) + " : verdict", elements)


# --- reading each kind back ---------------------------------------------------

def _nft_masquerade(comment: str | None, terms: list) -> Masquerade | None:
    source = masquerade_source(comment)
    if source is None or not any(t.kind == "masquerade" for t in terms):
        return None
    exclude = [net for t in terms if t.kind == "ip daddr" and t.op == "!=" for net in nft_networks(t.value)]
    oif = next((t.value for t in terms if t.kind == "oifname" and t.op == "!="), None)
    return masquerade_from(source, exclude, oif)


def _nft_services(maps: dict, rules: dict) -> tuple:
    """(services, node addresses, cluster CIDRs) read back from our maps and chains ({chain: [terms of each rule]})."""
    found, external, cidrs = {}, {}, []
    ips = maps.get(NFT_SERVICE_IPS)
    for key, verdict in sorted(ips.elements.items()) if ips else []:
        parts, target = key.split(" . "), verdict.partition(" ")[2]
        if len(parts) != 3 or not verdict.startswith(("goto service-", "goto external-", "goto local-")) \
                or parts[1] not in svc.PROTOCOLS:
            continue
        try:
            name = svc.service_name(target.partition("-")[2], "chain")
            address, port = host(parts[0]), int(parts[2])
        except ValueError:
            continue
        if not target.startswith("service-"):
            external.setdefault(name, set()).add(address)
            continue
        for terms in rules.get(target, [])[:1]:
            cidrs += [net for t in terms if t.kind == "ip saddr" and t.op == "!=" for net in nft_networks(t.value)]
        local = f"local-{name}"
        found.setdefault(name, svc.Service(name, address, port, parts[1], None, _nft_endpoints(rules, target),
                                           local=_nft_endpoints(rules, local) if local in rules else None))
    for name, addresses in external.items():
        if name in found:
            found[name] = found[name]._replace(external=tuple(sorted(addresses, key=svc.ip_key)))
    nodeports = maps.get(NFT_SERVICE_NODEPORTS)
    for key, verdict in sorted(nodeports.elements.items()) if nodeports else []:
        parts, target = key.split(" . "), verdict.partition(" ")[2]
        name = target.partition("-")[2] if verdict.startswith(("goto external-", "goto local-")) else None
        if name in found and len(parts) == 2 and parts[0] == found[name].protocol and parts[1].isdigit():
            found[name] = found[name]._replace(node_port=int(parts[1]))
    addresses = set()
    for terms in rules.get("services", []):
        if any(t.kind == "vmap" and t.value == NFT_SERVICE_NODEPORTS for t in terms):
            for term in terms:
                if term.kind == "ip daddr" and term.op == "==":
                    addresses.update(str(a) for net in nft_networks(term.value) for a in net)
    return [found[name] for name in sorted(found)], tuple(sorted(addresses, key=svc.ip_key)), collapse(cidrs)


def _nft_endpoints(rules: dict, chain: str) -> tuple:
    """The endpoints a service chain (service- or local-) picks from, sorted: the endpoint chains its rules go
    to (one numgen vmap before session 10, kept readable)."""
    endpoints = set()
    targets = [target for terms in rules.get(chain, []) for t in terms
               for target in (t.value if t.kind == "numgen" else [t.value] if t.kind == "goto" else [])]
    for target in targets:
        endpoints.update(t.value for terms in rules.get(target, []) for t in terms if t.kind == "dnat")
    return tuple(sorted(endpoints, key=svc.endpoint_key))


def nft_objects(text: str, family: str = NFT_FAMILY, table: str = NFT_TABLE) -> tuple:
    """One table of ours from `nft -j list table` output: (exists, {chain: NftChain without its rules yet},
    {map: NftMap}, texts of objects we do not make, the rules' nft -j bodies in order)."""
    try:
        items = json.loads(text)["nftables"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"nft -j printed something that is not its JSON: {text[:200]!r}") from None
    chains, maps, unrecognised, rules, exists = {}, {}, [], [], False
    for item in items:
        kind, body = next(iter(item.items())) if isinstance(item, dict) and len(item) == 1 else (None, None)
        if kind == "metainfo":
            continue
        if kind == "table" and body.get("family") == family and body.get("name") == table:
            exists = True
        elif kind == "chain":
            chains[body["name"]] = NftChain(nft_header(body), [])
        elif kind == "rule":
            rules.append(body)
        elif kind == "map":
            try:
                maps[body["name"]] = _nft_map(body)
            except (_Unrecognised, KeyError, TypeError, ValueError):
                unrecognised.append(f"# unrecognised {json.dumps(item, sort_keys=True)}")
        else:
            unrecognised.append(f"# unrecognised {json.dumps(item, sort_keys=True)}")
    return exists, chains, maps, unrecognised, rules


def parse_nft_json(text: str) -> tuple:
    """(NftState, NatSet) of our table from `nft -j list table ip handcni` output."""
    exists, chains, maps, unrecognised, rules = nft_objects(text)
    entries, terms_of = [], {}
    for rule in rules:
        chain = chains.setdefault(rule["chain"], NftChain("", []))
        comment = rule.get("comment")
        try:
            terms = [nft_term(expr) for expr in rule.get("expr", [])]
        except (_Unrecognised, KeyError, TypeError, ValueError):
            chain.rules.append(f"# unrecognised {json.dumps(rule.get('expr'), sort_keys=True)} "
                               f"comment {nft_string(comment or '')}")
            continue
        chain.rules.append(nft_rule_text([term.text for term in terms], comment))
        terms_of.setdefault(rule["chain"], []).append(terms)
        entry = _nft_masquerade(comment, terms)
        if entry:
            entries.append(entry)
    services, addresses, cidrs = _nft_services(maps, terms_of)
    nat = NatSet(tuple(sorted(entries, key=source_order)), tuple(services), addresses, cidrs)
    return NftState(exists, chains, unrecognised, maps), nat


# --- drawing each kind --------------------------------------------------------

def _nft_render_services(nat: NatSet, chains: dict, maps: dict) -> None:
    """kube-proxy's nftables layout: a verdict map from cluster IP . protocol . port to the service's
    chain, which picks an endpoint chain with numgen; node ports through a second map on the node's
    addresses, via a chain that marks for masquerade; endpoint chains mark hairpin traffic and DNAT."""
    mark = f"meta mark set meta mark | {NFT_MARK}"
    ips, nodeports = {}, {}
    for service in sorted(nat.services, key=lambda s: s.name):
        chain = f"service-{service.name}"
        ips[f"{service.cluster_ip} . {service.protocol} . {service.port}"] = f"goto {chain}"
        outside = [nft_rule_text([f"ip saddr != {nft_addresses(nat.cluster_cidrs)}", mark], service.comment)] \
            if nat.cluster_cidrs and service.endpoints else []
        chains[chain] = NftChain("", outside + _nft_pick(service, service.endpoints, chains, mark))
        # Node ports and external addresses: Cluster marks for masquerade, then the service; Local goes to
        # this node's endpoints, unmarked (the client's address is kept), and is not answered without one.
        if service.local is None:
            entry = f"external-{service.name}"
            if service.node_port or service.external:
                chains[entry] = NftChain("", [nft_rule_text([mark], service.comment),
                                              nft_rule_text([f"goto {chain}"], service.comment)])
        else:
            entry = f"local-{service.name}" if service.local else None
            if entry:
                chains[entry] = NftChain("", _nft_pick(service, service.local, chains, mark))
        if entry and service.node_port:
            nodeports[f"{service.protocol} . {service.node_port}"] = f"goto {entry}"
        for external in service.external if entry else ():
            ips[f"{external} . {service.protocol} . {service.port}"] = f"goto {entry}"
    dispatch = [nft_rule_text([f"ip daddr . meta l4proto . th dport vmap @{NFT_SERVICE_IPS}"], SERVICES_COMMENT)]
    maps[NFT_SERVICE_IPS] = NftMap("ipv4_addr . inet_proto . inet_service : verdict", ips)
    if nodeports and nat.node_addresses:
        addresses = nft_addresses(f"{node}/32" for node in nat.node_addresses)
        dispatch.append(nft_rule_text([f"ip daddr {addresses}", f"meta l4proto . th dport vmap @{NFT_SERVICE_NODEPORTS}"],
                                      NODEPORTS_COMMENT))
        maps[NFT_SERVICE_NODEPORTS] = NftMap("inet_proto . inet_service : verdict", nodeports)
    chains["services"] = NftChain("", dispatch)
    for hook in ("prerouting", "output"):
        chains[hook] = NftChain(f"type nat hook {hook} priority {NFT_DSTNAT}; policy accept;",
                                [nft_rule_text(["jump services"], OWNER)])
    chains["services-masquerade"] = NftChain(
        f"type nat hook postrouting priority {NFT_SRCNAT}; policy accept;",
        [nft_rule_text([f"meta mark & {NFT_MARK} == {NFT_MARK}", "masquerade"], SERVICES_MASQ_COMMENT)])


def _nft_pick(service: svc.Service, endpoints: tuple, chains: dict, mark: str) -> list:
    """The rules of a chain choosing one of `endpoints` at random, each an endpoint chain, which is drawn into
    `chains`: it marks hairpin traffic for masquerade and DNATs. Of N endpoints the k-th (from 0) is taken
    when a fresh `numgen random mod N-k` is 0, the last one otherwise: 1/N each, as iptables' statistic
    cascade. One anonymous `numgen ... vmap { }` per service, as kube-proxy writes it, makes nft 1.0.6 slow
    down with the square of their number (10,000 services: 29 s of `nft -f` for those rules alone)."""
    targets = []
    for endpoint in endpoints:
        target = f"endpoint-{service.name}-{endpoint.ip}-{endpoint.port}"
        targets.append(target)
        chains[target] = NftChain("", [
            nft_rule_text([f"ip saddr {endpoint.ip}", mark], service.comment),
            nft_rule_text([f"meta l4proto {service.protocol}", f"dnat to {endpoint.text()}"], service.comment)])
    count = len(targets)
    return [nft_rule_text(([f"numgen random mod {count - index} 0"] if index < count - 1 else []) + [f"goto {target}"],
                          service.comment) for index, target in enumerate(targets)]


def nft_render(nat: NatSet) -> NftState:
    if not nat:
        return NftState(False, {}, [], {})
    chains, maps = {}, {}
    if nat.masquerade:
        rules = []
        for entry in nat.masquerade:
            texts = []
            if ipaddress.ip_network(entry.source).prefixlen:  # 0.0.0.0/0 is any source: no match
                texts.append(f"ip saddr {nft_addresses([entry.source])}")
            if entry.exclude:
                texts.append(f"ip daddr != {nft_addresses(entry.exclude)}")
            if entry.out_interface_not:
                texts.append(f"oifname != {nft_string(entry.out_interface_not)}")
            texts.append("masquerade")
            rules.append(nft_rule_text(texts, entry.comment))
        chains["postrouting"] = NftChain(f"type nat hook postrouting priority {NFT_SRCNAT}; policy accept;", rules)
    if nat.services:
        _nft_render_services(nat, chains, maps)
    return NftState(True, chains, [], maps)


# --- the transaction ----------------------------------------------------------

def nft_merge(rendered: NftState, have: NftState, kinds: tuple) -> NftState:
    """The rendered chains and maps of the managed kinds, and what `have` holds of the other kinds.
    What no kind claims (and what we cannot read) is left out, so it is removed."""
    chains = dict(merge_kinds(rendered.chains.items(), have.chains.items(), kinds, lambda item: nft_kind(item[0])))
    maps = dict(merge_kinds(rendered.maps.items(), have.maps.items(), kinds, lambda item: nft_kind(item[0], True)))
    return NftState(bool(chains or maps), chains, [], maps)


def _nft_summary(state: NftState) -> str:
    rules = [rule for chain in state.chains.values() for rule in chain.rules]
    names = f" {', '.join(sorted(state.chains))}" if len(state.chains) <= 3 else ""
    text = f"{plural(state.chains, 'chain')}{names}; {plural(rules, 'rule')}"
    if state.maps:
        elements = [key for vmap in state.maps.values() for key in vmap.elements]
        text += f"; {plural(state.maps, 'map')} with {plural(elements, 'element')}"
    return text


def nft_create_lines(state: NftState) -> list:
    """`nft -f` input making the whole table: chains first (maps and rules refer to them), then maps,
    their elements and the rules. What we could not read is not written."""
    prefix = f"{NFT_FAMILY} {NFT_TABLE}"
    lines = [f"add table {prefix}"]
    for name in sorted(state.chains):
        header = state.chains[name].header
        lines.append(f"add chain {prefix} {name}" + (f" {{ {header} }}" if header else ""))
    for name in sorted(state.maps):
        vmap = state.maps[name]
        lines.append(f"add map {prefix} {name} {{ type {vmap.type}; }}")
        if vmap.elements:
            lines.append(f"add element {prefix} {name} {{ "
                         + ", ".join(f"{key} : {vmap.elements[key]}" for key in sorted(vmap.elements)) + " }")
    for name in sorted(state.chains):
        lines += [f"add rule {prefix} {name} {rule}" for rule in state.chains[name].rules if not rule.startswith("#")]
    return lines


def _nft_replace_needed(have: NftState, want: NftState) -> bool:
    """Changes one transaction of flushes and adds cannot make: no table yet, objects we cannot read,
    a base chain's hook or priority, a map's type."""
    return (not have.exists or bool(have.unrecognised)
            or any(name in have.chains and have.chains[name].header != chain.header
                   for name, chain in want.chains.items())
            or any(name in have.maps and have.maps[name].type != vmap.type for name, vmap in want.maps.items()))


def nft_script(have: NftState, want: NftState) -> tuple:
    """nft -f input turning our table from `have` into `want` in one transaction.

    Only what differs is named: new chains and maps are added, chains whose rules differ are flushed
    and written again, map elements are deleted and added one by one, chains and maps no longer wanted
    are flushed and deleted. A new table, or one holding what we cannot read, is made whole
    (add+delete first: works whether it exists or not)."""
    prefix = f"{NFT_FAMILY} {NFT_TABLE}"
    if not want.exists:
        return f"add table {prefix}\ndelete table {prefix}\n", f"nft -f: delete table {prefix}"
    if _nft_replace_needed(have, want):
        lines = [f"add table {prefix}", f"delete table {prefix}"] + nft_create_lines(want)
        verb = "replace" if have.exists else "create"
        return "\n".join(lines) + "\n", f"nft -f: {verb} table {prefix} ({_nft_summary(want)})"
    lines, parts = [], []
    # The base chains' headers are the same here (else the table is made whole): chains differ by their rules.
    new, changed, stale = chain_changes(have.chains, want.chains)
    for name in new:
        header = want.chains[name].header
        lines.append(f"add chain {prefix} {name}" + (f" {{ {header} }}" if header else ""))
    for name in sorted(set(want.maps) - set(have.maps)):
        lines.append(f"add map {prefix} {name} {{ type {want.maps[name].type}; }}")
        parts.append(f"add map {name}")
    for name in sorted(set(want.maps) & set(have.maps)):
        old, now = have.maps[name].elements, want.maps[name].elements
        gone = sorted(key for key in old if now.get(key) != old[key])
        if gone:
            lines.append(f"delete element {prefix} {name} {{ {', '.join(gone)} }}")
            parts.append(f"delete {plural(gone, 'element')} from {name}")
    for name in sorted(want.maps):
        old, now = have.maps[name].elements if name in have.maps else {}, want.maps[name].elements
        fresh = sorted(key for key in now if old.get(key) != now[key])
        if fresh:
            lines.append(f"add element {prefix} {name} {{ {', '.join(f'{key} : {now[key]}' for key in fresh)} }}")
            parts.append(f"add {plural(fresh, 'element')} to {name}")
    for name in changed:
        lines.append(f"flush chain {prefix} {name}")
        lines += [f"add rule {prefix} {name} {rule}" for rule in want.chains[name].rules]
    for name in new:
        lines += [f"add rule {prefix} {name} {rule}" for rule in want.chains[name].rules]
    # Stale chains are emptied, then the maps whose elements jump to them go, then the chains.
    lines += [f"flush chain {prefix} {name}" for name in stale]
    for name in sorted(set(have.maps) - set(want.maps)):
        lines.append(f"delete map {prefix} {name}")
        parts.append(f"delete map {name}")
    lines += [f"delete chain {prefix} {name}" for name in stale]
    parts = (chain_parts("add", new, {n: want.chains[n].rules for n in new}) + chain_parts("write", changed, {
        n: want.chains[n].rules for n in changed}) + chain_parts("delete", stale) + parts)
    return "\n".join(lines) + "\n", f"nft -f: table {prefix}: " + ", ".join(parts)


class Nftables(Backend):
    """What the nftables backends share: one table of ours (`family`, `table`), read with `nft -j`, written
    with `nft -f -`."""
    name = "nftables"
    tools = ("nft",)
    write_argv = ["nft", "-f", "-"]
    family, table = NFT_FAMILY, NFT_TABLE

    def read(self) -> Owned:
        argv = ["nft", "-j", "list", "table", self.family, self.table]
        rc, out, err = self.runner.run(argv)
        if rc != 0 and "No such file or directory" in (err or ""):
            return self.parse(None)  # the table does not exist: nothing of ours
        if rc != 0:
            raise failure(argv, rc, out, err)
        return self.parse(out)


class NftablesNat(Nftables):

    @staticmethod
    def parse(text: str | None) -> Owned:
        state, nat = parse_nft_json(text) if text is not None else (NftState(False, {}, [], {}), NatSet())
        return Owned(nat, state)

    draw = staticmethod(nft_render)
    merge = staticmethod(nft_merge)

    @staticmethod
    def probe(state: NftState) -> list | None:
        """List one chain of our table: fails when the ruleset or our table was flushed."""
        return ["nft", "list", "chain", NFT_FAMILY, NFT_TABLE, sorted(state.chains)[0]] if state.chains else None
    script = staticmethod(nft_script)
