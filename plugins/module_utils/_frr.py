# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""FRR: the integrated frr.conf of a Speaker, the daemons file, and what bgpd reports. Private.

Pure functions: render() turns the validated model into frr.conf text, parse_summary() reads
`vtysh -c 'show bgp summary json'`.
"""
from __future__ import annotations

import json
import re

from ._bgp import Neighbor, PrefixRule, Session, Speaker

MARKER = "! Managed by handcni.podnet (frr_bgp); changes made here are overwritten."
# `neighbor ADDRESS password SECRET`: the key is the neighbour's address.
PASSWORD = re.compile(r"^ neighbor (?P<key>\S+) password (?P<secret>\S+)$", re.MULTILINE)
DAEMONS = ("zebra", "bfdd", "bgpd")  # in start order; stopped in reverse


def daemons(speaker: Speaker) -> tuple:
    """The daemons the speaker needs: zebra and bgpd, and bfdd when a session uses BFD."""
    return tuple(name for name in DAEMONS if name != "bfdd" or speaker.bfd)


def prefix_list_entry(rule: PrefixRule) -> str:
    """`permit 10.0.0.0/8 ge 16 le 24`. FRR takes no ge/le as exact, ge alone as ge..32 and le alone as
    len..le, and refuses a ge not above the prefix length, so each range has one spelling."""
    text = f"{rule.action} {rule.prefix}"
    if rule.ge > rule.length:
        text += f" ge {rule.ge}"
        if rule.le != rule.max_length:
            text += f" le {rule.le}"
    elif rule.le > rule.length:
        text += f" le {rule.le}"
    return text


def prefix_list_name(item: Neighbor, direction: str) -> str:
    return f"HANDCNI-{item.name}-{direction}"


def prefix_list(name: str, rules: tuple, version: int = 4) -> list:
    """The rules as a prefix list of the family (`ip` or `ipv6 prefix-list`). A list with no rules denies
    everything (FRR would take a missing list as permitting everything)."""
    entries = [prefix_list_entry(rule) for rule in rules] or \
        ["deny 0.0.0.0/0 le 32" if version == 4 else "deny ::/0 le 128"]
    kind = "ip" if version == 4 else "ipv6"
    return [f"{kind} prefix-list {name} seq {10 * (index + 1)} {entry}" for index, entry in enumerate(entries)]


def address_family(speaker: Speaker, version: int) -> list:
    """`address-family ipvN unicast`: the family's networks, ECMP, and its neighbours activated with their
    filters (a neighbour is activated in its own family only: `no bgp default ipv4-unicast`)."""
    lines = [" !", f" address-family ipv{version} unicast"]
    lines += [f"  network {network}" for network in speaker.networks_of(version)]
    if speaker.max_paths > 1:
        lines += [f"  maximum-paths {speaker.max_paths}", f"  maximum-paths ibgp {speaker.max_paths}"]
    for item in speaker.neighbors_of(version):
        peer = f"  neighbor {item.address}"
        lines.append(f"{peer} activate")
        if item.route_reflector_client:
            lines.append(f"{peer} route-reflector-client")
        if item.next_hop_self:
            lines.append(f"{peer} next-hop-self force")
        lines.append(f"{peer} prefix-list {prefix_list_name(item, 'IN')} in")
        lines.append(f"{peer} prefix-list {prefix_list_name(item, 'OUT')} out")
        if item.import_limit:
            lines.append(f"{peer} maximum-prefix {item.import_limit} restart 1")
    return lines + [" exit-address-family"]


def render(speaker: Speaker, hostname: str, log_file: str | None = None) -> str:
    lines = [MARKER, "frr defaults traditional", f"hostname {hostname}"]
    if log_file:
        lines.append(f"log file {log_file} informational")
    lines += ["service integrated-vtysh-config", "!"]
    for item in speaker.neighbors:
        lines += prefix_list(prefix_list_name(item, "IN"), item.import_prefixes, item.version)
        lines += prefix_list(prefix_list_name(item, "OUT"), item.export_prefixes, item.version)
    lines += ["!", f"router bgp {speaker.local_as}", f" bgp router-id {speaker.router_id}",
              " no bgp default ipv4-unicast", " bgp log-neighbor-changes"]
    if any(item.graceful_restart for item in speaker.neighbors):
        lines.append(" bgp graceful-restart")
    if speaker.networks:
        lines.append(" no bgp network import-check")  # announce the networks whatever the RIB holds
    if speaker.max_paths > 1:
        lines.append(" bgp bestpath as-path multipath-relax")  # paths from different ASes are equal too
    for item in speaker.neighbors:
        peer = f" neighbor {item.address}"
        lines.append(f"{peer} remote-as {item.remote_as}")
        if item.description:
            lines.append(f"{peer} description {item.description}")
        if item.password:
            lines.append(f"{peer} password {item.password}")
        if item.source_address:
            lines.append(f"{peer} update-source {item.source_address}")
        if item.multihop and not speaker.ibgp(item):
            lines.append(f"{peer} ebgp-multihop {item.multihop}")
        if item.passive:
            lines.append(f"{peer} passive")
        if item.hold_time is not None or item.keepalive_time is not None:
            hold = item.hold_time if item.hold_time is not None else 180
            keepalive = item.keepalive_time if item.keepalive_time is not None else max(hold // 3, 1)
            lines.append(f"{peer} timers {keepalive} {hold}")
        if item.connect_retry_time is not None:
            lines.append(f"{peer} timers connect {item.connect_retry_time}")
        if not item.graceful_restart:
            lines.append(f"{peer} graceful-restart-disable")
        if item.bfd:
            # the timers in the session itself: bgpd registers it with bfdd complete, whatever order the
            # daemons read their configuration in (a profile bfdd had not read yet reset every session once)
            lines.append(f"{peer} bfd {item.bfd.multiplier} {item.bfd.interval} {item.bfd.interval}")
    lines += address_family(speaker, 4)
    if speaker.ipv6:
        lines += address_family(speaker, 6)
    lines += ["exit", "!"]
    return "\n".join(lines) + "\n"


def daemons_file(options: str, names: tuple = ("zebra", "bgpd")) -> str:
    """The pathspace's `daemons` file, as frrinit.sh reads it (zebra and staticd always run)."""
    return "\n".join([
        "# Managed by handcni.podnet (frr_bgp).",
        *(f"{name}=yes" for name in names if name != "zebra"),
        "vtysh_enable=yes",
        f'zebra_options="{options} -s 90000000"',
        *(f'{name}_options="{options}"' for name in names if name != "zebra"),
    ]) + "\n"


VTYSH_CONF = "service integrated-vtysh-config\n"


def owned(text: str | None) -> bool:
    return bool(text) and text.startswith(MARKER)


def parse_summary(text: str, neighbors) -> tuple:
    """(router id, local AS, {neighbour name: Session}) from `show bgp summary json`, IPv4 and IPv6 sessions.

    bgpd names peers by address; the listed neighbours give them their names. An empty
    object (no BGP instance) gives (None, None, {})."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        raise ValueError(f"vtysh printed something that is not JSON: {text[:200]!r}") from None
    families = [data.get(key) or {} for key in ("ipv4Unicast", "ipv6Unicast")]
    family = next((f for f in families if f.get("routerId")), families[0])
    names = {item.address: item.name for item in neighbors}
    found = {}
    for address, peer in ((a, p) for f in families for a, p in (f.get("peers") or {}).items()):
        state = peer.get("state", "")
        info = "" if state == "Established" else (peer.get("lastNotificationReason") or
                                                  peer.get("lastResetDueTo") or "")
        name = names.get(address, address)
        found[name] = Session(
            name=name, address=address, remote_as=peer.get("remoteAs"), state=state,
            since=str(peer.get("peerUptimeEstablishedEpoch", "")) if state == "Established" else "",
            info=info, established_count=peer.get("connectionsEstablished"))
    return family.get("routerId"), family.get("as"), found


def neighbor_errors(text: str) -> dict:
    """{address: last error} from `show bgp neighbors json`, for sessions that are down."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    errors = {}
    for address, peer in data.items():
        if not isinstance(peer, dict) or peer.get("bgpState") == "Established":
            continue
        reason = peer.get("lastNotificationReason") or peer.get("lastResetDueTo")
        if reason:
            errors[address] = reason
    return errors
