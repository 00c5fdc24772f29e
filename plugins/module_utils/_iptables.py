# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iptables backend of the NAT sets in _firewall.py: reading our part of iptables-save's text (_ipt_save.py)
back into the model, rendering, and the restore script. Private to this collection.

Ours is chains named HANDCNI-* in table nat, entered from the built-in chains by jump rules carrying
the comment OWNER; every rule carries an OWNER comment. One `iptables-restore --noflush` rewrites the
chains of ours that differ, deletes ours no longer wanted and names nothing else. Each kind has its
chains (`ipt_kind`), its reader (`ipt_masquerade`, `ipt_services`) and its drawing (`_ipt_render_*`).
IPv6's table nat is ip6tables' (the same chains, comments and variants): read and written with its own
tools, in a transaction of its own, and never asked about where neither the run nor the kernel has IPv6.
"""
from __future__ import annotations

import ipaddress
import math
import os
import re
from typing import Callable

from . import _services as svc
from ._firewall import (NODEPORTS_COMMENT, OUTSIDE_COMMENT, SERVICES_MASQ_COMMENT, Backend, Families, NatSet, Owned,
                        Transaction, chain_changes, chain_parts, collapse, draw_families, endpoint_from, host, host_network, masquerade_from,
                        masquerade_source, merge_families, merge_kinds, source_order)
from ._ipt_save import IPT_TABLE, IptState, ipt_line, parse_iptables_save
from ._netlink import OWNER, legacy_tables, nf_table_exists

IPT_MADE_DIR = "/run/handcni"  # TOOL-TABLE-made.NETNS: a mark per netns whose `table ip[6] TABLE` we made
IPT_TOOLS = {4: ("iptables", "ip"), 6: ("ip6tables", "ip6")}  # per family: the tools' name, nftables' family
IPT6_LABEL = "ip6tables: "  # before the IPv6 lines of the diff, which are otherwise IPv4's twins
IPT_POSTROUTING = "HANDCNI-POSTROUTING"
IPT_SERVICES = "HANDCNI-SERVICES"            # PREROUTING and OUTPUT: cluster IPs, then node ports
IPT_NODEPORTS = "HANDCNI-NODEPORTS"          # node ports on the node's addresses
IPT_SERVICES_MASQ = "HANDCNI-SERVICES-MASQ"  # POSTROUTING: masquerade what the services marked
IPT_OUTSIDE = "HANDCNI-OUTSIDE"              # from a service: mark what comes from outside the cluster CIDRs
IPT_SVC = "HANDCNI-SVC-"                     # one per service: pick an endpoint at random
IPT_EXT = "HANDCNI-EXT-"                     # one per service with a node port or external address: mark, service
IPT_SVL = "HANDCNI-SVL-"                     # one per Local service with endpoints here: pick one of them
IPT_SEP = "HANDCNI-SEP-"                     # one per endpoint: hairpin mark, DNAT
IPT_MARK = f"{svc.MASQUERADE_MARK:#x}/{svc.MASQUERADE_MARK:#x}"


# --- our chains, by kind ------------------------------------------------------

def ipt_kind(chain: str) -> str | None:
    """Which kind a chain of ours (or a jump into it) belongs to; None: no kind claims it."""
    if chain == IPT_POSTROUTING:
        return "masquerade"
    if chain in (IPT_SERVICES, IPT_NODEPORTS, IPT_SERVICES_MASQ, IPT_OUTSIDE) or \
            chain.startswith((IPT_SVC, IPT_EXT, IPT_SVL, IPT_SEP)):
        return "services"
    return None


# --- reading each kind back ---------------------------------------------------

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


def ipt_masquerade(state: IptState, version: int = 4) -> list:
    """The masquerade entries in our postrouting chain of family `version`'s table, grouped by their comment."""
    found = {}
    for tokens in state.chains.get(IPT_POSTROUTING, []):
        fields = _ipt_fields(tokens)
        source = masquerade_source((fields or {}).get("--comment"))
        if source is None:
            continue
        entry = found.setdefault(source, {"exclude": [], "oif": None})
        if fields.get("-j") == "RETURN" and "-d" in fields:
            try:
                entry["exclude"].append(ipaddress.ip_network(fields["-d"]))
            except ValueError:
                pass
        elif fields.get("-j") == "MASQUERADE":
            entry["oif"] = fields.get("!-o")
    entries = [masquerade_from(s, e["exclude"], e["oif"], version) for s, e in found.items()]
    return sorted((e for e in entries if e), key=source_order)


def ipt_services(state: IptState) -> tuple:
    """(services, node addresses, cluster CIDRs) read back from our chains, by their comments and jumps.

    Only what we write is understood; anything else of ours is drift, seen in the lines."""
    found, addresses, external = {}, [], {}
    for rule in state.chains.get(IPT_SERVICES, []):
        options = ipt_options(rule)
        target = options.get("-j", "")
        try:
            if options.get("--comment") == NODEPORTS_COMMENT and target == IPT_NODEPORTS:
                addresses.append(host(options["-d"]))
                continue
            name = svc.name_of(options.get("--comment"))
            if name and target.startswith(IPT_SVC) and name not in found and options["-p"] in svc.PROTOCOLS:
                found[name] = (host(options["-d"]), int(options["--dport"]), options["-p"], target)
            elif name and target.startswith((IPT_EXT, IPT_SVL)):
                external.setdefault(name, set()).add(host(options["-d"]))
        except (KeyError, ValueError):
            continue
    node_ports = {}
    for rule in state.chains.get(IPT_NODEPORTS, []):
        options = ipt_options(rule)
        name = svc.name_of(options.get("--comment"))
        if name and options.get("-j", "").startswith((IPT_EXT, IPT_SVL)) and options.get("--dport", "").isdigit():
            node_ports.setdefault(name, (options.get("-p"), int(options["--dport"])))
    services = []
    for name, (cluster_ip, port, protocol, chain) in sorted(found.items()):
        node_port = node_ports.get(name)
        local = IPT_SVL + chain[len(IPT_SVC):]
        services.append(svc.Service(name, cluster_ip, port, protocol,
                                    node_port[1] if node_port and node_port[0] == protocol else None,
                                    _ipt_endpoints(state, chain), tuple(sorted(external.get(name, ()), key=svc.ip_key)),
                                    _ipt_endpoints(state, local) if local in state.chains else None))
    cidrs = []
    for rule in state.chains.get(IPT_OUTSIDE, []):
        options = ipt_options(rule)
        if options.get("-j") == "RETURN" and "-s" in options:
            try:
                cidrs.append(ipaddress.ip_network(options["-s"]))
            except ValueError:
                pass
    return services, tuple(sorted(set(addresses), key=svc.ip_key)), collapse(cidrs)


def _ipt_endpoints(state: IptState, chain: str) -> tuple:
    """The endpoints a service chain (SVC or SVL) picks from, sorted."""
    endpoints = set()
    # Every rule we write ends in its target, a DNAT's in --to-destination ADDRESS:PORT: read just that.
    for rule in state.chains.get(chain, []):
        sep = rule[-1] if rule[-2:-1] == ("-j",) else ""
        for sep_rule in state.chains.get(sep, []) if sep.startswith(IPT_SEP) else []:
            if sep_rule[-3:-1] == ("DNAT", "--to-destination"):
                try:
                    endpoints.add(endpoint_from(sep_rule[-1]))
                except ValueError:
                    pass
    return tuple(sorted(endpoints, key=svc.endpoint_key))


# --- drawing each kind --------------------------------------------------------

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
        name = svc.service_hash(service)
        chain = IPT_SVC + name
        dispatch.append(("-A", IPT_SERVICES, "-d", host_network(service.cluster_ip)) + match
                        + ("--dport", str(service.port), "-j", chain))
        outside = [("-A", chain) + comment + ("-j", IPT_OUTSIDE)] if nat.cluster_cidrs and service.endpoints else []
        chains[chain] = outside + _ipt_pick(service, service.endpoints, chain, chains)
        # Node ports and external addresses: Cluster marks for masquerade, then the service; Local goes to
        # this node's endpoints, unmarked (the client's address is kept), and is not answered without one.
        if service.local is None:
            entry = IPT_EXT + name
            if service.node_port or service.external:
                chains[entry] = [("-A", entry) + comment + mark, ("-A", entry) + comment + ("-j", chain)]
        else:
            entry = IPT_SVL + name if service.local else None
            if entry:
                chains[entry] = _ipt_pick(service, service.local, entry, chains)
        if entry and service.node_port:
            nodeports.append(("-A", IPT_NODEPORTS) + match + ("--dport", str(service.node_port), "-j", entry))
        if entry:
            dispatch += [("-A", IPT_SERVICES, "-d", host_network(external)) + match + ("--dport", str(service.port), "-j", entry)
                         for external in service.external]
    if nat.cluster_cidrs:
        chains[IPT_OUTSIDE] = [("-A", IPT_OUTSIDE) + _ipt_addr("-s", cidr) + _ipt_comment(OUTSIDE_COMMENT)
                               + ("-j", "RETURN") for cidr in nat.cluster_cidrs] + \
            [("-A", IPT_OUTSIDE) + _ipt_comment(OUTSIDE_COMMENT) + mark]
    if nodeports and nat.node_addresses:
        dispatch += [("-A", IPT_SERVICES, "-d", host_network(node)) + _ipt_comment(NODEPORTS_COMMENT)
                     + ("-j", IPT_NODEPORTS) for node in nat.node_addresses]
        chains[IPT_NODEPORTS] = nodeports
    chains[IPT_SERVICES] = dispatch
    chains[IPT_SERVICES_MASQ] = [("-A", IPT_SERVICES_MASQ, "-m", "mark", "--mark", IPT_MARK)
                                 + _ipt_comment(SERVICES_MASQ_COMMENT) + ("-j", "MASQUERADE")]
    jumps += [_ipt_jump("PREROUTING", IPT_SERVICES), _ipt_jump("OUTPUT", IPT_SERVICES),
              _ipt_jump("POSTROUTING", IPT_SERVICES_MASQ)]


def _ipt_pick(service: svc.Service, endpoints: tuple, chain: str, chains: dict) -> list:
    """The rules of a chain choosing one of `endpoints` at random (statistic), each an endpoint chain (SEP),
    which is drawn into `chains`: it marks hairpin traffic for masquerade and DNATs."""
    comment = _ipt_comment(service.comment)
    rules, count = [], len(endpoints)
    for index, endpoint in enumerate(endpoints):
        sep = IPT_SEP + svc.endpoint_hash(service, endpoint)
        chance = ("-m", "statistic", "--mode", "random", "--probability",
                  ipt_probability(count - index)) if index < count - 1 else ()
        rules.append(("-A", chain) + comment + chance + ("-j", sep))
        chains[sep] = [("-A", sep, "-s", host_network(endpoint.ip)) + comment + ("-j", "MARK", "--set-xmark", IPT_MARK),
                       ("-A", sep, "-p", service.protocol) + comment + ("-m", service.protocol)
                       + ("-j", "DNAT", "--to-destination", endpoint.text())]
    return rules


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


# --- the transaction ----------------------------------------------------------

def ipt_merge(rendered: IptState, have: IptState, kinds: tuple) -> IptState:
    """The rendered chains and jumps of the managed kinds, and what `have` holds of the other kinds.
    Ours that no kind claims is left out, so it is removed."""
    chains = merge_kinds(rendered.chains.items(), have.chains.items(), kinds, lambda item: ipt_kind(item[0]))
    return IptState(dict(chains), merge_kinds(rendered.jumps, have.jumps, kinds, lambda jump: ipt_kind(jump[-1])),
                    have.others)


IPT_MANY_CHAINS = 1000  # a transaction naming this many chains costs iptables-nft 1.8.9 their square (ipt_whole_cache)


def ipt_script(have: IptState, want: IptState, table: str = IPT_TABLE, tool: str = "iptables",
               nf_tables: Callable[[], bool] | None = None) -> tuple:
    """`tool`-restore --noflush input turning our part of `table` from `have` into `want`.

    Declaring a chain in a --noflush restore creates it or flushes it, so each chain of ours that
    is new or differs is declared and written whole; chains no longer wanted are flushed, then
    deleted; chains that are the same are not named. Jumps are added (first in their chain) only
    when missing, and ours that are not wanted (or duplicated) are deleted; no other rule is named.
    `nf_tables()`: whether the tool is iptables-nft, which may be asked for its whole cache (ipt_whole_cache);
    asked only of a transaction naming many chains."""
    lines, parts = [f"*{table}"], []
    new, changed, stale = chain_changes(have.chains, want.chains)
    write = sorted(new + changed)
    if table == IPT_TABLE and have.others is not None and len(write) + len(stale) >= IPT_MANY_CHAINS > \
            have.others + len(have.chains) and nf_tables and nf_tables():
        lines += ipt_whole_cache(want.jumps + have.jumps)
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
    parts += chain_parts("write", write, want.chains) + chain_parts("delete", stale)
    lines += [f"-X {name}" for name in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n", f"{tool}-restore --noflush: table {table}: " + ", ".join(parts)


def ipt_whole_cache(jumps: list) -> list:
    """Lines that make iptables-nft 1.8.9 fetch the table's whole cache instead of the chains each command names.

    It adds those chains to a sorted linked list, walked from its head for every command (nft-cache.c,
    cache_chain_list_insert): a transaction naming tens of thousands of chains costs their square (10,000
    services, 40,000 chains: 20 s instead of 3). A command naming no chain ends that list. `-S` is the one that
    changes nothing (it lists the table's rules: cheap only while the table, as just read, holds few chains of
    anyone's; 40,000 cost it 14 s), but after it
    iptables 1.8.9 no longer makes a missing built-in chain: those we jump from are declared first, with the
    only policy the nat table allows (ACCEPT), which leaves an existing one as it is."""
    return [f":{chain} ACCEPT [0:0]" for chain in sorted({jump[1] for jump in jumps})] + ["-S"]


class Iptables(Backend):
    """What every iptables backend shares, whatever its table: the tools, the variant (nft or legacy), the
    check for others' rules in the other variant, and the nftables table iptables-nft makes for `table`.
    `family` 6 is the same for ip6tables, whose tables are IPv6's."""
    name = "iptables"
    family = 4
    table = IPT_TABLE
    _nf_tables: bool | None = None  # what `iptables -V` said, once asked

    @property
    def tool(self) -> str:
        return IPT_TOOLS[self.family][0]

    @property
    def tools(self) -> tuple:
        return (f"{self.tool}-save", f"{self.tool}-restore")

    @property
    def write_argv(self) -> list:
        return [f"{self.tool}-restore", "--noflush", "--wait=10"]

    def read(self) -> Owned:
        return self.parse(self.save())

    def save(self) -> str:
        return self.runner.check([f"{self.tool}-save", "-t", self.table])

    def nf_tables(self) -> bool:
        """Whether the node's `iptables` is iptables-nft (else iptables-legacy); asked once per run."""
        if self._nf_tables is None:
            self._nf_tables = "nf_tables" in self.runner.check([self.tool, "-V"])
        return self._nf_tables

    def counted(self) -> bool:
        """iptables-nft's changes are nf_tables transactions; iptables-legacy's are not."""
        return self.nf_tables()

    def mixed(self) -> str | None:
        """Why this node must not get our rules: others' rules in the other iptables variant, which the
        node's `iptables` does not see (projectcalico/calico#2322); None when there are none. Only a variant
        the kernel has loaded is read (nothing is loaded to look)."""
        nft, tool = self.nf_tables(), self.tool
        if nft:
            rc, names, _err = self.runner.run(["cat", f"/proc/net/{IPT_TOOLS[self.family][1]}_tables_names"])
            other = f"{tool}-legacy-save" if rc == 0 and names.strip() else None
        else:
            other = f"{tool}-nft-save" if os.path.exists("/sys/module/nf_tables") else None
        if other is None or not self.runner.available(other):
            return None
        rc, out, _err = self.runner.run([other])
        rules = [line for line in (out or "").splitlines() if line.startswith("-A ")] if rc == 0 else []
        if not rules:
            return None
        mine, theirs = ("nft", "legacy") if nft else ("legacy", "nft")
        return (f"backend: {tool} is {tool}-{mine} on this node, but {len(rules)} rule(s) of others are in "
                f"{tool}-{theirs} (first: {rules[0]}), and the two do not see each other's rules "
                f"(projectcalico/calico#2322); point the node's {tool} at one of them (update-alternatives "
                f"--set {tool} /usr/sbin/{tool}-{theirs}) or choose the nftables backend")

    # With iptables-nft, our first write makes nftables' `table ip TABLE`, which stays when our last rule
    # goes. A mark in /run (gone at reboot with the table) says we made it, so we remove it again, empty.
    def apply(self, transaction: Transaction) -> None:
        had_ours, wants_ours = transaction.have.detail.holds_ours(), transaction.want.detail.holds_ours()
        mark = os.path.join(IPT_MADE_DIR, f"{self.tool}-{self.table}-made.{self.runner.netns or '_host'}")
        made = not had_ours and wants_ours and self._nft_table() is False
        super().apply(transaction)
        if made:
            os.makedirs(IPT_MADE_DIR, mode=0o700, exist_ok=True)
            open(mark, "w").close()
        elif not wants_ours and os.path.exists(mark):
            empty = not [line for line in self.save().splitlines() if line.startswith(("-", ":")) and
                         not re.fullmatch(r":(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT \[\d+:\d+\]", line)]
            # nobody else's rule, chain or policy in it; without nft (removed since) it stays, as iptables-nft
            # leaves it on a node that never had nft
            if empty and self.runner.available("nft"):
                self.runner.check(["nft", "delete", "table", IPT_TOOLS[self.family][1], self.table])
            os.unlink(mark)
            if not os.listdir(IPT_MADE_DIR):
                os.rmdir(IPT_MADE_DIR)

    def _nft_table(self) -> bool | None:
        """Whether nftables holds `table ip TABLE` (None: no nft, or iptables-legacy: nothing to track)."""
        if not self.runner.available("nft") or not self.nf_tables():
            return None
        return self.runner.run(["nft", "list", "table", IPT_TOOLS[self.family][1], self.table])[0] == 0


class Ip6tables(Iptables):
    """ip6tables on table nat: IPv6's side of IptablesNat."""
    family = 6


class IptablesNat(Iptables):
    """Table nat of both families: IPv4's with iptables, IPv6's with ip6tables (`six`), each in a transaction
    of its own. ip6tables runs only where the run or the kernel has IPv6 NAT; a node without it serves IPv4."""

    def __init__(self, runner):
        super().__init__(runner)
        self.six = Ip6tables(runner)

    def read(self) -> Owned:
        return self.parse(self.save(), self.six.save() if self._six_present() else None)

    def _six_present(self) -> bool:
        """Whether ip6tables may hold ours: it is installed, and the kernel has an IPv6 table nat in either
        variant (asked without a process; iptables-legacy's node is not made to load nf_tables)."""
        netns = self.runner.netns
        if not self.six.available():
            return False
        if self.table in legacy_tables(netns, "ip6"):
            return True
        if not (self.nf_tables() or os.path.exists("/sys/module/nf_tables")):
            return False
        return nf_table_exists(netns, "ip6", self.table) is not False

    def counted(self) -> bool:
        """As iptables', and IPv6's count too unless ip6tables-legacy holds a table nat (it may hold ours)."""
        return self.nf_tables() and self.table not in legacy_tables(self.runner.netns, "ip6")

    def refused(self, transactions: list) -> str | None:
        """Writing IPv6 entries needs ip6tables, whose variant must not have others' rules in the other one either."""
        six = [f"masquerade entry {entry.source}" for tx in transactions if tx.family == 6 for entry in tx.want.nat.masquerade]
        six += [f"service {service.name}" for tx in transactions if tx.family == 6 for service in tx.want.nat.services]
        if not six:
            return None
        if not self.six.available():
            return (f"backend: iptables writes the IPv6 {six[0]} with "
                    f"{' and '.join(self.six.tools)}, which are not on the node; install them or choose the nftables backend")
        return self.six.mixed()

    def transactions(self, have: Owned, want: Owned) -> list:
        """One per family whose rules differ: iptables-restore, then ip6tables-restore."""
        out = []
        for version, old, new in have.detail.changed(want.detail):
            writer = self.six if version == 6 else self
            script, description = ipt_script(old, new, self.table, writer.tool, writer.nf_tables)
            out.append(Transaction(self.name, description, list(writer.write_argv), script,
                                   Owned(have.nat.family(version), old), Owned(want.nat.family(version), new), version))
        return out

    def apply(self, transaction: Transaction) -> None:
        if transaction.family == 6:
            self.six.apply(transaction)
        else:
            super().apply(transaction)

    @staticmethod
    def parse(text: str, text6: str | None = None) -> Owned:
        """Our part of `iptables-save -t nat` and `ip6tables-save -t nat` output (None: no IPv6 table nat)."""
        four, six = parse_iptables_save(text), parse_iptables_save(text6 or "")
        (services, addresses, cidrs), (services6, addresses6, cidrs6) = ipt_services(four), ipt_services(six)
        masquerade = sorted(ipt_masquerade(four) + ipt_masquerade(six, 6), key=source_order)
        return Owned(NatSet(tuple(masquerade), tuple(sorted(services + services6, key=svc.service_order)),
                            addresses + addresses6, cidrs + cidrs6), Families(four, six, IPT6_LABEL))

    draw = staticmethod(draw_families(lambda nat, version: ipt_render(nat), IPT6_LABEL))
    merge = staticmethod(merge_families(ipt_merge))

    @staticmethod
    def probe(state: Families) -> list | None:
        """`iptables -C` of one jump of ours from a built-in chain (IPv6's with ip6tables where IPv4 has none):
        gone when the table is flushed."""
        for (tool, _family), part in zip(IPT_TOOLS.values(), state[:2]):
            if part.jumps:
                return [tool, "-w", "-t", IPT_TABLE, "-C"] + list(sorted(part.jumps)[0][1:])
        return None
