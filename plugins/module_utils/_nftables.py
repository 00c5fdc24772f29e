# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nftables backend of the NAT sets in _firewall.py: `nft -j` parsing, rendering, and the `nft -f`
script. Private to this collection (what every nftables backend shares is in _nft.py).

Ours is the table `ip handcni`, and for IPv6 `ip6 handcni` (the same chains and maps, in the IPv6 family).
One `nft -f -` creates them, changes the chains, maps and map elements that differ, or deletes a table
holding nothing of ours. Each kind has its chains and maps (`nft_kind`), its reader (`_nft_masquerade`,
`_nft_services`) and its drawing (in `nft_render`, `_nft_render_services`).
"""
from __future__ import annotations

import ipaddress
import json
from typing import NamedTuple

from . import _services as svc
from ._firewall import (NODEPORTS_COMMENT, SERVICES_COMMENT, SERVICES_MASQ_COMMENT, Families, Masquerade, NatSet, Owned,
                        chain_changes, chain_parts, collapse, draw_families, host, host_network, masquerade_from, masquerade_source,
                        merge_families, merge_kinds, plural, source_order)
from ._netlink import OWNER, nf_table_exists
# _policy_rules.py takes the shared ones from here too
from ._nft import (NftChain, NftMap, Nftables, _Unrecognised, nft_addresses, nft_networks, nft_objects,
                   nft_rule_text, nft_string, nft_table_lines, nft_term)

NFT_FAMILY = "ip"
NFT_FAMILIES = {4: NFT_FAMILY, 6: "ip6"}
NFT_ADDRESS_TYPES = {"ip": "ipv4_addr", "ip6": "ipv6_addr"}
NFT_TABLE = "handcni"
NFT_DSTNAT = -100  # priority `dstnat` of a nat chain on the prerouting (and output) hook
NFT_SRCNAT = 100   # priority `srcnat` of a nat chain on the postrouting hook
NFT_MARK = f"0x{svc.MASQUERADE_MARK:08x}"
NFT_SERVICE_IPS = "service-ips"
NFT_SERVICE_NODEPORTS = "service-nodeports"
NFT_SERVICES_CHAINS = ("services", "prerouting", "output", "services-masquerade")
NFT_SERVICE_PREFIXES = ("service-", "external-", "local-", "endpoint-")


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


class NftState(NamedTuple):
    exists: bool
    chains: dict          # name -> NftChain
    unrecognised: list    # texts of objects in our table we do not make
    maps: dict = {}       # name -> NftMap (never mutated)
    family: str = NFT_FAMILY  # of the table: ip, or ip6

    def same(self, other: "NftState") -> bool:
        """The same table as `other` (what equal lines() would say, without making them)."""
        if not (self.exists or other.exists):
            return True
        return (self.exists, self.chains, self.maps, self.unrecognised) == \
            (other.exists, other.chains, other.maps, other.unrecognised)

    def lines(self) -> list:
        return nft_table_lines(self.prefix, self) if self.exists else []

    @property
    def prefix(self) -> str:
        return f"{self.family} {NFT_TABLE}"


# --- reading each kind back ---------------------------------------------------

def _nft_masquerade(comment: str | None, terms: list, version: int) -> Masquerade | None:
    source = masquerade_source(comment)
    if source is None or not any(t.kind == "masquerade" for t in terms):
        return None
    daddr = f"{NFT_FAMILIES[version]} daddr"
    exclude = [net for t in terms if t.kind == daddr and t.op == "!=" for net in nft_networks(t.value)]
    oif = next((t.value for t in terms if t.kind == "oifname" and t.op == "!="), None)
    return masquerade_from(source, exclude, oif, version)


def _nft_services(maps: dict, rules: dict, version: int = 4) -> tuple:
    """(services, node addresses, cluster CIDRs) read back from our maps and chains ({chain: [terms of each rule]})
    of family `version`'s table."""
    found, external, cidrs, family = {}, {}, [], NFT_FAMILIES[version]
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
            cidrs += [net for t in terms if t.kind == f"{family} saddr" and t.op == "!=" for net in nft_networks(t.value)]
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
                if term.kind == f"{family} daddr" and term.op == "==":
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


def parse_nft_json(text: str | None, version: int = 4) -> tuple:
    """(NftState, NatSet) of our table of family `version` from `nft -j list table ip[6] handcni` output (None:
    the table does not exist)."""
    family = NFT_FAMILIES[version]
    if text is None:
        return NftState(False, {}, [], {}, family), NatSet()
    exists, chains, maps, unrecognised, rules = nft_objects(text, family, NFT_TABLE)
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
        entry = _nft_masquerade(comment, terms, version)
        if entry:
            entries.append(entry)
    services, addresses, cidrs = _nft_services(maps, terms_of, version)
    nat = NatSet(tuple(sorted(entries, key=source_order)), tuple(services), addresses, cidrs)
    return NftState(exists, chains, unrecognised, maps, family), nat


# --- drawing each kind --------------------------------------------------------

def _nft_render_services(nat: NatSet, chains: dict, maps: dict, family: str = NFT_FAMILY) -> None:
    """kube-proxy's nftables layout: a verdict map from cluster IP . protocol . port to the service's
    chain, which picks an endpoint chain with numgen; node ports through a second map on the node's
    addresses, via a chain that marks for masquerade; endpoint chains mark hairpin traffic and DNAT."""
    mark = f"meta mark set meta mark | {NFT_MARK}"
    ips, nodeports = {}, {}
    for service in sorted(nat.services, key=lambda s: s.name):
        chain = f"service-{service.name}"
        ips[f"{service.cluster_ip} . {service.protocol} . {service.port}"] = f"goto {chain}"
        outside = [nft_rule_text([f"{family} saddr != {nft_addresses(nat.cluster_cidrs)}", mark], service.comment)] \
            if nat.cluster_cidrs and service.endpoints else []
        chains[chain] = NftChain("", outside + _nft_pick(service, service.endpoints, chains, mark, family))
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
                chains[entry] = NftChain("", _nft_pick(service, service.local, chains, mark, family))
        if entry and service.node_port:
            nodeports[f"{service.protocol} . {service.node_port}"] = f"goto {entry}"
        for external in service.external if entry else ():
            ips[f"{external} . {service.protocol} . {service.port}"] = f"goto {entry}"
    dispatch = [nft_rule_text([f"{family} daddr . meta l4proto . th dport vmap @{NFT_SERVICE_IPS}"], SERVICES_COMMENT)]
    maps[NFT_SERVICE_IPS] = NftMap(f"{NFT_ADDRESS_TYPES[family]} . inet_proto . inet_service : verdict", ips)
    if nodeports and nat.node_addresses:
        addresses = nft_addresses(host_network(node) for node in nat.node_addresses)
        dispatch.append(nft_rule_text([f"{family} daddr {addresses}", f"meta l4proto . th dport vmap @{NFT_SERVICE_NODEPORTS}"],
                                      NODEPORTS_COMMENT))
        maps[NFT_SERVICE_NODEPORTS] = NftMap("inet_proto . inet_service : verdict", nodeports)
    chains["services"] = NftChain("", dispatch)
    for hook in ("prerouting", "output"):
        chains[hook] = NftChain(f"type nat hook {hook} priority {NFT_DSTNAT}; policy accept;",
                                [nft_rule_text(["jump services"], OWNER)])
    chains["services-masquerade"] = NftChain(
        f"type nat hook postrouting priority {NFT_SRCNAT}; policy accept;",
        [nft_rule_text([f"meta mark & {NFT_MARK} == {NFT_MARK}", "masquerade"], SERVICES_MASQ_COMMENT)])


def _nft_pick(service: svc.Service, endpoints: tuple, chains: dict, mark: str, family: str = NFT_FAMILY) -> list:
    """The rules of a chain choosing one of `endpoints` at random, each an endpoint chain, which is drawn into
    `chains`: it marks hairpin traffic for masquerade and DNATs. Of N endpoints the k-th (from 0) is taken
    when a fresh `numgen random mod N-k` is 0, the last one otherwise: 1/N each, as iptables' statistic
    cascade. One anonymous `numgen ... vmap { }` per service, as kube-proxy writes it, makes nft 1.0.6 slow
    down with the square of their number (10,000 services: 29 s of `nft -f` for those rules alone)."""
    targets = []
    for endpoint in endpoints:
        # an IPv6 address's ':' cannot be in a chain name: '.' instead
        target = f"endpoint-{service.name}-{endpoint.ip.replace(':', '.')}-{endpoint.port}"
        targets.append(target)
        chains[target] = NftChain("", [
            nft_rule_text([f"{family} saddr {endpoint.ip}", mark], service.comment),
            nft_rule_text([f"meta l4proto {service.protocol}", f"dnat to {endpoint.text()}"], service.comment)])
    count = len(targets)
    return [nft_rule_text(([f"numgen random mod {count - index} 0"] if index < count - 1 else []) + [f"goto {target}"],
                          service.comment) for index, target in enumerate(targets)]


def nft_render(nat: NatSet, version: int = 4) -> NftState:
    """Our table of family `version` holding `nat` (of that family)."""
    family = NFT_FAMILIES[version]
    if not nat:
        return NftState(False, {}, [], {}, family)
    chains, maps = {}, {}
    if nat.masquerade:
        rules = []
        for entry in nat.masquerade:
            texts = []
            if ipaddress.ip_network(entry.source).prefixlen:  # 0.0.0.0/0 (::/0) is any source: no match
                texts.append(f"{family} saddr {nft_addresses([entry.source])}")
            if entry.exclude:
                texts.append(f"{family} daddr != {nft_addresses(entry.exclude)}")
            if entry.out_interface_not:
                texts.append(f"oifname != {nft_string(entry.out_interface_not)}")
            texts.append("masquerade")
            rules.append(nft_rule_text(texts, entry.comment))
        chains["postrouting"] = NftChain(f"type nat hook postrouting priority {NFT_SRCNAT}; policy accept;", rules)
    if nat.services:
        _nft_render_services(nat, chains, maps, family)
    return NftState(True, chains, [], maps, family)


# --- the transaction ----------------------------------------------------------

def nft_merge(rendered: NftState, have: NftState, kinds: tuple) -> NftState:
    """The rendered chains and maps of the managed kinds, and what `have` holds of the other kinds.
    What no kind claims (and what we cannot read) is left out, so it is removed."""
    chains = dict(merge_kinds(rendered.chains.items(), have.chains.items(), kinds, lambda item: nft_kind(item[0])))
    maps = dict(merge_kinds(rendered.maps.items(), have.maps.items(), kinds, lambda item: nft_kind(item[0], True)))
    return NftState(bool(chains or maps), chains, [], maps, rendered.family)


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
    prefix = state.prefix
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


def nft_script(have: Families, want: Families) -> tuple:
    """nft -f input turning our tables from `have` into `want` in one transaction: each table that differs."""
    parts = [nft_table_script(old, new) for _version, old, new in have.changed(want)]
    return "".join(script for script, _what in parts), "nft -f: " + "; ".join(what for _script, what in parts)


def nft_table_script(have: NftState, want: NftState) -> tuple:
    """(nft -f input, what it does) turning one table of ours from `have` into `want`.

    Only what differs is named: new chains and maps are added, chains whose rules differ are flushed
    and written again, map elements are deleted and added one by one, chains and maps no longer wanted
    are flushed and deleted. A new table, or one holding what we cannot read, is made whole
    (add+delete first: works whether it exists or not)."""
    prefix = want.prefix
    if not want.exists:
        return f"add table {prefix}\ndelete table {prefix}\n", f"delete table {prefix}"
    if _nft_replace_needed(have, want):
        lines = [f"add table {prefix}", f"delete table {prefix}"] + nft_create_lines(want)
        verb = "replace" if have.exists else "create"
        return "\n".join(lines) + "\n", f"{verb} table {prefix} ({_nft_summary(want)})"
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
    return "\n".join(lines) + "\n", f"table {prefix}: " + ", ".join(parts)


class NftablesNat(Nftables):
    """Our tables `ip handcni` and `ip6 handcni`, written in one `nft -f -`. The IPv6 one is listed only where
    the kernel has it (asked without a process), so an IPv4-only node runs one `nft` to read, as before."""
    family, table = NFT_FAMILY, NFT_TABLE

    def read(self) -> Owned:
        six = nf_table_exists(self.runner.netns, NFT_FAMILIES[6], self.table) is not False
        return self.parse(self.listed(NFT_FAMILY), self.listed(NFT_FAMILIES[6]) if six else None)

    @staticmethod
    def parse(text: str | None, text6: str | None = None) -> Owned:
        """Our tables from `nft -j list table` output of each family (None: that table does not exist)."""
        (four, nat), (six, nat6) = parse_nft_json(text, 4), parse_nft_json(text6, 6)
        return Owned(NatSet(nat.masquerade + nat6.masquerade,
                            tuple(sorted(nat.services + nat6.services, key=svc.service_order)),
                            nat.node_addresses + nat6.node_addresses, nat.cluster_cidrs + nat6.cluster_cidrs),
                     Families(four, six))

    draw = staticmethod(draw_families(nft_render))
    merge = staticmethod(merge_families(nft_merge))
    script = staticmethod(nft_script)

    @staticmethod
    def probe(state: Families) -> list | None:
        """List one chain of our tables, a base chain where there is one (the services' endpoints do not change
        it): fails when the ruleset or our table was flushed."""
        table = next((table for table in state[:2] if table.chains), None)
        if table is None:
            return None
        chain = next((name for name in ("postrouting", "prerouting") if name in table.chains), min(table.chains))
        return ["nft", "list", "chain", table.family, NFT_TABLE, chain]
