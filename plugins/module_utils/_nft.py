# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every nftables backend shares, whatever its table: the Backend reading one table of ours with
`nft -j` and writing with `nft -f -`, `nft -j` expressions read as canonical terms, a table's objects, and
the canonical statements the diff shows. Private to this collection (_nftables.py: the NAT tables,
_policy_rules.py: the policy table).
"""
from __future__ import annotations

import functools
import ipaddress
import json
import re
from typing import NamedTuple

from . import _services as svc
from ._command import failure
from ._firewall import Backend, Owned, address


# --- nft -j expressions -------------------------------------------------------

class _Unrecognised(Exception):
    pass


NFT_ADDRESS_FIELDS = {("ip", "saddr"), ("ip", "daddr"), ("ip6", "saddr"), ("ip6", "daddr")}
# The keys our vmaps look up, as nft -j prints them and as we write them.
NFT_KEYS = {("payload", "ip", "daddr"): "ip daddr", ("payload", "ip6", "daddr"): "ip6 daddr", ("meta", "l4proto"): "meta l4proto",
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


@functools.lru_cache(maxsize=4096)  # a service's comment is in each of its rules
def nft_string(value: str) -> str:
    return f'"{value}"' if _PLAIN.match(value) else json.dumps(value)


def _nft_op(op: str) -> str:
    return "" if op in ("==", "in") else op + " "


class Term(NamedTuple):
    """One expression of a rule read from `nft -j`: what it matches or does, and its canonical text."""
    kind: str             # "ip saddr", "ip6 daddr", "oifname", "masquerade", "dnat", "numgen", "vmap", ...
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
            if isinstance(right, str) and "/" not in right and payload["protocol"] == "ip":  # one IPv4 address
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
            and value.get("family", "ip") in ("ip", "ip6") \
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


# --- a table's objects ------------------------------------------------------

class NftChain(NamedTuple):
    header: str  # "type nat hook postrouting priority 100; policy accept;" or "" for a regular chain
    rules: list  # canonical rule texts


class NftMap(NamedTuple):
    type: str        # "ipv4_addr . inet_proto . inet_service : verdict"
    elements: dict   # key text -> verdict text


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


def nft_objects(text: str, family: str, table: str) -> tuple:
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


class Nftables(Backend):
    """What the nftables backends share: a table of ours (`family`, `table`), read with `nft -j`, written
    with `nft -f -`."""
    name = "nftables"
    tools = ("nft",)
    write_argv = ["nft", "-f", "-"]
    family, table = "", ""

    def read(self) -> Owned:
        return self.parse(self.listed(self.family))

    def listed(self, family: str) -> str | None:
        """`nft -j list table FAMILY TABLE` (None: the table does not exist, so nothing of ours is there)."""
        argv = ["nft", "-j", "list", "table", family, self.table]
        rc, out, err = self.runner.run(argv)
        if rc != 0 and "No such file or directory" in (err or ""):
            return None
        if rc != 0:
            raise failure(argv, rc, out, err)
        return out
