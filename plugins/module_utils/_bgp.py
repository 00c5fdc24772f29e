# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BGP speakers the collection configures (BIRD on the nodes, FRR or BIRD on the leaf). Private.

One model for both daemons: a `Speaker` (router id, local AS, networks it originates, neighbours
with their prefix filters) is validated here from module parameters, then rendered by `_bird` or
`_frr` into the daemon's own configuration text. A neighbour's family is its address's: an IPv6 neighbour is
a session of its own whose routes and prefix rules are IPv6 (dual stack: one IPv4 and one IPv6 session per
peer); the router id stays an IPv4 address. Validation is pure and raises ValueError naming
the field (never the value of a password); atomic config files are written by `_state.write_text`, which
raises OSError. How a daemon runs (a process of ours, or a systemd unit) is in `_daemon`.
"""
from __future__ import annotations

import ipaddress
import os
import re
import time
from typing import Callable, NamedTuple

from . import _validate as validate

AS_MIN, AS_MAX = 1, 4294967295
# A neighbour's name becomes a BIRD protocol name and part of FRR prefix-list names.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,31}$")
# TCP MD5 keys: at most 80 bytes; printable ASCII without space, quote or backslash, so the
# key is one word in FRR and needs no escaping in a BIRD string.
_PASSWORD = re.compile(r'^[!#-\[\]-~]{1,80}$')
MASK = "<hidden>"
MASK_CHANGED = "<hidden, changed>"

NEIGHBOR_SPEC = dict(
    name=dict(type="str"),
    address=dict(type="str"),
    remote_as=dict(type="int", aliases=["as"]),
    source_address=dict(type="str"),
    password=dict(type="str", no_log=True),
    description=dict(type="str"),
    import_prefixes=dict(type="list", elements="raw", default=[], aliases=["import"]),
    export_prefixes=dict(type="list", elements="raw", default=[], aliases=["export"]),
    import_limit=dict(type="int", default=0),
    graceful_restart=dict(type="bool", default=True),
    route_reflector_client=dict(type="bool", default=False),
    next_hop_self=dict(type="bool", default=False),
    multihop=dict(type="int"),
    passive=dict(type="bool", default=False),
    hold_time=dict(type="int"),
    keepalive_time=dict(type="int"),
    connect_retry_time=dict(type="int"),
    # Bidirectional Forwarding Detection for the session: the peer is down after `multiplier` packets
    # of `interval` milliseconds are missed, whatever the hold time.
    bfd=dict(type="dict", options=dict(interval=dict(type="int", default=100), multiplier=dict(type="int", default=3),
                                       graceful=dict(type="bool", default=False))),
)

SPEAKER_SPEC = dict(
    router_id=dict(type="str"),
    local_as=dict(type="int"),
    networks=dict(type="list", elements="str", default=[]),
    max_paths=dict(type="int", default=1),
    neighbors=dict(type="list", elements="dict", default=[], options=NEIGHBOR_SPEC),
    wait_established=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=60),
)


class PrefixRule(NamedTuple):
    """Match a route whose network lies inside `prefix` with a length in ge..le; first match decides."""
    action: str
    prefix: str
    ge: int
    le: int

    @property
    def length(self) -> int:
        return ipaddress.ip_network(self.prefix).prefixlen

    @property
    def max_length(self) -> int:
        """The family's longest prefix: 32 or 128."""
        return ipaddress.ip_network(self.prefix).max_prefixlen

    def public(self) -> dict:
        return {"action": self.action, "prefix": self.prefix, "ge": self.ge, "le": self.le}


class Bfd(NamedTuple):
    interval: int  # milliseconds, sent and expected
    multiplier: int
    graceful: bool = False  # BFD down restarts the session gracefully (the peer's routes kept as stale)

    @property
    def detect_ms(self) -> int:
        return self.interval * self.multiplier


class Neighbor(NamedTuple):
    name: str
    address: str
    remote_as: int
    source_address: str | None = None
    password: str | None = None
    description: str | None = None
    import_prefixes: tuple = ()
    export_prefixes: tuple = ()
    import_limit: int = 0
    graceful_restart: bool = True
    route_reflector_client: bool = False
    next_hop_self: bool = False
    multihop: int | None = None
    passive: bool = False
    hold_time: int | None = None
    keepalive_time: int | None = None
    connect_retry_time: int | None = None
    bfd: Bfd | None = None

    @property
    def version(self) -> int:
        """The session's address family, 4 or 6: its routes and prefix rules are of it."""
        return ipaddress.ip_address(self.address).version

    def public(self) -> dict:
        """The neighbour as returned to the play: everything but the password."""
        data = self._asdict()
        data["bfd"] = self.bfd._asdict() if self.bfd else None
        data["password"] = bool(self.password)
        data["import_prefixes"] = [rule.public() for rule in self.import_prefixes]
        data["export_prefixes"] = [rule.public() for rule in self.export_prefixes]
        return data


class Speaker(NamedTuple):
    router_id: str
    local_as: int
    networks: tuple = ()
    neighbors: tuple = ()
    max_paths: int = 1  # ECMP: equal best paths installed per prefix (1: the best one only)

    def ibgp(self, neighbor: Neighbor) -> bool:
        return neighbor.remote_as == self.local_as

    @property
    def bfd(self) -> bool:
        """Some session uses BFD: the daemon runs its BFD part."""
        return any(item.bfd for item in self.neighbors)

    def networks_of(self, version: int) -> tuple:
        return tuple(n for n in self.networks if ipaddress.ip_network(n).version == version)

    def neighbors_of(self, version: int) -> tuple:
        return tuple(item for item in self.neighbors if item.version == version)

    @property
    def ipv6(self) -> bool:
        """Some IPv6 session or network: the daemon needs its IPv6 side (kernel table, address family)."""
        return bool(self.networks_of(6) or self.neighbors_of(6))


# --- validation -----------------------------------------------------------------

def asn(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not AS_MIN <= value <= AS_MAX:
        raise ValueError(f"{field}: AS number {value!r} is out of range {AS_MIN}..{AS_MAX}")
    return value


def ipv4_address(value, field: str) -> str:
    address = validate.address(value, field)
    if ipaddress.ip_address(address).version != 4:
        raise ValueError(f"{field}: {value!r} is not an IPv4 address (a router id is 32 bits)")
    return address


def address_of(value, field: str, version: int | None = None) -> str:
    """An IPv4 or IPv6 address; of `version` when given (a session's source is of its neighbour's family)."""
    address = validate.address(value, field)
    if version is not None and ipaddress.ip_address(address).version != version:
        raise ValueError(f"{field}: {value!r} is not an IPv{version} address, as the neighbour's is")
    return address


def network(value, field: str, version: int | None = None) -> str:
    """A network in CIDR form (`default`: IPv4's 0.0.0.0/0); of `version` when given."""
    if value == "default":
        value = "::/0" if version == 6 else "0.0.0.0/0"
    try:
        found = ipaddress.ip_network(value, strict=True)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: {value!r} is not a valid network (CIDR with host bits zero)") from None
    if version is not None and found.version != version:
        raise ValueError(f"{field}: {value!r} is not an IPv{version} network, as the neighbour's address is")
    return str(found)


def name(value, field: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{field}: {value!r} is not a valid neighbour name (a letter or '_', then letters, "
                         "digits or '_', at most 32)")
    return value


def default_name(address: str) -> str:
    return ("peer_" + address.replace(".", "_").replace(":", "_"))[:32]


def password(value, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _PASSWORD.fullmatch(value):
        # never echo the value: it is a secret
        raise ValueError(f"{field}: the password must be 1 to 80 printable ASCII characters without "
                         "space, quote or backslash")
    return value


def in_range(value, field: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{field}: {value!r} is out of range {low}..{high}")
    return value


def description(value, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 80 or any(c in '"\\' or not c.isprintable() for c in value):
        raise ValueError(f"{field}: {value!r} must be at most 80 printable characters without quote or backslash")
    return value


def prefix_rule(item, field: str, version: int = 4) -> PrefixRule:
    """A prefix rule of the `version` family (its lengths up to 32 or 128)."""
    if isinstance(item, str):
        item = {"prefix": item}
    if not isinstance(item, dict):
        raise ValueError(f"{field}: {item!r} is not a prefix rule like {{prefix: 10.0.0.0/8, le: 24}}")
    unknown = sorted(set(item) - {"prefix", "ge", "le", "action"})
    if unknown:
        raise ValueError(f"{field}: unknown key {unknown[0]!r} (a rule has prefix, ge, le and action)")
    prefix = network(item.get("prefix"), f"{field}.prefix", version)
    length, longest = ipaddress.ip_network(prefix).prefixlen, ipaddress.ip_network(prefix).max_prefixlen
    ge, le = item.get("ge"), item.get("le")
    ge = in_range(ge, f"{field}.ge", length, longest)
    le = in_range(le, f"{field}.le", length, longest)
    if ge is None:
        ge = length
        le = length if le is None else le
    elif le is None:
        le = longest
    if ge > le:
        raise ValueError(f"{field}: ge {ge} is greater than le {le}")
    action = item.get("action") or "permit"
    if action not in ("permit", "deny"):
        raise ValueError(f"{field}.action: {action!r} is not permit or deny")
    return PrefixRule(action, prefix, ge, le)


def prefix_rules(items, field: str, version: int = 4) -> tuple:
    return tuple(prefix_rule(item, f"{field}[{index}]", version) for index, item in enumerate(items or []))


def bfd(value, field: str) -> Bfd | None:
    """BFD timers: an interval of 10 ms to 60 s (what FRR's bfdd and BIRD both take), a multiplier of 2 to 255."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{field}: {value!r} is not a dict of interval and multiplier")
    return Bfd(in_range(value.get("interval", 100), f"{field}.interval", 10, 60000),
               in_range(value.get("multiplier", 3), f"{field}.multiplier", 2, 255), bool(value.get("graceful", False)))


def neighbor(item: dict, field: str) -> Neighbor:
    if not isinstance(item, dict):
        raise ValueError(f"{field}: {item!r} is not a neighbour")
    if not item.get("address"):
        raise ValueError(f"{field}.address: the neighbour's address is required")
    address = address_of(item["address"], f"{field}.address")
    version = ipaddress.ip_address(address).version
    if item.get("remote_as") is None:
        raise ValueError(f"{field}.remote_as: the neighbour's AS is required")
    hold = in_range(item.get("hold_time"), f"{field}.hold_time", 0, 65535)
    if hold is not None and 0 < hold < 3:
        raise ValueError(f"{field}.hold_time: {hold} must be 0 or at least 3 seconds")
    keepalive = in_range(item.get("keepalive_time"), f"{field}.keepalive_time", 1, 65535)
    if hold and keepalive and keepalive >= hold:
        raise ValueError(f"{field}.keepalive_time: {keepalive} must be less than hold_time {hold}")
    source = item.get("source_address")
    return Neighbor(
        name=name(item.get("name") or default_name(address), f"{field}.name"),
        address=address,
        remote_as=asn(item["remote_as"], f"{field}.remote_as"),
        source_address=address_of(source, f"{field}.source_address", version) if source else None,
        password=password(item.get("password"), f"{field}.password"),
        description=description(item.get("description"), f"{field}.description"),
        import_prefixes=prefix_rules(item.get("import_prefixes"), f"{field}.import_prefixes", version),
        export_prefixes=prefix_rules(item.get("export_prefixes"), f"{field}.export_prefixes", version),
        import_limit=in_range(item.get("import_limit") or 0, f"{field}.import_limit", 0, 4294967295),
        graceful_restart=bool(item.get("graceful_restart", True)),
        route_reflector_client=bool(item.get("route_reflector_client", False)),
        next_hop_self=bool(item.get("next_hop_self", False)),
        multihop=in_range(item.get("multihop"), f"{field}.multihop", 1, 255),
        passive=bool(item.get("passive", False)),
        hold_time=hold,
        keepalive_time=keepalive,
        connect_retry_time=in_range(item.get("connect_retry_time"), f"{field}.connect_retry_time", 1, 65535),
        bfd=bfd(item.get("bfd"), f"{field}.bfd"),
    )


def speaker(params: dict) -> Speaker:
    """The validated speaker of module parameters (router_id, local_as, networks, neighbors)."""
    if not params.get("router_id"):
        raise ValueError("router_id: required with state=present")
    router_id = ipv4_address(params["router_id"], "router_id")
    if params.get("local_as") is None:
        raise ValueError("local_as: required with state=present")
    local_as = asn(params["local_as"], "local_as")
    networks = tuple(sorted({network(n, f"networks[{i}]") for i, n in enumerate(params.get("networks") or [])},
                            key=validate.address_order))
    neighbors = tuple(neighbor(item, f"neighbors[{i}]") for i, item in enumerate(params.get("neighbors") or []))
    for key in ("name", "address"):
        validate.unique([n._asdict() for n in neighbors], key, "neighbors")
    for index, item in enumerate(neighbors):
        if item.route_reflector_client and item.remote_as != local_as:
            raise ValueError(f"neighbors[{index}].route_reflector_client: {item.name} is an eBGP neighbour "
                             f"(AS {item.remote_as}, local AS {local_as}); only iBGP neighbours can be clients")
    max_paths = in_range(params.get("max_paths"), "max_paths", 1, 64)
    return Speaker(router_id, local_as, networks, neighbors, 1 if max_paths is None else max_paths)


# --- the daemon's state, as the modules return it ---------------------------------

class Session(NamedTuple):
    """One BGP session as the daemon reports it."""
    name: str
    address: str
    remote_as: int | None
    state: str            # the BGP FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established
    since: str            # when the state last changed, as the daemon prints it
    info: str             # the daemon's last error or remark, "" if none
    established_count: int | None = None  # sessions established so far (FRR only)

    @property
    def established(self) -> bool:
        return self.state == "Established"

    def public(self) -> dict:
        return dict(self._asdict(), established=self.established)


def not_established(neighbors, sessions: dict) -> list:
    """The listed neighbours without an established session, each described for a failure message."""
    problems = []
    for item in neighbors:
        session = sessions.get(item.name)
        where = f"{item.name} ({item.address}, AS {item.remote_as})"
        if session is None:
            problems.append(f"{where}: not configured in the running daemon")
        elif not session.established:
            detail = f"BGP state {session.state}"
            if session.info:
                detail += f", last error: {session.info}"
            elif session.state in ("Idle", "Connect", "Active"):
                detail += (", no answer: check the address, that the peer runs BGP and expects this AS, "
                           "and the password (an MD5 mismatch is dropped silently)")
            problems.append(f"{where}: {detail}")
    return problems


def wait(read: Callable[[], dict], neighbors, timeout: float, interval: float = 1.0) -> tuple:
    """Poll read() -> {name: Session} until every listed neighbour is established or time is up.

    Returns (sessions, problems); problems is empty when all are established."""
    deadline = time.monotonic() + timeout
    while True:
        sessions = read()
        problems = not_established(neighbors, sessions)
        if not problems or time.monotonic() >= deadline:
            return sessions, problems
        time.sleep(interval)


def wait_established(module, read: Callable[[], dict], neighbors, timeout: float,
                     explain: Callable[[dict], dict] | None = None,
                     details: Callable[[], dict] = dict) -> dict:
    """wait() for the sessions; if some do not come up, fail the module naming each of them, with
    explain(sessions) adding the daemon's reasons and details() the daemon's own fields to the result."""
    sessions, problems = wait(read, neighbors, timeout)
    if problems and explain:
        sessions = explain(sessions)
        problems = not_established(neighbors, sessions)
    if problems:
        module.fail_json(msg=f"BGP sessions not established within {timeout}s: " + "; ".join(problems),
                         changed=bool(module.actions), actions=module.actions,
                         sessions={name: s.public() for name, s in sessions.items()}, **details())
    return sessions


# --- passwords in text shown to the user --------------------------------------

def mask_passwords(text: str, pattern: re.Pattern, changed: set = frozenset()) -> str:
    """Replace every password in `text`; pattern has groups (key, password) and the key names
    the neighbour, so a changed password shows as changed without being shown."""
    def repl(match: re.Match) -> str:
        marker = MASK_CHANGED if match.group("key") in changed else MASK
        return match.group(0)[:match.start("secret") - match.start(0)] + marker + \
            match.group(0)[match.end("secret") - match.start(0):]
    return pattern.sub(repl, text)


def passwords(text: str, pattern: re.Pattern) -> dict:
    return {m.group("key"): m.group("secret") for m in pattern.finditer(text or "")}


def changed_passwords(old: str, new: str, pattern: re.Pattern) -> set:
    before, after = passwords(old, pattern), passwords(new, pattern)
    return {key for key in set(before) | set(after) if before.get(key) != after.get(key)}


# --- files and processes -----------------------------------------------------------

def file_mode(path: str) -> tuple | None:
    """(mode, uid, gid) of path, or None when it does not exist."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_mode & 0o7777, stat.st_uid, stat.st_gid


def dirs_left_empty(paths: list) -> list:
    """The directories of `paths` (files or directories of ours) that hold nothing else, so are left
    empty once those go: runtime directories a daemon's start made, which stopping it must remove."""
    found = []
    for directory in sorted({os.path.dirname(p) for p in paths}):
        ours = {os.path.basename(p) for p in paths if os.path.dirname(p) == directory}
        if os.path.isdir(directory) and set(os.listdir(directory)) <= ours:
            found.append(directory)
    return found


def make_dir(path: str, mode: int, uid: int = -1, gid: int = -1) -> None:
    """Create `path` (and parents) if missing, with this mode and owner."""
    os.makedirs(path, mode=mode, exist_ok=True)
    stat = os.stat(path)
    if stat.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
    if (uid != -1 and stat.st_uid != uid) or (gid != -1 and stat.st_gid != gid):
        os.chown(path, uid, gid)
