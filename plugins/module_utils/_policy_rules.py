# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network policy (issue 19): this node's pods and their allow lists as firewall rules of ours, in either
backend. Private to this collection.

The model (_policy.py) compiles Kubernetes NetworkPolicies into the network_policy module's `pods`; here
they are validated and normalised (`normalise_pods`), drawn in a backend's canonical text, read back from
the kernel in the same text, and written in one transaction (planning is _firewall.Backend's). Only the
forward hook is filtered, by address: traffic to an isolated pod's IP (ingress) or from it (egress) goes
through the pod's chain, which returns for what a rule allows and drops the rest; replies of allowed
connections pass (conntrack). The node's own traffic to and from its pods (OUTPUT, INPUT) is not filtered.

- nftables: the table `inet handcni-policy`, base chain `forward` (priority filter, policy accept):
  established/related accepted (which ends only our table: others' still judge the packet), then the
  verdict maps `ingress` (ip daddr) and `egress` (ip saddr) jump to `ingress-IP` / `egress-IP`. Any
  difference replaces the table in one `nft -f -` (it is per node and small).
- iptables: table filter, chain HANDCNI-POLICY entered first from FORWARD, RETURN for established/related,
  then `-d IP/32 -j HANDCNI-IN-IP` and `-s IP/32 -j HANDCNI-EG-IP`; the pod chains RETURN what is allowed
  and DROP the rest. Nothing of ours ACCEPTs, so others' FORWARD rules still see every packet.
  One `iptables-restore --noflush` writes the chains that differ (_iptables.ipt_script).
"""
from __future__ import annotations

import ipaddress
import json
import re
from typing import NamedTuple

from . import _firewall as firewall
from . import _validate as validate
from ._firewall import Owned
from ._iptables import IptState, Iptables, _ipt_comment, _ipt_jump, ipt_script, parse_iptables_save
from ._netlink import OWNER
from ._nftables import (NftChain, NftMap, Nftables, _Unrecognised, nft_addresses, nft_objects, nft_rule_text,
                        nft_table_lines, nft_term)

PROTOCOLS = ("sctp", "tcp", "udp")
DIRECTIONS = ("ingress", "egress")
REPLIES_COMMENT = f"{OWNER} replies"
COMMENT_NAME_MAX = 80  # nft keeps at most 128 bytes of a comment
_NAME = re.compile(r"^[A-Za-z0-9_./-]+$")

PORT_SPEC = dict(
    protocol=dict(type="str", default="tcp"),
    port=dict(type="int"),
    end_port=dict(type="int"),
)
RULE_SPEC = dict(
    peers=dict(type="list", elements="str"),
    ports=dict(type="list", elements="dict", options=PORT_SPEC),
)
POD_SPEC = dict(
    name=dict(type="str", required=True),
    ip=dict(type="str", required=True),
    ingress=dict(type="list", elements="dict", options=RULE_SPEC),
    egress=dict(type="list", elements="dict", options=RULE_SPEC),
)

NFT_FAMILY = "inet"
NFT_TABLE = "handcni-policy"
NFT_PREFIX = f"{NFT_FAMILY} {NFT_TABLE}"
NFT_FORWARD = "type filter hook forward priority 0; policy accept;"  # as nft -j reads back `priority filter`
NFT_MAP_TYPE = "ipv4_addr : verdict"
NFT_FIELDS = {"ingress": ("daddr", "saddr"), "egress": ("saddr", "daddr")}  # (the pod's, the peer's)

IPT_TABLE = "filter"
IPT_POLICY = "HANDCNI-POLICY"
IPT_CHAINS = {"ingress": "HANDCNI-IN-", "egress": "HANDCNI-EG-"}  # + the pod's IP: at most 26 characters
IPT_OPTIONS = {"ingress": ("-d", "-s"), "egress": ("-s", "-d")}  # (the pod's, the peer's)


# --- the wanted set -----------------------------------------------------------

class Ports(NamedTuple):
    """One protocol's destination ports: ranges (first, last), sorted and merged; None: every port."""
    protocol: str
    ranges: tuple | None = None

    def public(self) -> list:
        if self.ranges is None:
            return [{"protocol": self.protocol, "port": None, "end_port": None}]
        return [{"protocol": self.protocol, "port": first, "end_port": last if last != first else None}
                for first, last in self.ranges]


class Rule(NamedTuple):
    """What one rule allows: peers (CIDRs, collapsed; None: any address) and ports (one Ports per protocol;
    None: every protocol and port, ICMP too)."""
    peers: tuple | None
    ports: tuple | None

    def public(self) -> dict:
        return {"peers": None if self.peers is None else list(self.peers),
                "ports": None if self.ports is None else [entry for ports in self.ports for entry in ports.public()]}


class PodRules(NamedTuple):
    """A pod of this node and its allow lists; a direction that is None is not isolated (no rules)."""
    name: str
    ip: str
    ingress: tuple | None = None
    egress: tuple | None = None

    def comment(self, direction: str) -> str:
        name = self.name if len(self.name) <= COMMENT_NAME_MAX else self.name[:COMMENT_NAME_MAX - 3] + "..."
        return f"{OWNER} {direction} {name}"

    def public(self) -> dict:
        return {"name": self.name, "ip": self.ip,
                **{d: None if getattr(self, d) is None else [r.public() for r in getattr(self, d)] for d in DIRECTIONS}}


def merge_ranges(ranges) -> tuple:
    """Port ranges sorted, overlapping and adjacent ones merged."""
    merged = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(merged)


def _ports(items, field: str) -> tuple | None:
    if items is None:
        return None
    found = {}  # protocol -> [(first, last)], or None for every port
    for index, item in enumerate(validate.items(items, field)):
        where = f"{field}[{index}]"
        body = validate.mapping(item, where, tuple(PORT_SPEC))
        protocol = body.get("protocol")
        protocol = "tcp" if protocol is None else protocol.lower() if isinstance(protocol, str) else protocol
        if protocol not in PROTOCOLS:
            raise ValueError(f"{where}.protocol: {body.get('protocol')!r} is not one of {', '.join(PROTOCOLS)}")
        port, end = body.get("port"), body.get("end_port")
        if port is None:
            if end is not None:
                raise ValueError(f"{where}.end_port: {end!r} needs port")
            found[protocol] = None
            continue
        port = validate.integer(port, f"{where}.port", 1, 65535)
        end = port if end is None else validate.integer(end, f"{where}.end_port", 1, 65535)
        if end < port:
            raise ValueError(f"{where}.end_port: {end} is below port {port}")
        if found.get(protocol, []) is not None:
            found.setdefault(protocol, []).append((port, end))
    return tuple(Ports(protocol, None if ranges is None else merge_ranges(ranges))
                 for protocol, ranges in sorted(found.items()))


def _peers(items, field: str) -> tuple | None:
    if items is None:
        return None
    peers = firewall.normalise_cidrs(validate.items(items, field), field, ipv6=False)
    return None if peers == ("0.0.0.0/0",) else peers  # every IPv4 address: no match needed


def rule_order(rule: Rule) -> tuple:
    return (rule.peers is not None, [validate.address_order(peer) for peer in rule.peers or ()],
            rule.ports is not None, [(p.protocol, p.ranges is not None, p.ranges or ()) for p in rule.ports or ()])


def _rules(items, field: str) -> tuple | None:
    """A direction's rules, deduplicated and sorted; those matching nothing (no peer, or no port) left out."""
    if items is None:
        return None
    rules = set()
    for index, item in enumerate(validate.items(items, field)):
        where = f"{field}[{index}]"
        body = validate.mapping(item, where, tuple(RULE_SPEC))
        peers, ports = _peers(body.get("peers"), f"{where}.peers"), _ports(body.get("ports"), f"{where}.ports")
        if peers != () and ports != ():
            rules.add(Rule(peers, ports))
    return tuple(sorted(rules, key=rule_order))


def _pod_ip(value, field: str) -> str:
    ip = validate.address(value, field)
    if ipaddress.ip_address(ip).version != 4:
        raise ValueError(f"{field}: {value!r} is not an IPv4 address (IPv6 is not supported yet)")
    return ip


def normalise_pods(items, field: str = "pods") -> tuple:
    """The pods as PodRules, sorted by IP; ValueError naming the field of the first problem."""
    pods, seen = [], {}
    for index, item in enumerate(validate.items(items or [], field)):
        where = f"{field}[{index}]"
        body = validate.mapping(item, where, tuple(POD_SPEC))
        name = body.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"{where}.name: {name!r} is not a pod name like default/netns3 "
                             "(letters, digits, '_', '.', '-', '/')")
        ip = _pod_ip(body.get("ip"), f"{where}.ip")
        if ip in seen:
            raise ValueError(f"{where}.ip: {ip} is also {field}[{seen[ip]}].ip")
        seen[ip] = index
        pods.append(PodRules(name, ip, *(_rules(body.get(d), f"{where}.{d}") for d in DIRECTIONS)))
    return tuple(sorted(pods, key=lambda pod: ipaddress.IPv4Address(pod.ip)))


def isolated(pods) -> list:
    return [pod for pod in pods if pod.ingress is not None or pod.egress is not None]


def rule_comment(pod: PodRules, direction: str, number: int) -> str:
    return f"{pod.comment(direction)} rule {number}"


def keep_drawn(drawn, _have, _kinds):
    """Backend.merge: a policy run manages everything of ours in its table, so what it draws is all."""
    return drawn


# --- nftables -----------------------------------------------------------------

def nft_ports(ranges) -> str:
    texts = [str(first) if first == last else f"{first}-{last}" for first, last in ranges]
    return texts[0] if len(texts) == 1 else "{ " + ", ".join(texts) + " }"


def _nft_matches(rule: Rule, peer_field: str) -> list:
    """The matches of each nft rule an allow rule becomes: one per protocol, or one for every protocol."""
    peer = [f"ip {peer_field} {nft_addresses(rule.peers)}"] if rule.peers is not None else []
    if rule.ports is None:
        return [peer]
    return [peer + [f"meta l4proto {p.protocol}" if p.ranges is None else f"{p.protocol} dport {nft_ports(p.ranges)}"]
            for p in rule.ports]


class PolicyNft(NamedTuple):
    """Our table: chains (name -> NftChain), verdict maps (name -> NftMap), and what we cannot read, as text."""
    exists: bool
    chains: dict
    maps: dict
    unrecognised: list

    def holds_ours(self) -> bool:
        return self.exists

    def same(self, other: "PolicyNft") -> bool:
        return (not self.exists and not other.exists) or self == other

    def lines(self) -> list:
        return nft_table_lines(NFT_PREFIX, self) if self.exists else []


EMPTY_NFT = PolicyNft(False, {}, {}, [])


def nft_render(pods) -> PolicyNft:
    if not isolated(pods):
        return EMPTY_NFT
    chains, maps = {}, {}
    for direction in DIRECTIONS:
        elements, peer_field = {}, NFT_FIELDS[direction][1]
        for pod in pods:
            rules = getattr(pod, direction)
            if rules is None:
                continue
            chain = f"{direction}-{pod.ip}"
            elements[pod.ip] = f"jump {chain}"
            body = [nft_rule_text(matches + ["return"], rule_comment(pod, direction, number))
                    for number, rule in enumerate(rules) for matches in _nft_matches(rule, peer_field)]
            chains[chain] = NftChain("", body + [nft_rule_text(["drop"], pod.comment(direction))])
        maps[direction] = NftMap(NFT_MAP_TYPE, elements)
    chains["forward"] = NftChain(NFT_FORWARD, [
        nft_rule_text(["ct state established,related", "accept"], REPLIES_COMMENT),
        *(nft_rule_text([f"ip {NFT_FIELDS[d][0]} vmap @{d}"], f"{OWNER} {d}") for d in DIRECTIONS)])
    return PolicyNft(True, chains, maps, [])


def _nft_ranges(value) -> list:
    """A port expression of `nft -j` (a number, a range, or a set of those) as (first, last) ranges."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [(value, value)]
    if isinstance(value, dict) and "range" in value:
        first, last = value["range"]
        if isinstance(first, int) and isinstance(last, int):
            return [(first, last)]
    if isinstance(value, dict) and isinstance(value.get("set"), list):
        return [pair for item in value["set"] for pair in _nft_ranges(item)]
    raise _Unrecognised(value)


def nft_policy_term(expr) -> str:
    """One expression of a rule of ours from `nft -j`, as we write it; _Unrecognised for anything else."""
    kind, value = next(iter(expr.items())) if isinstance(expr, dict) and len(expr) == 1 else (None, None)
    if kind == "match" and isinstance(value, dict) and isinstance(value.get("left"), dict):
        left, right, op = value["left"], value.get("right"), value.get("op")
        if left == {"ct": {"key": "state"}} and op in ("in", "=="):
            states = right if isinstance(right, list) else [right]
            if all(isinstance(state, str) for state in states):
                return "ct state " + ",".join(sorted(states))
        payload = left.get("payload")
        if isinstance(payload, dict) and payload.get("protocol") in PROTOCOLS and payload.get("field") == "dport" \
                and op == "==":
            return f"{payload['protocol']} dport {nft_ports(merge_ranges(_nft_ranges(right)))}"
        if left == {"meta": {"key": "l4proto"}} and op == "==" and right in PROTOCOLS:
            return f"meta l4proto {right}"
    if kind == "vmap" and isinstance(value, dict) and isinstance(value.get("key"), dict):
        payload, data = value["key"].get("payload"), value.get("data")
        if isinstance(payload, dict) and payload.get("protocol") == "ip" and payload.get("field") in ("saddr", "daddr") \
                and isinstance(data, str) and data.startswith("@"):
            return f"ip {payload['field']} vmap {data}"
    return nft_term(expr).text


def parse_nft_policy(text: str) -> PolicyNft:
    """Our table from `nft -j list table inet handcni-policy` output, in the text nft_render writes."""
    exists, chains, maps, unrecognised, rules = nft_objects(text, NFT_FAMILY, NFT_TABLE)
    for rule in rules:
        chain = chains.setdefault(rule["chain"], NftChain("", []))
        try:
            texts = [nft_policy_term(expr) for expr in rule.get("expr", [])]
        except (_Unrecognised, KeyError, TypeError, ValueError):
            texts = [f"# unrecognised {json.dumps(rule.get('expr'), sort_keys=True)}"]
        chain.rules.append(nft_rule_text(texts, rule.get("comment")))
    return PolicyNft(exists, chains, maps, unrecognised)


def nft_script(have: PolicyNft, want: PolicyNft) -> tuple:
    """`nft -f` input making our table `want` in one transaction: deleted, or made whole again (add and
    delete first, which works whether it exists or not)."""
    head = [f"add table {NFT_PREFIX}", f"delete table {NFT_PREFIX}"]
    if not want.exists:
        return "\n".join(head) + "\n", f"nft -f: delete table {NFT_PREFIX}"
    lines = head + [f"add table {NFT_PREFIX}"]
    for name in sorted(want.chains):  # chains first: the maps' elements jump to them
        header = want.chains[name].header
        lines.append(f"add chain {NFT_PREFIX} {name}" + (f" {{ {header} }}" if header else ""))
    for name in sorted(want.maps):
        vmap = want.maps[name]
        lines.append(f"add map {NFT_PREFIX} {name} {{ type {vmap.type}; }}")
        if vmap.elements:
            lines.append(f"add element {NFT_PREFIX} {name} {{ "
                         + ", ".join(f"{key} : {vmap.elements[key]}" for key in sorted(vmap.elements)) + " }")
    for name in sorted(want.chains):
        lines += [f"add rule {NFT_PREFIX} {name} {rule}" for rule in want.chains[name].rules]
    rules = sum(len(chain.rules) for chain in want.chains.values())
    pods = {ip for vmap in want.maps.values() for ip in vmap.elements}
    return "\n".join(lines) + "\n", (f"nft -f: {'replace' if have.exists else 'create'} table {NFT_PREFIX} "
                                     f"({firewall.plural(pods, 'pod')}, {firewall.plural(want.chains, 'chain')}, "
                                     f"{firewall.plural(range(rules), 'rule')})")


class NftablesPolicy(Nftables):
    family, table = NFT_FAMILY, NFT_TABLE

    @staticmethod
    def parse(text: str | None) -> Owned:
        return Owned(None, EMPTY_NFT if text is None else parse_nft_policy(text))

    draw = staticmethod(nft_render)
    merge = staticmethod(keep_drawn)
    script = staticmethod(nft_script)

    @staticmethod
    def probe(state: PolicyNft) -> list | None:
        """List our base chain: fails when the ruleset or our table was flushed."""
        return ["nft", "list", "chain", NFT_FAMILY, NFT_TABLE, "forward"] if state.exists else None


# --- iptables -----------------------------------------------------------------

def is_policy_chain(chain: str) -> bool:
    return chain == IPT_POLICY or chain.startswith(tuple(IPT_CHAINS.values()))


def parse_ipt_policy(text: str) -> IptState:
    """Our policy chains of table filter in `iptables-save` output, and the jump into them; any other
    HANDCNI- chain there is not this module's and left out (so it is never touched)."""
    state = parse_iptables_save(text, IPT_TABLE)
    return IptState({name: rules for name, rules in state.chains.items() if is_policy_chain(name)},
                    [jump for jump in state.jumps if is_policy_chain(jump[-1])])


def _ipt_allow(chain: str, rule: Rule, peer_option: str, comment: tuple) -> list:
    """The RETURN rules of one allow rule: one per peer, protocol and port range."""
    out = []
    for peer in rule.peers or (None,):
        head = ("-A", chain) + ((peer_option, peer) if peer else ())
        for ports in rule.ports or (None,):
            if ports is None:
                out.append(head + comment + ("-j", "RETURN"))
            elif ports.ranges is None:
                out.append(head + ("-p", ports.protocol) + comment + ("-j", "RETURN"))
            else:
                out += [head + ("-p", ports.protocol) + comment
                        + ("-m", ports.protocol, "--dport", str(first) if first == last else f"{first}:{last}",
                           "-j", "RETURN") for first, last in ports.ranges]
    return out


def ipt_render(pods) -> IptState:
    if not isolated(pods):
        return IptState({}, [])
    policy = [("-A", IPT_POLICY, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED")
              + _ipt_comment(REPLIES_COMMENT) + ("-j", "RETURN")]
    chains = {}
    for direction in DIRECTIONS:
        pod_option, peer_option = IPT_OPTIONS[direction]
        for pod in pods:
            rules = getattr(pod, direction)
            if rules is None:
                continue
            chain = IPT_CHAINS[direction] + pod.ip
            policy.append(("-A", IPT_POLICY, pod_option, f"{pod.ip}/32") + _ipt_comment(pod.comment(direction))
                          + ("-j", chain))
            chains[chain] = [line for number, rule in enumerate(rules) for line in
                             _ipt_allow(chain, rule, peer_option, _ipt_comment(rule_comment(pod, direction, number)))]
            chains[chain].append(("-A", chain) + _ipt_comment(pod.comment(direction)) + ("-j", "DROP"))
    chains[IPT_POLICY] = policy
    return IptState(chains, [_ipt_jump("FORWARD", IPT_POLICY)])


def ipt_policy_script(have: IptState, want: IptState) -> tuple:
    return ipt_script(have, want, IPT_TABLE)


class IptablesPolicy(Iptables):
    table = IPT_TABLE

    @staticmethod
    def parse(text: str) -> Owned:
        return Owned(None, parse_ipt_policy(text))

    draw = staticmethod(ipt_render)
    merge = staticmethod(keep_drawn)
    script = staticmethod(ipt_policy_script)

    @staticmethod
    def probe(state: IptState) -> list | None:
        """`iptables -C` of our jump from FORWARD: gone when the table or the chain is flushed."""
        return ["iptables", "-w", "-t", IPT_TABLE, "-C"] + list(state.jumps[0][1:]) if state.jumps else None


BACKENDS = {"iptables": IptablesPolicy, "nftables": NftablesPolicy}
