# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NAT rules as owned sets: the model and the transaction every firewall backend shares. Private to
this collection.

Two kinds of rules, each a set we own:
- masquerade: pod egress through the node's address (seed lab 3);
- services: ClusterIP and NodePort DNAT to endpoints chosen at random, with a masquerade
  mark for node-port and hairpin traffic (seed labs 4 and 5), as kube-proxy writes them.

What we make is ours by construction, so it can be rewritten; each backend says how in its own file:
_iptables.py (chains HANDCNI-* in table nat, one `iptables-restore --noflush`, and for IPv6 one
`ip6tables-restore --noflush`) and _nftables.py (the tables `ip handcni` and `ip6 handcni`, one `nft -f -`).
Both run their tools through _command.Runner.

The kernel keeps tables per family, so a NAT backend's state is `Families`: IPv4's and IPv6's (masquerade
and services, a dual-stack service being one entry per family), each drawn from its part of the NatSet (`NatSet.family`).

A run manages some kinds (those it is given); what is ours of the other kinds is carried
over untouched. Each backend reads what is ours into `Owned`: canonical text lines (what
the diff shows and what is compared) and the model read back from them (kept, or carried
to the other backend, when not pruned). The desired `NatSet` renders to the same lines,
so "no change" is plain equality. A backend implements `Backend`'s read, draw, merge and script;
planning a `Transaction` and applying it are shared here. Everything but Backend.read/apply is pure;
bad input raises ValueError, a failing tool CommandError (an OSError).
"""
from __future__ import annotations

import ipaddress
import re
from typing import Callable, NamedTuple

from . import _services as svc
from . import _validate as validate
from ._command import Runner
from ._netlink import OWNER

KINDS = ("masquerade", "services")

MASQUERADE_COMMENT = f"{OWNER} masquerade"
SERVICES_COMMENT = f"{OWNER} services"
NODEPORTS_COMMENT = f"{OWNER} nodeports"
SERVICES_MASQ_COMMENT = f"{OWNER} services masquerade"
OUTSIDE_COMMENT = f"{OWNER} from outside the cluster"
# Characters an interface name may have here: iptables-restore and nft take them unquoted.
_FIREWALL_IFNAME = re.compile(r"^[A-Za-z0-9_.-]+$")

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

    @property
    def version(self) -> int:
        """The entry's family (its source's; its excludes are of the same)."""
        return 6 if ":" in self.source else 4

    def public(self) -> dict:
        return {"source": self.source, "exclude": list(self.exclude), "out_interface_not": self.out_interface_not}


class NatSet(NamedTuple):
    """Everything of ours in one namespace; empty means nothing of ours exists.

    `node_addresses` are where node ports listen; they go with the services."""
    masquerade: tuple = ()
    services: tuple = ()
    node_addresses: tuple = ()
    cluster_cidrs: tuple = ()  # the pods' networks: traffic from elsewhere to a cluster IP is masqueraded

    def __bool__(self) -> bool:
        return bool(self.masquerade or self.services)

    def family(self, version: int) -> "NatSet":
        """The part of this set that goes in one family's tables (a dual-stack service is an entry in each)."""
        return NatSet(tuple(entry for entry in self.masquerade if entry.version == version),
                      tuple(service for service in self.services if service.version == version),
                      tuple(address for address in self.node_addresses if (":" in address) == (version == 6)),
                      tuple(cidr for cidr in self.cluster_cidrs if (":" in cidr) == (version == 6)))

    def public(self, with_services: bool = True) -> dict:
        """As a module returns it; without the services themselves (their count) unless `with_services`."""
        return {"masquerade": [e.public() for e in self.masquerade],
                **({"services": [s.public() for s in self.services]} if with_services else {}),
                "service_count": len(self.services),
                "node_addresses": list(self.node_addresses) if self.services else [],
                "cluster_cidrs": list(self.cluster_cidrs) if self.services else []}


def natset_from_json(data: list) -> NatSet:
    """A NatSet from its JSON form (json.dumps of a NatSet: its named tuples as lists)."""
    masquerade, services, addresses, cidrs = data

    def endpoints(items):
        return tuple(svc.Endpoint(ip, port) for ip, port in items)
    return NatSet(tuple(Masquerade(source, tuple(exclude), oif) for source, exclude, oif in masquerade),
                  tuple(svc.Service(name, cluster_ip, port, protocol, node_port, endpoints(chosen), tuple(external),
                                    None if local is None else endpoints(local))
                        for name, cluster_ip, port, protocol, node_port, chosen, external, local in services),
                  tuple(addresses), tuple(cidrs))


def managed_kinds(params: dict) -> tuple:
    """The kinds a run manages: those whose option is given (node addresses go with the services); none
    given means all (e.g. remove everything)."""
    given = {kind for kind in KINDS if params.get(kind) is not None}
    if params.get("node_addresses") is not None or params.get("cluster_cidrs") is not None:
        given.add("services")
    return tuple(kind for kind in KINDS if kind in given) or KINDS


def merged(sets) -> NatSet:
    """Several backends' sets as one: the first holding an entry (by source, by name) wins."""
    masquerade, services, addresses, cidrs = {}, {}, (), ()
    for nat in sets:
        for entry in nat.masquerade:
            masquerade.setdefault(entry.source, entry)
        for service in nat.services:
            services.setdefault(service.key, service)
        addresses = addresses or (nat.node_addresses if nat.services else ())
        cidrs = cidrs or (nat.cluster_cidrs if nat.services else ())
    return NatSet(tuple(sorted(masquerade.values(), key=source_order)),
                  tuple(sorted(services.values(), key=svc.service_order)), addresses, cidrs)


def carried(target: NatSet, have: NatSet, kinds) -> NatSet:
    """What a backend holds after a run: the target for the managed kinds, what it had for the others."""
    services = target if "services" in kinds else have
    return NatSet(target.masquerade if "masquerade" in kinds else have.masquerade,
                  services.services, services.node_addresses, services.cluster_cidrs)


def _family_network(value, field: str, source) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network of `source`'s family (an entry is of one family: IPv6 excludes go with an IPv6 source)."""
    net = ipaddress.ip_network(validate.network(value, field))
    if net.version != source.version:
        raise ValueError(f"{field}: {value!r} is an IPv{net.version} network, but the entry's source {source} is "
                         f"IPv{source.version} (give each family its own masquerade entry)")
    return net


def collapse(networks) -> tuple:
    """Networks as the kernel keeps an interval set: overlaps and neighbours merged, sorted (IPv4's, then IPv6's)."""
    networks = list(networks)
    return tuple(str(n) for version in (4, 6)
                 for n in ipaddress.collapse_addresses(net for net in networks if net.version == version))


def firewall_ifname(value, field: str) -> str:
    validate.ifname(value, field)
    if not _FIREWALL_IFNAME.fullmatch(value):
        raise ValueError(f"{field}: interface name {value!r} has characters a firewall rule cannot take "
                         "(use letters, digits, '_', '.', '-')")
    return value


def normalise_masquerade(item: dict, field: str) -> Masquerade:
    """One entry, IPv4 or IPv6, normalised ('default' is any IPv4 source, as 0.0.0.0/0; ::/0 any IPv6 one)."""
    source = ipaddress.ip_network(validate.network(item.get("source"), f"{field}.source"))
    excludes = []
    for index, value in enumerate(item.get("exclude") or []):
        net = _family_network(value, f"{field}.exclude[{index}]", source)
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


def normalise_cidrs(values, field: str = "cluster_cidrs", ipv6: bool = True) -> tuple:
    """Networks as the kernel keeps an interval set (see collapse), of either family unless not `ipv6`."""
    nets = [ipaddress.ip_network(validate.network(value, f"{field}[{index}]")) for index, value in enumerate(values or [])]
    for index, net in enumerate(nets):
        if net.version == 6 and not ipv6:
            raise ValueError(f"{field}[{index}]: {values[index]!r} is not an IPv4 network (IPv6 is not supported yet)")
    return collapse(nets)


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


def masquerade_source(comment: str | None) -> str | None:
    """The source a masquerade rule's comment names (`Masquerade.comment`); None for any other comment."""
    prefix = MASQUERADE_COMMENT + " "
    return comment[len(prefix):] if comment and comment.startswith(prefix) else None


def masquerade_from(source_text: str, exclude: list, oif: str | None, version: int = 4) -> Masquerade | None:
    """An entry read back from the kernel's tables of family `version`; None if its comment does not name a
    network of that family. Excludes of the other family (made by hand) are not the entry's."""
    try:
        source = ipaddress.ip_network(source_text)
    except ValueError:
        return None
    if source.version != version:
        return None
    return Masquerade(str(source), collapse(net for net in exclude if net.version == version), oif)


# --- the transaction and the backend interface ----------------------------------

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


class Families(NamedTuple):
    """A NAT backend's state, per family (the kernel keeps each family's tables apart): IPv4's, as before dual
    stack, and IPv6's, whose lines follow with `label` in front (none where they name their table already)."""
    four: object
    six: object
    label: str = ""

    def same(self, other: "Families") -> bool:
        return self.four.same(other.four) and self.six.same(other.six)

    def lines(self) -> list:
        return self.four.lines() + [self.label + line for line in self.six.lines()]

    def changed(self, want: "Families") -> list:
        """[(version, this state, `want`'s)] of the families whose state differs."""
        return [(version, have, wanted) for version, have, wanted in ((4, self.four, want.four), (6, self.six, want.six))
                if not have.same(wanted)]


def draw_families(draw: Callable, label: str = "") -> Callable:
    """A NAT backend's `draw`, family by family: draw(the NatSet's part, version) -> that family's state."""
    return lambda nat: Families(draw(nat.family(4), 4), draw(nat.family(6), 6), label)


def merge_families(merge: Callable) -> Callable:
    """A NAT backend's `merge`, family by family: merge(drawn, have, kinds) of one family's states."""
    return lambda drawn, have, kinds: drawn._replace(four=merge(drawn.four, have.four, kinds),
                                                     six=merge(drawn.six, have.six, kinds))


class Transaction:
    """One atomic change of one backend: the command, its input, and what it holds before and after
    (`have` and `want`, whose lines are the diff). `family`: the one family it writes, where a backend
    writes each with its own command (iptables, ip6tables); None: all of the backend's."""

    def __init__(self, backend: str, description: str, argv: list, script: str, have: Owned, want: Owned,
                 family: int | None = None):
        self.backend, self.description, self.argv, self.script = backend, description, argv, script
        self.have, self.want, self.family = have, want, family

    @property
    def before(self) -> list:
        return self.have.lines

    @property
    def after(self) -> list:
        return self.want.lines

    def public(self) -> dict:
        return {"backend": self.backend, "argv": self.argv, "input": self.script}


class Backend:
    """One firewall backend. A subclass says how its tools read what is ours (`read`), how a NatSet looks in
    its own state (`draw`, `merge`) and how to write a change (`script`); planning and applying are shared.

    Its state (Owned.detail) compares with `same` and prints canonical `lines`. Each kind (masquerade,
    services; later policy) is drawn and read by functions of its own in the backend's file, and claimed
    by name there (`ipt_kind`, `nft_kind`), so that a run can manage one kind and carry the others."""
    name = ""
    tools: tuple = ()
    write_argv: list = []

    def __init__(self, runner: Runner):
        self.runner = runner
        self._drawn: tuple | None = None  # (NatSet, its state) of the last render

    def available(self) -> bool:
        return self.runner.available(*self.tools)

    def counted(self) -> bool:
        """Whether the kernel's nf_tables generation counts this backend's changes (_netlink.ruleset_mark)."""
        return True

    def mixed(self) -> str | None:
        """Why this node must not get our rules in this backend (None: it may)."""
        return None

    def read(self) -> Owned:
        """What is ours now, read with the backend's tools."""
        raise NotImplementedError

    # The backend's pure functions, as staticmethods of the subclass:
    # draw(nat) -> state: the state holding exactly `nat`;
    # merge(drawn, have, kinds) -> state: `drawn` for the managed kinds, what the state `have` holds of the others;
    # script(have, want) -> (input for write_argv, description) turning the state `have` into `want`.
    # probe(state) -> argv or None: one cheap command that exits 0 while `state` is in place (the canary of
    # the node-side restore, _restore.py).
    draw: Callable
    merge: Callable
    script: Callable
    probe: Callable

    def render(self, nat: NatSet, kinds: tuple = KINDS, have: Owned | None = None) -> Owned:
        """The wanted state: `nat` for the managed kinds, plus what `have` holds of the other kinds."""
        state = self.draw(nat)
        self._drawn = (nat, state)
        if have is not None:
            state = self.merge(state, have.detail, tuple(kinds))
        return Owned(nat, state)

    def drawing(self, nat: NatSet):
        """draw(nat), the last render's where it drew the same set: a run draws its target to plan, and again to
        check the record it keeps (10,000 services: a quarter of a second each)."""
        return self._drawn[1] if self._drawn and self._drawn[0] == nat else self.draw(nat)

    def plans(self, have: Owned, nat: NatSet, kinds: tuple = KINDS) -> tuple:
        """(want, transactions): the wanted state (`render`) and the transactions making it (none: it is in place)."""
        want = self.render(nat, kinds, have)
        return want, [] if have.detail.same(want.detail) else self.transactions(have, want)

    def transactions(self, have: Owned, want: Owned) -> list:
        """One transaction of `script`; a backend writing each family with its own command makes one per family."""
        script, description = self.script(have.detail, want.detail)
        return [Transaction(self.name, description, list(self.write_argv), script, have, want)]

    def plan(self, have: Owned, nat: NatSet, kinds: tuple = KINDS) -> Transaction | None:
        """The transaction making `nat` (None: nothing to do), for a backend writing with one command (see plans)."""
        transactions = self.plans(have, nat, kinds)[1]
        return transactions[0] if transactions else None

    def refused(self, transactions: list) -> str | None:
        """Why this node cannot take these transactions of this backend, beyond `mixed` (asked before any change,
        so that a check costs only the runs that need it); None: it can."""
        return None

    def apply(self, transaction: Transaction) -> None:
        self.runner.check(transaction.argv, transaction.script)


def backends_in_order(classes: dict, runner: Runner, chosen: str, writes: bool) -> tuple:
    """A firewall module's backends ({name: Backend}) and the names of those whose tools are installed, the chosen
    one first (it is written before the other one is emptied). `writes`: the run puts rules of ours in the chosen
    one, which must then be able to take them (ValueError before any change: its tools missing, or its `mixed`)."""
    backends = {name: cls(runner) for name, cls in classes.items()}
    if writes and not backends[chosen].available():
        raise ValueError(f"backend: {chosen} needs {' and '.join(backends[chosen].tools)} on the node; "
                         "install it or choose the other backend")
    mixed = backends[chosen].mixed() if writes else None
    if mixed:
        raise ValueError(mixed)
    return backends, [name for name in [chosen] + [n for n in backends if n != chosen] if backends[name].available()]


def merge_kinds(drawn, have, kinds: tuple, kind_of) -> list:
    """The items of `drawn` whose kind is managed, then those of `have` of the other kinds. What no kind
    claims (kind_of gives None) is left out, so it is removed."""
    return [item for item in drawn if kind_of(item) in kinds] + \
        [item for item in have if kind_of(item) not in kinds + (None,)]


def chain_changes(have: dict, want: dict) -> tuple:
    """(new, changed, stale) chain names, each sorted: chains only `want` has, chains both have that
    differ, chains only `have` has."""
    new = sorted(set(want) - set(have))
    changed = sorted(name for name in set(want) & set(have) if want[name] != have[name])
    return new, changed, sorted(set(have) - set(want))


def plural(items, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def chain_parts(verb: str, names: list, rules: dict | None = None) -> list:
    """'write chain X (2 rules)' for a few chains, 'write 3000 chains' for many."""
    if len(names) > 3:
        return [f"{verb} {len(names)} chains"]
    return [f"{verb} chain {name}" + (f" ({plural(rules[name], 'rule')})" if rules is not None else "")
            for name in names]


# --- reading addresses back ------------------------------------------------------

def address(text: str) -> str:
    """An address as the tools print it: IPv4's canonical dotted quad (checked without ipaddress's cost, for the
    thousands a large service set has) or IPv6's canonical form; ValueError otherwise."""
    if ":" in text:
        return str(ipaddress.IPv6Address(text))
    if not svc.DOTTED_QUAD.fullmatch(text):
        raise ValueError(text)
    return text


def host(value: str) -> str:
    """'11.96.10.3/32', 'fd00::1/128' or the address alone as the address; ValueError for a wider network."""
    text, dummy, length = value.partition("/")
    if length not in ("", "128" if ":" in text else "32"):
        raise ValueError(value)
    return address(text)


def host_network(ip: str) -> str:
    """An address as a host network: '11.96.10.3/32', 'fd00::1/128'."""
    return f"{ip}/128" if ":" in ip else f"{ip}/32"


def endpoint_from(text: str) -> svc.Endpoint:
    """'192.168.10.3:80' or '[fd00:10::3]:80' as an Endpoint; ValueError otherwise."""
    ip, dummy, port = text.rpartition(":")
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    return svc.Endpoint(address(ip), int(port))
