# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NAT rules as owned sets, for iptables and nftables. Private to this collection.

Two kinds of rules, each a set we own:
- masquerade: pod egress through the node's address (seed lab 3);
- services: ClusterIP and NodePort DNAT to endpoints chosen at random, with a masquerade
  mark for node-port and hairpin traffic (seed labs 4 and 5), as kube-proxy writes them.

What we make is ours by construction, so it can be rewritten:
- iptables: chains named HANDCNI-* in table nat, entered from the built-in chains by
  jump rules carrying the comment OWNER; every rule carries an OWNER comment. One
  `iptables-restore --noflush` rewrites the chains of ours that differ, deletes ours no
  longer wanted and names nothing else.
- nftables: the table `ip handcni`. One `nft -f -` creates it, changes the chains, maps
  and map elements of it that differ, or deletes it.

A run manages some kinds (those it is given); what is ours of the other kinds is carried
over untouched. Each backend reads what is ours into `Owned`: canonical text lines (what
the diff shows and what is compared) and the model read back from them (kept, or carried
to the other backend, when not pruned). The desired `NatSet` renders to the same lines,
so "no change" is plain equality. Everything but Backend.read/apply is pure;
bad input raises ValueError, a failing tool CommandError (an OSError); the tools run through _command.Runner.
"""
from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import shlex
from typing import NamedTuple

from . import _services as svc
from . import _validate as validate
from ._command import Runner, failure
from ._netlink import OWNER

KINDS = ("masquerade", "services")

IPT_TABLE = "nat"
IPT_MADE_DIR = "/run/handcni"  # iptables-nat-made.NETNS: a mark per netns whose `table ip nat` we made
IPT_PREFIX = "HANDCNI-"
IPT_POSTROUTING = "HANDCNI-POSTROUTING"
IPT_SERVICES = "HANDCNI-SERVICES"            # PREROUTING and OUTPUT: cluster IPs, then node ports
IPT_NODEPORTS = "HANDCNI-NODEPORTS"          # node ports on the node's addresses
IPT_SERVICES_MASQ = "HANDCNI-SERVICES-MASQ"  # POSTROUTING: masquerade what the services marked
IPT_SVC = "HANDCNI-SVC-"                     # one per service: pick an endpoint at random
IPT_EXT = "HANDCNI-EXT-"                     # one per node port: mark, then the service
IPT_SEP = "HANDCNI-SEP-"                     # one per endpoint: hairpin mark, DNAT
IPT_MARK = f"{svc.MASQUERADE_MARK:#x}/{svc.MASQUERADE_MARK:#x}"
NFT_FAMILY = "ip"
NFT_TABLE = "handcni"
NFT_DSTNAT = -100  # priority `dstnat` of a nat chain on the prerouting (and output) hook
NFT_SRCNAT = 100   # priority `srcnat` of a nat chain on the postrouting hook
NFT_MARK = f"0x{svc.MASQUERADE_MARK:08x}"
NFT_SERVICE_IPS = "service-ips"
NFT_SERVICE_NODEPORTS = "service-nodeports"
NFT_SERVICES_CHAINS = ("services", "prerouting", "output", "services-masquerade")
NFT_SERVICE_PREFIXES = ("service-", "external-", "endpoint-")
MASQUERADE_COMMENT = f"{OWNER} masquerade"
SERVICES_COMMENT = f"{OWNER} services"
NODEPORTS_COMMENT = f"{OWNER} nodeports"
SERVICES_MASQ_COMMENT = f"{OWNER} services masquerade"
# Characters an interface name may have here: iptables-restore and nft take them unquoted.
_FIREWALL_IFNAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_IPT_BARE = re.compile(r"^[A-Za-z0-9_.:/=@%,+!-]+$")

MASQUERADE_SPEC = dict(
    source=dict(type="str", required=True),
    exclude=dict(type="list", elements="str", default=[]),
    out_interface_not=dict(type="str"),
)


# --- the desired set ----------------------------------------------------------

class Masquerade(NamedTuple):
    """Masquerade traffic from `source` unless it goes to an `exclude` network or out `out_interface_not`."""
    source: str
    exclude: tuple = ()
    out_interface_not: str | None = None

    @property
    def comment(self) -> str:
        return f"{MASQUERADE_COMMENT} {self.source}"

    def public(self) -> dict:
        return {"source": self.source, "exclude": list(self.exclude), "out_interface_not": self.out_interface_not}


class NatSet(NamedTuple):
    """Everything of ours in one namespace; empty means nothing of ours exists.

    `node_addresses` are where node ports listen; they go with the services."""
    masquerade: tuple = ()
    services: tuple = ()
    node_addresses: tuple = ()

    def __bool__(self) -> bool:
        return bool(self.masquerade or self.services)

    def public(self) -> dict:
        return {"masquerade": [e.public() for e in self.masquerade],
                "services": [s.public() for s in self.services],
                "node_addresses": list(self.node_addresses) if self.services else []}


def managed_kinds(params: dict) -> tuple:
    """The kinds a run manages: those whose option is given (node addresses go with the services); none
    given means all (e.g. remove everything)."""
    given = {kind for kind in KINDS if params.get(kind) is not None}
    if params.get("node_addresses") is not None:
        given.add("services")
    return tuple(kind for kind in KINDS if kind in given) or KINDS


def merged(sets) -> NatSet:
    """Several backends' sets as one: the first holding an entry (by source, by name) wins."""
    masquerade, services, addresses = {}, {}, ()
    for nat in sets:
        for entry in nat.masquerade:
            masquerade.setdefault(entry.source, entry)
        for service in nat.services:
            services.setdefault(service.name, service)
        addresses = addresses or (nat.node_addresses if nat.services else ())
    return NatSet(tuple(sorted(masquerade.values(), key=source_order)),
                  tuple(sorted(services.values(), key=lambda s: s.name)), addresses)


def carried(target: NatSet, have: NatSet, kinds) -> NatSet:
    """What a backend holds after a run: the target for the managed kinds, what it had for the others."""
    services = target if "services" in kinds else have
    return NatSet(target.masquerade if "masquerade" in kinds else have.masquerade,
                  services.services, services.node_addresses)


def _ipv4_network(value, field: str) -> ipaddress.IPv4Network:
    net = ipaddress.ip_network(validate.network(value, field))
    if net.version != 4:
        raise ValueError(f"{field}: {value!r} is not an IPv4 network (IPv6 is not supported yet)")
    return net


def collapse(networks) -> tuple:
    """Networks as the kernel keeps an interval set: overlaps and neighbours merged, sorted."""
    return tuple(str(n) for n in ipaddress.collapse_addresses(networks))


def firewall_ifname(value, field: str) -> str:
    validate.ifname(value, field)
    if not _FIREWALL_IFNAME.fullmatch(value):
        raise ValueError(f"{field}: interface name {value!r} has characters a firewall rule cannot take "
                         "(use letters, digits, '_', '.', '-')")
    return value


def normalise_masquerade(item: dict, field: str) -> Masquerade:
    source = _ipv4_network(item.get("source"), f"{field}.source")
    excludes = []
    for index, value in enumerate(item.get("exclude") or []):
        net = _ipv4_network(value, f"{field}.exclude[{index}]")
        if net.prefixlen == 0:
            raise ValueError(f"{field}.exclude[{index}]: {value!r} excludes every destination; "
                             "remove the masquerade entry instead")
        excludes.append(net)
    oif = item.get("out_interface_not")
    return Masquerade(
        source=str(source),
        exclude=collapse(excludes),
        out_interface_not=firewall_ifname(oif, f"{field}.out_interface_not") if oif else None,
    )


def source_order(entry: Masquerade) -> tuple:
    return validate.address_order(entry.source)


def check_overlap(entries: list, field: str, listed: int) -> None:
    """Sources must not overlap: a packet then belongs to one entry, so its excludes are exact.

    `entries[:listed]` are `field`'s items, in order; the rest are ours already and kept."""
    nets = [ipaddress.ip_network(e.source) for e in entries]
    for j in range(len(entries)):
        for i in range(j):
            if not nets[i].overlaps(nets[j]):
                continue
            if j < listed:
                raise ValueError(f"{field}[{j}].source: {entries[j].source} overlaps "
                                 f"{field}[{i}].source {entries[i].source}")
            if i < listed:
                raise ValueError(f"{field}[{i}].source: {entries[i].source} overlaps {entries[j].source}, "
                                 "which handcni.podnet masquerades already (list it too, or use prune)")


def normalise_masquerades(items, field: str = "masquerade") -> list:
    entries = [normalise_masquerade(item, f"{field}[{i}]") for i, item in enumerate(items or [])]
    check_overlap(entries, field, len(entries))
    return entries


def wanted(listed: list, have: list, state: str, prune: bool, field: str = "masquerade") -> NatSet:
    """The masquerade set one backend should hold after this run.

    present: the listed entries, plus (unless pruned) entries of ours that are not listed.
    absent: what is ours minus the listed sources; with none listed, nothing."""
    sources = {e.source for e in listed}
    if state == "absent":
        keep = [e for e in have if e.source not in sources] if listed else []
        return NatSet(tuple(sorted(keep, key=source_order)))
    kept, seen = [], set(sources)
    for entry in [] if prune else have:
        if entry.source not in seen:
            seen.add(entry.source)
            kept.append(entry)
    check_overlap(list(listed) + kept, field, len(listed))
    return NatSet(tuple(sorted(list(listed) + kept, key=source_order)))


def _entry_from(source_text: str, exclude: list, oif: str | None) -> Masquerade | None:
    """An entry read back from the kernel; None if its comment does not name a network."""
    try:
        source = ipaddress.ip_network(source_text)
    except ValueError:
        return None
    return Masquerade(str(source), collapse(exclude), oif)


# --- the transaction base -------------------------------------------------------

class Owned:
    """What one backend holds of ours: the model read back (or wanted) and the backend's own state
    (`detail`, an IptState or NftState), whose canonical text lines the diff shows. The lines of a large
    set cost time, so they are made only when asked for; states compare without them."""

    def __init__(self, nat: NatSet, detail):
        self.nat = nat
        self.detail = detail
        self._lines = None

    @property
    def lines(self) -> list:
        if self._lines is None:
            self._lines = self.detail.lines()
        return self._lines

    @property
    def masquerade(self) -> list:
        return list(self.nat.masquerade)


class Transaction:
    """One atomic change of one backend: the command, its input, and the state before and after."""

    def __init__(self, backend: str, description: str, argv: list, script: str, have: Owned, want: Owned):
        self.backend, self.description, self.argv, self.script = backend, description, argv, script
        self._have, self._want = have, want

    @property
    def before(self) -> list:
        return self._have.lines

    @property
    def after(self) -> list:
        return self._want.lines

    def public(self) -> dict:
        return {"backend": self.backend, "argv": self.argv, "input": self.script}


class Backend:
    """One firewall backend. Subclasses read/parse/render/merge/script; the rest is shared."""
    name = ""
    tools: tuple = ()
    write_argv: list = []

    def __init__(self, runner: Runner):
        self.runner = runner

    def available(self) -> bool:
        return self.runner.available(*self.tools)

    def read(self) -> Owned:
        raise NotImplementedError

    def render(self, nat: NatSet, kinds: tuple = KINDS, have: Owned | None = None) -> Owned:
        """The wanted state: `nat` for the managed kinds, plus what `have` holds of the other kinds."""
        raise NotImplementedError

    def script(self, have: Owned, want: Owned) -> tuple:
        """(input for write_argv, description) turning `have` into `want`."""
        raise NotImplementedError

    def plan(self, have: Owned, nat: NatSet, kinds: tuple = KINDS) -> Transaction | None:
        want = self.render(nat, kinds, have)
        if have.detail.same(want.detail):
            return None
        script, description = self.script(have, want)
        return Transaction(self.name, description, list(self.write_argv), script, have, want)

    def apply(self, transaction: Transaction) -> None:
        self.runner.check(transaction.argv, transaction.script)


def _count(items, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _chain_parts(verb: str, names: list, rules: dict | None = None) -> list:
    """'write chain X (2 rules)' for a few chains, 'write 3000 chains' for many."""
    if len(names) > 3:
        return [f"{verb} {len(names)} chains"]
    return [f"{verb} chain {name}" + (f" ({_count(rules[name], 'rule')})" if rules is not None else "")
            for name in names]


def _host(value: str) -> str:
    """'11.96.10.3/32' or '11.96.10.3' as the address; ValueError for a wider network."""
    address, dummy, length = value.partition("/")
    if length not in ("", "32"):
        raise ValueError(value)
    return _address(address)


# --- iptables -------------------------------------------------------------------

# A token of iptables-save: a "quoted string" (backslash escapes) or a bare word, then a blank or the end.
_IPT_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"\'\\]+))(?=\s|$)')
_IPT_UNESCAPE = re.compile(r'\\([\\"$`])')


_IPT_QUOTED: dict = {}  # token -> as written in a line; the same few tokens come back thousands of times


def ipt_quote(token: str) -> str:
    quoted = _IPT_QUOTED.get(token)
    if quoted is None:
        quoted = token if _IPT_BARE.fullmatch(token) else \
            '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(_IPT_QUOTED) < 100000:
            _IPT_QUOTED[token] = quoted
    return quoted


def ipt_line(tokens) -> str:
    return " ".join(map(ipt_quote, tokens))


def _ipt_split(line: str) -> list | None:
    """Split as shlex does, fast for what iptables-save prints; None when it is not that simple."""
    if "\\" not in line and "'" not in line:
        parts = line.split('"')
        if len(parts) == 1:
            return line.split()
        # one quoted word (a rule comment), standing alone between blanks
        if len(parts) == 3 and (not parts[0] or parts[0][-1] in " \t") and (not parts[2] or parts[2][0] in " \t"):
            return parts[0].split() + [parts[1]] + parts[2].split()
    tokens, pos, text = [], 0, line.rstrip()
    while pos < len(text):
        match = _IPT_TOKEN.match(text, pos)
        if match is None:
            return None
        quoted, bare = match.groups()
        tokens.append(bare if bare is not None else _IPT_UNESCAPE.sub(r"\1", quoted))
        pos = match.end()
    return tokens


def ipt_tokens(line: str) -> tuple | None:
    """A rule line of iptables-save as tokens ([counters] dropped); None if it does not split."""
    tokens = _ipt_split(line)
    if tokens is None:
        try:
            tokens = shlex.split(line)
        except ValueError:
            return None
    if tokens and re.fullmatch(r"\[\d+:\d+\]", tokens[0]):
        tokens = tokens[1:]
    return tuple(tokens)


def ipt_comment(tokens: tuple) -> str | None:
    for index, token in enumerate(tokens[:-1]):
        if token == "--comment":
            return tokens[index + 1]
    return None


def is_ours(comment: str | None) -> bool:
    return comment is not None and (comment == OWNER or comment.startswith(OWNER + " "))


def ipt_kind(chain: str) -> str | None:
    """Which kind a chain of ours (or a jump into it) belongs to; None: no kind claims it."""
    if chain == IPT_POSTROUTING:
        return "masquerade"
    if chain in (IPT_SERVICES, IPT_NODEPORTS, IPT_SERVICES_MASQ) or chain.startswith((IPT_SVC, IPT_EXT, IPT_SEP)):
        return "services"
    return None


class IptState(NamedTuple):
    """Our chains (name -> rule token tuples, in order) and our rules in other chains: the jumps into ours."""
    chains: dict
    jumps: list

    def same(self, other: "IptState") -> bool:
        """The same rules of ours as `other` (what equal lines() would say, without making them)."""
        return self.chains == other.chains and sorted(self.jumps) == sorted(other.jumps)

    def lines(self) -> list:
        out = [f":{name} - [0:0]" for name in sorted(self.chains)]
        out += sorted(ipt_line(jump) for jump in self.jumps)
        for name in sorted(self.chains):
            out += [ipt_line(rule) for rule in self.chains[name]]
        return out


def parse_iptables_save(text: str, table: str = IPT_TABLE) -> IptState:
    """Our part of one table in `iptables-save` output; every other line is ignored."""
    chains, jumps, current = {}, [], None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            current = line[1:]
            continue
        if current != table or not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(IPT_PREFIX):
                chains.setdefault(name, [])
            continue
        tokens = ipt_tokens(line)
        if line.startswith("-A ") and tokens is None:
            chain = line.split()[1]
            if chain.startswith(IPT_PREFIX):  # ours, but mangled: keep it visible, it never matches
                chains.setdefault(chain, []).append(("-A", chain, "#unparsable", line))
            continue
        if not tokens or tokens[0] != "-A" or len(tokens) < 2:
            continue
        if tokens[1].startswith(IPT_PREFIX):
            chains.setdefault(tokens[1], []).append(tokens)
        elif is_ours(ipt_comment(tokens)):
            jumps.append(tokens)
    return IptState(chains, jumps)


def _ipt_fields(tokens: tuple) -> dict | None:
    """The matches of one of our rules as {option: value}, '!' kept in the key; None if anything else."""
    fields, index, negate = {}, 2, False
    while index < len(tokens):
        token = tokens[index]
        if token == "!":
            negate = True
            index += 1
            continue
        if token == "-m" and index + 1 < len(tokens) and tokens[index + 1] == "comment":
            index += 2
            continue
        if token not in ("-s", "-d", "-o", "--comment", "-j") or index + 1 >= len(tokens):
            return None
        fields[("!" if negate else "") + token] = tokens[index + 1]
        negate = False
        index += 2
    return fields


def ipt_options(tokens: tuple) -> dict:
    """Any rule of ours as {option: value} ('!' kept in the key, the -m modules under '-m');
    empty if it is not options with one value each, as everything we write is."""
    options, modules, index, negate = {}, [], 2, False
    while index < len(tokens):
        token = tokens[index]
        if token == "!":
            negate, index = True, index + 1
            continue
        if not token.startswith("-") or index + 1 >= len(tokens):
            return {}
        if token == "-m":
            modules.append(tokens[index + 1])
        else:
            options[("!" if negate else "") + token] = tokens[index + 1]
        negate, index = False, index + 2
    options["-m"] = tuple(modules)
    return options


def ipt_masquerade(state: IptState) -> list:
    """The masquerade entries in our postrouting chain, grouped by their comment."""
    found = {}
    for tokens in state.chains.get(IPT_POSTROUTING, []):
        fields = _ipt_fields(tokens)
        comment = (fields or {}).get("--comment") or ""
        if not comment.startswith(MASQUERADE_COMMENT + " "):
            continue
        source = comment[len(MASQUERADE_COMMENT) + 1:]
        entry = found.setdefault(source, {"exclude": [], "oif": None})
        if fields.get("-j") == "RETURN" and "-d" in fields:
            try:
                entry["exclude"].append(ipaddress.ip_network(fields["-d"]))
            except ValueError:
                pass
        elif fields.get("-j") == "MASQUERADE":
            entry["oif"] = fields.get("!-o")
    entries = [_entry_from(s, e["exclude"], e["oif"]) for s, e in found.items()]
    return sorted((e for e in entries if e), key=source_order)


def _address(text: str) -> str:
    """An IPv4 address as the tools print it (canonical dotted quad); ValueError otherwise. Cheaper than
    ipaddress for the thousands a large service set has."""
    if not svc.DOTTED_QUAD.fullmatch(text):
        raise ValueError(text)
    return text


def _endpoint_from(text: str) -> svc.Endpoint:
    ip, dummy, port = text.rpartition(":")
    return svc.Endpoint(_address(ip), int(port))


_endpoint_order = svc.endpoint_key


def ipt_services(state: IptState) -> tuple:
    """(services, node addresses) read back from our chains, by their comments and jumps.

    Only what we write is understood; anything else of ours is drift, seen in the lines."""
    found, addresses = {}, []
    for rule in state.chains.get(IPT_SERVICES, []):
        options = ipt_options(rule)
        target = options.get("-j", "")
        try:
            if options.get("--comment") == NODEPORTS_COMMENT and target == IPT_NODEPORTS:
                addresses.append(_host(options["-d"]))
                continue
            name = svc.name_of(options.get("--comment"))
            if name and target.startswith(IPT_SVC) and name not in found and options["-p"] in svc.PROTOCOLS:
                found[name] = (_host(options["-d"]), int(options["--dport"]), options["-p"], target)
        except (KeyError, ValueError):
            continue
    node_ports = {}
    for rule in state.chains.get(IPT_NODEPORTS, []):
        options = ipt_options(rule)
        name = svc.name_of(options.get("--comment"))
        if name and options.get("-j", "").startswith(IPT_EXT) and options.get("--dport", "").isdigit():
            node_ports.setdefault(name, (options.get("-p"), int(options["--dport"])))
    services = []
    for name, (cluster_ip, port, protocol, chain) in sorted(found.items()):
        endpoints = set()
        # Every rule we write ends in its target, a DNAT's in --to-destination ADDRESS:PORT: read just that.
        for rule in state.chains.get(chain, []):
            sep = rule[-1] if rule[-2:-1] == ("-j",) else ""
            for sep_rule in state.chains.get(sep, []) if sep.startswith(IPT_SEP) else []:
                if sep_rule[-3:-1] == ("DNAT", "--to-destination"):
                    try:
                        endpoints.add(_endpoint_from(sep_rule[-1]))
                    except ValueError:
                        pass
        node_port = node_ports.get(name)
        services.append(svc.Service(name, cluster_ip, port, protocol,
                                    node_port[1] if node_port and node_port[0] == protocol else None,
                                    tuple(sorted(endpoints, key=_endpoint_order))))
    return services, tuple(sorted(set(addresses), key=svc.ip_key))


def _ipt_addr(option: str, network: str) -> tuple:
    # iptables-save leaves out an address match on 0.0.0.0/0
    return () if ipaddress.ip_network(network).prefixlen == 0 else (option, network)


def ipt_probability(remaining: int) -> str:
    """1/remaining as iptables-save prints it: the kernel keeps it as a fraction of 2^31."""
    return f"{math.floor(2 ** 31 / remaining + 0.5) / 2 ** 31:.11f}"


def _ipt_comment(text: str) -> tuple:
    return ("-m", "comment", "--comment", text)


def _ipt_jump(builtin: str, chain: str) -> tuple:
    return ("-A", builtin) + _ipt_comment(OWNER) + ("-j", chain)


def _ipt_render_services(nat: NatSet, chains: dict, jumps: list) -> None:
    """kube-proxy's chains, ours by name and comment: SERVICES dispatches on cluster IP:port (and on
    the node addresses to NODEPORTS), SVC picks an endpoint (statistic random), EXT marks node-port
    traffic for masquerade, SEP marks hairpin traffic and DNATs; SERVICES-MASQ masquerades the marked."""
    mark = ("-j", "MARK", "--set-xmark", IPT_MARK)
    dispatch, nodeports = [], []
    for service in sorted(nat.services, key=lambda s: s.name):
        comment = _ipt_comment(service.comment)
        match = ("-p", service.protocol) + comment + ("-m", service.protocol)
        chain = IPT_SVC + svc.service_hash(service)
        dispatch.append(("-A", IPT_SERVICES, "-d", f"{service.cluster_ip}/32") + match
                        + ("--dport", str(service.port), "-j", chain))
        rules, count = [], len(service.endpoints)
        for index, endpoint in enumerate(service.endpoints):
            sep = IPT_SEP + svc.endpoint_hash(service, endpoint)
            chance = ("-m", "statistic", "--mode", "random", "--probability",
                      ipt_probability(count - index)) if index < count - 1 else ()
            rules.append(("-A", chain) + comment + chance + ("-j", sep))
            chains[sep] = [("-A", sep, "-s", f"{endpoint.ip}/32") + comment + mark,
                           ("-A", sep) + match + ("-j", "DNAT", "--to-destination", endpoint.text())]
        chains[chain] = rules
        if service.node_port:
            ext = IPT_EXT + svc.service_hash(service)
            nodeports.append(("-A", IPT_NODEPORTS) + match + ("--dport", str(service.node_port), "-j", ext))
            chains[ext] = [("-A", ext) + comment + mark, ("-A", ext) + comment + ("-j", chain)]
    if nodeports and nat.node_addresses:
        dispatch += [("-A", IPT_SERVICES, "-d", f"{address}/32") + _ipt_comment(NODEPORTS_COMMENT)
                     + ("-j", IPT_NODEPORTS) for address in nat.node_addresses]
        chains[IPT_NODEPORTS] = nodeports
    chains[IPT_SERVICES] = dispatch
    chains[IPT_SERVICES_MASQ] = [("-A", IPT_SERVICES_MASQ, "-m", "mark", "--mark", IPT_MARK)
                                 + _ipt_comment(SERVICES_MASQ_COMMENT) + ("-j", "MASQUERADE")]
    jumps += [_ipt_jump("PREROUTING", IPT_SERVICES), _ipt_jump("OUTPUT", IPT_SERVICES),
              _ipt_jump("POSTROUTING", IPT_SERVICES_MASQ)]


def ipt_render(nat: NatSet) -> IptState:
    chains, jumps = {}, []
    if nat.masquerade:
        rules = []
        for entry in nat.masquerade:
            comment = _ipt_comment(entry.comment)
            head = ("-A", IPT_POSTROUTING) + _ipt_addr("-s", entry.source)
            for net in entry.exclude:
                rules.append(head + _ipt_addr("-d", net) + comment + ("-j", "RETURN"))
            oif = ("!", "-o", entry.out_interface_not) if entry.out_interface_not else ()
            rules.append(head + oif + comment + ("-j", "MASQUERADE"))
        chains[IPT_POSTROUTING] = rules
        jumps.append(_ipt_jump("POSTROUTING", IPT_POSTROUTING))
    if nat.services:
        _ipt_render_services(nat, chains, jumps)
    return IptState(chains, jumps)


def ipt_merge(rendered: IptState, have: IptState, kinds: tuple) -> IptState:
    """The rendered chains and jumps of the managed kinds, and what `have` holds of the other kinds.
    Ours that no kind claims is left out, so it is removed."""
    chains = {name: rules for name, rules in rendered.chains.items() if ipt_kind(name) in kinds}
    jumps = [jump for jump in rendered.jumps if ipt_kind(jump[-1]) in kinds]
    for name, rules in have.chains.items():
        if ipt_kind(name) not in kinds + (None,):
            chains[name] = rules
    jumps += [jump for jump in have.jumps if ipt_kind(jump[-1]) not in kinds + (None,)]
    return IptState(chains, jumps)


def ipt_script(have: IptState, want: IptState, table: str = IPT_TABLE) -> tuple:
    """iptables-restore --noflush input turning our part of `table` from `have` into `want`.

    Declaring a chain in a --noflush restore creates it or flushes it, so each chain of ours that
    is new or differs is declared and written whole; chains no longer wanted are flushed, then
    deleted; chains that are the same are not named. Jumps are added (first in their chain) only
    when missing, and ours that are not wanted (or duplicated) are deleted; no other rule is named."""
    lines, parts = [f"*{table}"], []
    write = [name for name in sorted(want.chains) if have.chains.get(name) != want.chains[name]
             or name not in have.chains]
    stale = sorted(set(have.chains) - set(want.chains))
    for name in write + stale:
        lines.append(f":{name} - [0:0]")
    pending = list(want.jumps)
    for jump in have.jumps:
        if jump in pending:
            pending.remove(jump)
        else:
            lines.append(ipt_line(("-D",) + jump[1:]))
            parts.append(f"delete jump {jump[1]} -> {jump[-1]}")
    for jump in pending:
        lines.append(ipt_line(("-I", jump[1], "1") + jump[2:]))
        parts.append(f"add jump {jump[1]} -> {jump[-1]}")
    for name in write:
        lines += [ipt_line(rule) for rule in want.chains[name]]
    parts += _chain_parts("write", write, want.chains) + _chain_parts("delete", stale)
    lines += [f"-X {name}" for name in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n", f"iptables-restore --noflush: table {table}: " + ", ".join(parts)


class IptablesNat(Backend):
    name = "iptables"
    tools = ("iptables-save", "iptables-restore")
    write_argv = ["iptables-restore", "--noflush", "--wait=10"]

    def read(self) -> Owned:
        return self.parse(self.runner.check(["iptables-save", "-t", IPT_TABLE]))

    @staticmethod
    def parse(text: str) -> Owned:
        state = parse_iptables_save(text)
        services, addresses = ipt_services(state)
        return Owned(NatSet(tuple(ipt_masquerade(state)), tuple(services), addresses), state)

    def render(self, nat: NatSet, kinds: tuple = KINDS, have: Owned | None = None) -> Owned:
        state = ipt_render(nat)
        if have is not None:
            state = ipt_merge(state, have.detail, tuple(kinds))
        return Owned(nat, state)

    def script(self, have: Owned, want: Owned) -> tuple:
        return ipt_script(have.detail, want.detail)

    # With iptables-nft, our first write makes nftables' `table ip nat`, which stays when our last rule
    # goes. A mark in /run (gone at reboot with the table) says we made it, so we remove it again, empty.
    def apply(self, transaction: Transaction) -> None:
        had_ours = bool(transaction._have.detail.chains or transaction._have.detail.jumps)
        wants_ours = bool(transaction._want.detail.chains or transaction._want.detail.jumps)
        mark = os.path.join(IPT_MADE_DIR, f"iptables-nat-made.{self.runner.netns or '_host'}")
        made = not had_ours and wants_ours and self._nft_nat_table() is False
        super().apply(transaction)
        if made:
            os.makedirs(IPT_MADE_DIR, mode=0o700, exist_ok=True)
            open(mark, "w").close()
        elif not wants_ours and os.path.exists(mark):
            state = self.runner.check(["iptables-save", "-t", IPT_TABLE])
            empty = not [line for line in state.splitlines() if line.startswith(("-", ":")) and
                         not re.fullmatch(r":(PREROUTING|INPUT|OUTPUT|POSTROUTING) ACCEPT \[\d+:\d+\]", line)]
            if empty:  # nobody else's rule, chain or policy in it
                self.runner.check(["nft", "delete", "table", "ip", IPT_TABLE])
            os.unlink(mark)
            if not os.listdir(IPT_MADE_DIR):
                os.rmdir(IPT_MADE_DIR)

    def _nft_nat_table(self) -> bool | None:
        """Whether nftables holds `table ip nat` (None: no nft, or iptables-legacy: nothing to track)."""
        if not self.runner.available("nft") or "nf_tables" not in self.runner.check(["iptables", "-V"]):
            return None
        return self.runner.run(["nft", "list", "table", "ip", IPT_TABLE])[0] == 0


# --- nftables -------------------------------------------------------------------

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


def nft_string(value: str) -> str:
    return json.dumps(value)


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
                return Term(name, f"{name} {_nft_op(op)}{_address(right)}", op, right)
            return Term(name, f"{name} {_nft_op(op)}{nft_addresses(nft_networks(right))}", op, right)
        meta = left.get("meta") if isinstance(left, dict) else None
        if meta and meta.get("key") in ("iifname", "oifname") and isinstance(right, str):
            return Term(meta["key"], f"{meta['key']} {_nft_op(op)}{nft_string(right)}", op, right)
        if meta and meta.get("key") == "l4proto" and op == "==" and right in svc.PROTOCOLS:
            return Term("meta l4proto", f"meta l4proto {right}", op, right)
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
        endpoint = svc.Endpoint(_address(value["addr"]), value["port"])
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
        if not self.exists:
            return []
        prefix = f"{NFT_FAMILY} {NFT_TABLE}"
        out = [f"add table {prefix}"]
        for name in sorted(self.maps):
            vmap = self.maps[name]
            out.append(f"add map {prefix} {name} {{ type {vmap.type}; }}")
            out += [f"add element {prefix} {name} {{ {key} : {vmap.elements[key]} }}" for key in sorted(vmap.elements)]
        for name in sorted(self.chains):
            chain = self.chains[name]
            out.append(f"add chain {prefix} {name}" + (f" {{ {chain.header} }}" if chain.header else ""))
            out += [f"add rule {prefix} {name} {rule}" for rule in chain.rules]
        return out + self.unrecognised


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


def _nft_masquerade(comment: str | None, terms: list) -> Masquerade | None:
    if not (comment or "").startswith(MASQUERADE_COMMENT + " ") or not any(t.kind == "masquerade" for t in terms):
        return None
    exclude = [net for t in terms if t.kind == "ip daddr" and t.op == "!=" for net in nft_networks(t.value)]
    oif = next((t.value for t in terms if t.kind == "oifname" and t.op == "!="), None)
    return _entry_from(comment[len(MASQUERADE_COMMENT) + 1:], exclude, oif)


def _nft_services(maps: dict, rules: dict) -> tuple:
    """(services, node addresses) read back from our maps and chains ({chain: [terms of each rule]})."""
    found = {}
    ips = maps.get(NFT_SERVICE_IPS)
    for key, verdict in sorted(ips.elements.items()) if ips else []:
        parts, target = key.split(" . "), verdict.partition(" ")[2]
        if len(parts) != 3 or not verdict.startswith("goto service-") or parts[1] not in svc.PROTOCOLS:
            continue
        try:
            name = svc.service_name(target[len("service-"):], "chain")
            cluster_ip, port = _host(parts[0]), int(parts[2])
        except ValueError:
            continue
        endpoints = set()
        chosen = [chain for terms in rules.get(target, []) for t in terms if t.kind == "numgen" for chain in t.value]
        for chain in chosen:
            endpoints.update(t.value for terms in rules.get(chain, []) for t in terms if t.kind == "dnat")
        found.setdefault(name, svc.Service(name, cluster_ip, port, parts[1], None,
                                           tuple(sorted(endpoints, key=_endpoint_order))))
    nodeports = maps.get(NFT_SERVICE_NODEPORTS)
    for key, verdict in sorted(nodeports.elements.items()) if nodeports else []:
        parts, target = key.split(" . "), verdict.partition(" ")[2]
        name = target[len("external-"):] if verdict.startswith("goto external-") else None
        if name in found and len(parts) == 2 and parts[0] == found[name].protocol and parts[1].isdigit() \
                and [f"goto service-{name}"] == [t.text for terms in rules.get(target, []) for t in terms
                                                 if t.kind == "goto"]:
            found[name] = found[name]._replace(node_port=int(parts[1]))
    addresses = set()
    for terms in rules.get("services", []):
        if any(t.kind == "vmap" and t.value == NFT_SERVICE_NODEPORTS for t in terms):
            for term in terms:
                if term.kind == "ip daddr" and term.op == "==":
                    addresses.update(str(a) for net in nft_networks(term.value) for a in net)
    return [found[name] for name in sorted(found)], tuple(sorted(addresses, key=svc.ip_key))


def parse_nft_json(text: str) -> tuple:
    """(NftState, NatSet) of our table from `nft -j list table ip handcni` output."""
    try:
        items = json.loads(text)["nftables"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"nft -j printed something that is not its JSON: {text[:200]!r}") from None
    chains, maps, unrecognised, entries, exists = {}, {}, [], [], False
    rules, terms_of = [], {}
    for item in items:
        kind, body = next(iter(item.items())) if isinstance(item, dict) and len(item) == 1 else (None, None)
        if kind == "metainfo":
            continue
        if kind == "table" and body.get("family") == NFT_FAMILY and body.get("name") == NFT_TABLE:
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
    services, addresses = _nft_services(maps, terms_of)
    nat = NatSet(tuple(sorted(entries, key=source_order)), tuple(services), addresses)
    return NftState(exists, chains, unrecognised, maps), nat


def _nft_render_services(nat: NatSet, chains: dict, maps: dict) -> None:
    """kube-proxy's nftables layout: a verdict map from cluster IP . protocol . port to the service's
    chain, which picks an endpoint chain with numgen; node ports through a second map on the node's
    addresses, via a chain that marks for masquerade; endpoint chains mark hairpin traffic and DNAT."""
    mark = f"meta mark set meta mark | {NFT_MARK}"
    ips, nodeports = {}, {}
    for service in sorted(nat.services, key=lambda s: s.name):
        chain = f"service-{service.name}"
        ips[f"{service.cluster_ip} . {service.protocol} . {service.port}"] = f"goto {chain}"
        targets = []
        for endpoint in service.endpoints:
            target = f"endpoint-{service.name}-{endpoint.ip}-{endpoint.port}"
            targets.append(target)
            chains[target] = NftChain("", [
                nft_rule_text([f"ip saddr {endpoint.ip}", mark], service.comment),
                nft_rule_text([f"meta l4proto {service.protocol}", f"dnat to {endpoint.text()}"], service.comment)])
        listed = ", ".join(f"{index} : goto {target}" for index, target in enumerate(targets))
        chains[chain] = NftChain("", [nft_rule_text([f"numgen random mod {len(targets)} vmap {{ {listed} }}"],
                                                    service.comment)] if targets else [])
        if service.node_port:
            external = f"external-{service.name}"
            nodeports[f"{service.protocol} . {service.node_port}"] = f"goto {external}"
            chains[external] = NftChain("", [nft_rule_text([mark], service.comment),
                                             nft_rule_text([f"goto {chain}"], service.comment)])
    dispatch = [nft_rule_text([f"ip daddr . meta l4proto . th dport vmap @{NFT_SERVICE_IPS}"], SERVICES_COMMENT)]
    maps[NFT_SERVICE_IPS] = NftMap("ipv4_addr . inet_proto . inet_service : verdict", ips)
    if nodeports and nat.node_addresses:
        addresses = nft_addresses(f"{address}/32" for address in nat.node_addresses)
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


def nft_merge(rendered: NftState, have: NftState, kinds: tuple) -> NftState:
    """The rendered chains and maps of the managed kinds, and what `have` holds of the other kinds.
    What no kind claims (and what we cannot read) is left out, so it is removed."""
    chains = {name: chain for name, chain in rendered.chains.items() if nft_kind(name) in kinds}
    maps = {name: vmap for name, vmap in rendered.maps.items() if nft_kind(name, True) in kinds}
    chains.update((name, chain) for name, chain in have.chains.items() if nft_kind(name) not in kinds + (None,))
    maps.update((name, vmap) for name, vmap in have.maps.items() if nft_kind(name, True) not in kinds + (None,))
    return NftState(bool(chains or maps), chains, [], maps)


def _nft_summary(state: NftState) -> str:
    rules = [rule for chain in state.chains.values() for rule in chain.rules]
    names = f" {', '.join(sorted(state.chains))}" if len(state.chains) <= 3 else ""
    text = f"{_count(state.chains, 'chain')}{names}; {_count(rules, 'rule')}"
    if state.maps:
        elements = [key for vmap in state.maps.values() for key in vmap.elements]
        text += f"; {_count(state.maps, 'map')} with {_count(elements, 'element')}"
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
    new = sorted(set(want.chains) - set(have.chains))
    stale = sorted(set(have.chains) - set(want.chains))
    changed = sorted(name for name in set(want.chains) & set(have.chains)
                     if want.chains[name].rules != have.chains[name].rules)
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
            parts.append(f"delete {_count(gone, 'element')} from {name}")
    for name in sorted(want.maps):
        old, now = have.maps[name].elements if name in have.maps else {}, want.maps[name].elements
        fresh = sorted(key for key in now if old.get(key) != now[key])
        if fresh:
            lines.append(f"add element {prefix} {name} {{ {', '.join(f'{key} : {now[key]}' for key in fresh)} }}")
            parts.append(f"add {_count(fresh, 'element')} to {name}")
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
    parts = (_chain_parts("add", new, {n: want.chains[n].rules for n in new}) + _chain_parts("write", changed, {
        n: want.chains[n].rules for n in changed}) + _chain_parts("delete", stale) + parts)
    return "\n".join(lines) + "\n", f"nft -f: table {prefix}: " + ", ".join(parts)


class NftablesNat(Backend):
    name = "nftables"
    tools = ("nft",)
    write_argv = ["nft", "-f", "-"]

    def read(self) -> Owned:
        argv = ["nft", "-j", "list", "table", NFT_FAMILY, NFT_TABLE]
        rc, out, err = self.runner.run(argv)
        if rc != 0 and "No such file or directory" in (err or ""):
            return self.parse(None)  # the table does not exist: nothing of ours
        if rc != 0:
            raise failure(argv, rc, out, err)
        return self.parse(out)

    @staticmethod
    def parse(text: str | None) -> Owned:
        state, nat = parse_nft_json(text) if text is not None else (NftState(False, {}, [], {}), NatSet())
        return Owned(nat, state)

    def render(self, nat: NatSet, kinds: tuple = KINDS, have: Owned | None = None) -> Owned:
        state = nft_render(nat)
        if have is not None:
            state = nft_merge(state, have.detail, tuple(kinds))
        return Owned(nat, state)

    def script(self, have: Owned, want: Owned) -> tuple:
        return nft_script(have.detail, want.detail)


BACKENDS = {"iptables": IptablesNat, "nftables": NftablesNat}
