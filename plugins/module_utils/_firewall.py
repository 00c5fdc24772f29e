# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NAT rules as owned sets, for iptables and nftables. Private to this collection.

What we make is ours by construction, so it can be rewritten whole:
- iptables: chains named HANDCNI-* in table nat, entered from the built-in chains
  by jump rules carrying the comment OWNER; every rule carries an OWNER comment.
  One `iptables-restore --noflush` rewrites our chains and nothing else.
- nftables: the table `ip handcni`. One `nft -f -` replaces it.

Each backend reads what is ours into `Owned`: canonical text lines (what the diff
shows and what is compared) and the masquerade entries found (kept or carried to
the other backend when not pruned). The desired `NatSet` renders to the same
lines, so "no change" is plain equality. Everything but Runner and Backend.read/apply
is pure; bad input raises ValueError, a failing tool FirewallError (an OSError).
"""
from __future__ import annotations

import ipaddress
import json
import re
import shlex
from typing import Callable, NamedTuple

from . import _validate as validate
from ._netlink import OWNER, netns_path

IPT_TABLE = "nat"
IPT_PREFIX = "HANDCNI-"
IPT_POSTROUTING = "HANDCNI-POSTROUTING"
NFT_FAMILY = "ip"
NFT_TABLE = "handcni"
NFT_SRCNAT = 100  # priority `srcnat` of a nat chain on the postrouting hook
MASQUERADE_COMMENT = f"{OWNER} masquerade"
# Characters an interface name may have here: iptables-restore and nft take them unquoted.
_FIREWALL_IFNAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_IPT_BARE = re.compile(r"^[A-Za-z0-9_.:/=@%,+!-]+$")

MASQUERADE_SPEC = dict(
    source=dict(type="str", required=True),
    exclude=dict(type="list", elements="str", default=[]),
    out_interface_not=dict(type="str"),
)


class FirewallError(OSError):
    """A firewall tool failed; the message says which and why."""


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
    """Everything of ours in one namespace; empty means nothing of ours exists."""
    masquerade: tuple = ()

    def __bool__(self) -> bool:
        return bool(self.masquerade)


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


# --- running the tools --------------------------------------------------------

class Runner:
    """Runs firewall tools with argument lists and stdin, inside a named netns if given.

    `run_command(argv, data=...)` returns (rc, stdout, stderr), as AnsibleModule.run_command;
    `which(tool)` returns the tool's path or None, as AnsibleModule.get_bin_path."""

    def __init__(self, run_command: Callable, which: Callable, netns: str | None = None):
        self._run_command = run_command
        self._which = which
        self.netns = netns

    def available(self, *tools: str) -> bool:
        return all(self._which(tool) for tool in tools)

    def argv(self, argv: list) -> list:
        path = self._which(argv[0])
        if not path:
            raise FirewallError(f"{argv[0]} is not installed")
        argv = [path] + list(argv[1:])
        if self.netns is None:
            return argv
        nsenter = self._which("nsenter")
        if not nsenter:
            raise FirewallError("nsenter (util-linux) is not installed; it is needed to act in a netns")
        return [nsenter, f"--net={netns_path(self.netns)}", "--"] + argv

    def run(self, argv: list, data: str | None = None) -> tuple:
        kwargs = {"data": data, "binary_data": True} if data is not None else {}
        # The C locale keeps the tools' messages in the words read() looks for.
        return self._run_command(self.argv(argv), environ_update={"LC_ALL": "C"}, **kwargs)

    def check(self, argv: list, data: str | None = None) -> str:
        rc, out, err = self.run(argv, data)
        if rc != 0:
            raise failure(argv, rc, out, err)
        return out


def failure(argv: list, rc: int, out: str, err: str) -> FirewallError:
    return FirewallError(f"{' '.join(argv)} failed (exit {rc}): {(err or out or '').strip()}")


# --- the transaction base -------------------------------------------------------

class Owned(NamedTuple):
    """What one backend holds of ours: canonical lines, the masquerade entries, backend detail."""
    lines: list
    masquerade: list
    detail: object = None


class Transaction(NamedTuple):
    backend: str
    description: str
    argv: list
    script: str
    before: list
    after: list

    def public(self) -> dict:
        return {"backend": self.backend, "argv": self.argv, "input": self.script}


class Backend:
    """One firewall backend. Subclasses read/parse/render/script; the rest is shared."""
    name = ""
    tools: tuple = ()
    write_argv: list = []

    def __init__(self, runner: Runner):
        self.runner = runner

    def available(self) -> bool:
        return self.runner.available(*self.tools)

    def read(self) -> Owned:
        raise NotImplementedError

    def render(self, nat: NatSet) -> Owned:
        raise NotImplementedError

    def script(self, have: Owned, want: Owned) -> tuple:
        """(input for write_argv, description) turning `have` into `want`."""
        raise NotImplementedError

    def plan(self, have: Owned, nat: NatSet) -> Transaction | None:
        want = self.render(nat)
        if have.lines == want.lines:
            return None
        script, description = self.script(have, want)
        return Transaction(self.name, description, list(self.write_argv), script, have.lines, want.lines)

    def apply(self, transaction: Transaction) -> None:
        self.runner.check(transaction.argv, transaction.script)


def _count(items, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


# --- iptables -----------------------------------------------------------------

def ipt_quote(token: str) -> str:
    if _IPT_BARE.fullmatch(token):
        return token
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ipt_line(tokens) -> str:
    return " ".join(ipt_quote(t) for t in tokens)


def ipt_tokens(line: str) -> tuple | None:
    """A rule line of iptables-save as tokens ([counters] dropped); None if it does not split."""
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


class IptState(NamedTuple):
    """Our chains (name -> rule token tuples, in order) and our rules in other chains: the jumps into ours."""
    chains: dict
    jumps: list

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


def _ipt_addr(option: str, network: str) -> tuple:
    # iptables-save leaves out an address match on 0.0.0.0/0
    return () if ipaddress.ip_network(network).prefixlen == 0 else (option, network)


def ipt_render(nat: NatSet) -> IptState:
    chains, jumps = {}, []
    if nat.masquerade:
        rules = []
        for entry in nat.masquerade:
            comment = ("-m", "comment", "--comment", entry.comment)
            head = ("-A", IPT_POSTROUTING) + _ipt_addr("-s", entry.source)
            for net in entry.exclude:
                rules.append(head + _ipt_addr("-d", net) + comment + ("-j", "RETURN"))
            oif = ("!", "-o", entry.out_interface_not) if entry.out_interface_not else ()
            rules.append(head + oif + comment + ("-j", "MASQUERADE"))
        chains[IPT_POSTROUTING] = rules
        jumps.append(("-A", "POSTROUTING", "-m", "comment", "--comment", OWNER, "-j", IPT_POSTROUTING))
    return IptState(chains, jumps)


def ipt_script(have: IptState, want: IptState, table: str = IPT_TABLE) -> tuple:
    """iptables-restore --noflush input turning our part of `table` from `have` into `want`.

    Declaring a chain in a --noflush restore creates it or flushes it, so every chain of
    ours is declared (rewritten whole); chains no longer wanted are then deleted. Jumps
    are added (first in their chain) only when missing, and ours that are not wanted
    (or duplicated) are deleted; no other rule is named."""
    lines, parts = [f"*{table}"], []
    stale = sorted(set(have.chains) - set(want.chains))
    for name in sorted(want.chains) + stale:
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
    for name in sorted(want.chains):
        lines += [ipt_line(rule) for rule in want.chains[name]]
        if have.chains.get(name) != want.chains[name]:
            parts.append(f"write chain {name} ({_count(want.chains[name], 'rule')})")
    for name in stale:
        lines.append(f"-X {name}")
        parts.append(f"delete chain {name}")
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
        return Owned(state.lines(), ipt_masquerade(state), state)

    def render(self, nat: NatSet) -> Owned:
        state = ipt_render(nat)
        return Owned(state.lines(), list(nat.masquerade), state)

    def script(self, have: Owned, want: Owned) -> tuple:
        return ipt_script(have.detail, want.detail)


# --- nftables -----------------------------------------------------------------

class _Unrecognised(Exception):
    pass


NFT_ADDRESS_FIELDS = {("ip", "saddr"), ("ip", "daddr")}


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
    kind: str             # "ip saddr", "oifname", "masquerade", ...
    text: str
    op: str | None = None
    value: object = None  # networks of an address match, the name of an interface match


def nft_term(expr: dict) -> Term:
    """One expression of `nft -j` output as a Term; raises _Unrecognised for anything we do not make."""
    if not isinstance(expr, dict) or len(expr) != 1:
        raise _Unrecognised(expr)
    (kind, value), = expr.items()
    if kind == "match":
        left, right, op = value["left"], value["right"], value["op"]
        payload = left.get("payload") if isinstance(left, dict) else None
        if payload and (payload.get("protocol"), payload.get("field")) in NFT_ADDRESS_FIELDS:
            nets = nft_networks(right)
            name = f"{payload['protocol']} {payload['field']}"
            return Term(name, f"{name} {_nft_op(op)}{nft_addresses(nets)}", op, nets)
        meta = left.get("meta") if isinstance(left, dict) else None
        if meta and meta.get("key") in ("iifname", "oifname") and isinstance(right, str):
            return Term(meta["key"], f"{meta['key']} {_nft_op(op)}{nft_string(right)}", op, right)
        raise _Unrecognised(expr)
    if kind == "counter":
        return Term("counter", "counter")
    if kind in ("masquerade", "accept", "drop", "return") and value is None:
        return Term(kind, kind)
    raise _Unrecognised(expr)


def nft_rule_text(texts: list, comment: str | None) -> str:
    text = " ".join(texts)
    return f"{text} comment {nft_string(comment)}" if comment is not None else text


class NftChain(NamedTuple):
    header: str  # "type nat hook postrouting priority 100; policy accept;" or "" for a regular chain
    rules: list  # canonical rule texts


class NftState(NamedTuple):
    exists: bool
    chains: dict          # name -> NftChain
    unrecognised: list    # texts of objects in our table we do not make

    def lines(self) -> list:
        if not self.exists:
            return []
        prefix = f"{NFT_FAMILY} {NFT_TABLE}"
        out = [f"add table {prefix}"]
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


def parse_nft_json(text: str) -> tuple:
    """(NftState, masquerade entries) of our table from `nft -j list table ip handcni` output."""
    try:
        items = json.loads(text)["nftables"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"nft -j printed something that is not its JSON: {text[:200]!r}") from None
    chains, unrecognised, entries, exists = {}, [], [], False
    rules = []
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
        if (comment or "").startswith(MASQUERADE_COMMENT + " ") and any(t.kind == "masquerade" for t in terms):
            exclude = [net for t in terms if t.kind == "ip daddr" and t.op == "!=" for net in t.value]
            oif = next((t.value for t in terms if t.kind == "oifname" and t.op == "!="), None)
            entry = _entry_from(comment[len(MASQUERADE_COMMENT) + 1:], exclude, oif)
            if entry:
                entries.append(entry)
    return NftState(exists, chains, unrecognised), sorted(entries, key=source_order)


def nft_render(nat: NatSet) -> NftState:
    if not nat:
        return NftState(False, {}, [])
    chains = {}
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
    return NftState(True, chains, [])


def nft_script(have: NftState, want: NftState) -> tuple:
    """nft -f input replacing our table in one transaction (add+delete first: works whether it exists or not)."""
    prefix = f"{NFT_FAMILY} {NFT_TABLE}"
    lines = [f"add table {prefix}", f"delete table {prefix}"] + want.lines()
    if not want.exists:
        return "\n".join(lines) + "\n", f"nft -f: delete table {prefix}"
    rules = [rule for chain in want.chains.values() for rule in chain.rules]
    verb = "replace" if have.exists else "create"
    return "\n".join(lines) + "\n", (f"nft -f: {verb} table {prefix} "
                                     f"({_count(want.chains, 'chain')} {', '.join(sorted(want.chains))}; "
                                     f"{_count(rules, 'rule')})")


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
        state, entries = parse_nft_json(text) if text is not None else (NftState(False, {}, []), [])
        return Owned(state.lines(), entries, state)

    def render(self, nat: NatSet) -> Owned:
        state = nft_render(nat)
        return Owned(state.lines(), list(nat.masquerade), state)

    def script(self, have: Owned, want: Owned) -> tuple:
        return nft_script(have.detail, want.detail)


BACKENDS = {"iptables": IptablesNat, "nftables": NftablesNat}
