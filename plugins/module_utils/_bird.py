# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BIRD 2: the configuration text of a Speaker, and what `birdc show protocols all` says. Private.

Pure functions: render() turns the validated model into bird.conf text (always the same text for
the same model, so "no change" is string equality); parse_protocols() reads birdc's table.
"""
from __future__ import annotations

import re

from ._bgp import Neighbor, PrefixRule, Session, Speaker

MARKER = "# Managed by handcni.podnet (bird_bgp); changes made here are overwritten."
# `password "..."` inside `protocol bgp NAME {`: the key is the protocol name.
PASSWORD = re.compile(r'^protocol bgp (?P<key>\S+) \{$(?:(?!^\}$).)*?^    password "(?P<secret>[^"]*)";$',
                      re.MULTILINE | re.DOTALL)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}(\.\d+)?$")
_STATES = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established", "Close", "Down")


def pattern(rule: PrefixRule) -> str:
    """A BIRD prefix pattern: exact `10.0.0.0/8`, or `10.0.0.0/8{16,24}` for a length range."""
    if rule.ge == rule.le == rule.length:
        return rule.prefix
    return f"{rule.prefix}{{{rule.ge},{rule.le}}}"


def filter_block(kind: str, rules: tuple) -> list:
    """`import filter { ... };` or `export ...`: the first matching rule decides, nothing else passes."""
    if not rules:
        return [f"        {kind} none;"]
    lines = [f"        {kind} filter {{"]
    runs: list = []  # consecutive rules of one action share one prefix set
    for rule in rules:
        if runs and runs[-1][0] == rule.action:
            runs[-1][1].append(pattern(rule))
        else:
            runs.append((rule.action, [pattern(rule)]))
    for action, patterns in runs:
        verdict = "accept" if action == "permit" else "reject"
        lines.append(f"            if net ~ [ {', '.join(patterns)} ] then {verdict};")
    lines += ["            reject;", "        };"]
    return lines


def bgp_block(speaker: Speaker, item: Neighbor) -> list:
    lines = [f"protocol bgp {item.name} {{"]
    if item.description:
        lines.append(f'    description "{item.description}";')
    lines.append(f"    local as {speaker.local_as};")
    if item.source_address:
        lines.append(f"    source address {item.source_address};")
    lines.append(f"    neighbor {item.address} as {item.remote_as};")
    if item.password:
        lines.append(f'    password "{item.password}";')
    if item.multihop:
        lines.append(f"    multihop {item.multihop};")
    elif speaker.ibgp(item):
        lines.append("    direct;")  # BIRD takes iBGP as multihop unless told the peer is on our subnet
    if item.passive:
        lines.append("    passive on;")
    if item.route_reflector_client:
        lines.append("    rr client;")
    for option, value in (("hold time", item.hold_time), ("keepalive time", item.keepalive_time),
                          ("connect retry time", item.connect_retry_time)):
        if value is not None:
            lines.append(f"    {option} {value};")
    if item.connect_retry_time is not None:
        # After a session error BIRD waits 60 s at first (doubling up to 300 s); start from the
        # connect retry time instead, so a fixed peer is back as fast as a new one.
        lines.append(f"    error wait time {item.connect_retry_time}, 300;")
    lines.append(f"    graceful restart {'on' if item.graceful_restart else 'off'};")
    if item.bfd:
        mode = "graceful; " if item.bfd.graceful else ""  # BFD down: a graceful restart, not a hard down
        interval = item.bfd.interval
        lines.append(f"    bfd {{ {mode}min rx interval {interval} ms; min tx interval {interval} ms; "
                     f"multiplier {item.bfd.multiplier}; }};")
    lines.append(f"    ipv{item.version} {{")
    lines += filter_block("import", item.import_prefixes)
    lines += filter_block("export", item.export_prefixes)
    if item.import_limit:
        lines.append(f"        import limit {item.import_limit} action restart;")
    if item.next_hop_self:
        lines.append("        next hop self;")
    if item.version == 6:
        # an IPv6 route carries a global next hop and the sender's link-local one: the global one (the node
        # itself, a third-party next hop) goes into the kernel, as with IPv4
        lines.append("        next hop prefer global;")
    lines += ["    };", "}"]
    return lines


def kernel_block(speaker: Speaker, version: int, kernel_export: bool, scan_time: int) -> list:
    """The kernel protocol of one family: routes learned by BGP go into its main table, nothing comes back."""
    return [
        "protocol kernel {" if version == 4 else "protocol kernel handcni_kernel6 {",
        f"    scan time {scan_time};",
        f"    ipv{version} {{",
        "        import none;",
        "        export where source = RTS_BGP;" if kernel_export else "        export none;",
        "    };",
    ] + ([f"    merge paths on limit {speaker.max_paths};"] if speaker.max_paths > 1 else []) + [
        "}",
    ]


def render(speaker: Speaker, direct_interfaces: tuple = (), kernel_export: bool = True,
           scan_time: int = 10) -> str:
    """bird.conf for the speaker: device, kernel (BGP routes into the kernel; IPv6's too when the speaker has
    some), direct, the originated networks (static, unreachable in BIRD only) and one BGP protocol per
    neighbour (with the channel of its family)."""
    families = (4, 6) if speaker.ipv6 else (4,)
    lines = [
        MARKER,
        f"router id {speaker.router_id};",
        # Dates in `show protocols` as `YYYY-MM-DD hh:mm:ss`, so session changes are visible.
        "timeformat protocol iso long;",
        "",
        "protocol device {",
        f"    scan time {scan_time};",
        "}",
    ]
    for version in families:
        lines += [""] + kernel_block(speaker, version, kernel_export, scan_time)
    if speaker.bfd:
        lines += ["", "protocol bfd handcni_bfd {", "}"]  # the sessions' BFD; their timers are the sessions'
    if direct_interfaces:
        lines += ["", "protocol direct {", "    ipv4;"]
        lines += [f'    interface "{name}";' for name in direct_interfaces]
        lines.append("}")
    for version in families:
        networks = speaker.networks_of(version)
        if networks:
            # Originated here and announced as one route each; never exported to the kernel.
            lines += ["", f"protocol static handcni_networks{'' if version == 4 else '6'} {{", f"    ipv{version};"]
            lines += [f"    route {network} unreachable;" for network in networks]
            lines.append("}")
    for item in speaker.neighbors:
        lines.append("")
        lines += bgp_block(speaker, item)
    return "\n".join(lines) + "\n"


def owned(text: str | None) -> bool:
    return bool(text) and text.startswith(MARKER)


def _since(tokens: list) -> tuple:
    """(since, number of tokens it takes) from the tokens after the State column."""
    if len(tokens) >= 2 and _DATE.match(tokens[0]) and _TIME.match(tokens[1]):
        return f"{tokens[0]} {tokens[1]}", 2
    if tokens and (_DATE.match(tokens[0]) or _TIME.match(tokens[0])):
        return tokens[0], 1
    return "", 0


def parse_protocols(text: str) -> list:
    """The protocols of `birdc show protocols [all]` as dicts: name, proto, table, state, since, info,
    and for BGP protocols (with `all`) bgp_state, neighbor_address, neighbor_as, last_error."""
    protocols, current = [], None
    for raw in (text or "").splitlines():
        if not raw.strip() or raw.startswith(("BIRD ", "Name ")) or re.match(r"^\d{4}[- ]", raw):
            continue
        if not raw[0].isspace():
            tokens = raw.split()
            if len(tokens) < 4:
                continue
            since, used = _since(tokens[4:])
            current = {"name": tokens[0], "proto": tokens[1], "table": tokens[2], "state": tokens[3],
                       "since": since, "info": " ".join(tokens[4 + used:])}
            protocols.append(current)
            continue
        if current is None or ":" not in raw:
            continue
        key, value = raw.strip().split(":", 1)
        value = value.strip()
        if key == "BGP state":
            current["bgp_state"] = value
        elif key == "Neighbor address":
            current["neighbor_address"] = value
        elif key == "Neighbor AS":
            current["neighbor_as"] = int(value) if value.isdigit() else None
        elif key == "Last error":
            current["last_error"] = value
    return protocols


def sessions(protocols: list) -> dict:
    """{protocol name: Session} of the BGP protocols."""
    found = {}
    for proto in protocols:
        if proto["proto"] != "BGP":
            continue
        info_state, info_rest = (proto["info"].split(" ", 1) + [""])[:2]
        state = proto.get("bgp_state") or (info_state if info_state in _STATES else proto["state"])
        if proto["state"] == "down":
            state = "Idle"
        error = proto.get("last_error") or info_rest.strip()
        found[proto["name"]] = Session(
            name=proto["name"], address=proto.get("neighbor_address", ""), remote_as=proto.get("neighbor_as"),
            state=state, since=proto["since"], info="" if state == "Established" else error)
    return found
