# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netlink sessions in named network namespaces, and reading links. Private to this collection.

A session is opened by entering the namespace in this thread only long enough to
create the netlink socket (a socket stays bound to the namespace it was made in),
so no namespace is ever created as a side effect and no helper process is forked.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import gc
import ipaddress
from contextlib import contextmanager
import os
import socket
import struct
import sys
from importlib.util import find_spec

from ._validate import address_order

# pyroute2 is imported on first use (it takes about 0.1 s): modules that never talk netlink
# (nat_rule, ipam, sysctl, the BGP ones) do not pay for it.
PYROUTE2_IMPORT_ERROR = None if find_spec("pyroute2") else "No module named 'pyroute2'"


def __getattr__(name: str):
    """IPRoute and NetlinkError, for `from ._netlink import ...`: pyroute2's, imported then."""
    if name in ("IPRoute", "NetlinkError"):
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError
        globals().update(IPRoute=IPRoute, NetlinkError=NetlinkError)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def kernel_errors() -> tuple:
    """What a kernel call can raise: OSError, and NetlinkError once pyroute2 is in use."""
    loaded = sys.modules.get("pyroute2.netlink.exceptions")
    return (OSError, loaded.NetlinkError) if loaded else (OSError,)


NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED, MNT_DETACH = 0x1000, 0x4000, 0x100000, 2
SIOCGSKNS = 0x894C  # ioctl: a socket's network namespace, as a new fd
# Ownership marks: the alias on every link we make, the protocol of every route.
OWNER = "handcni.podnet"
ROUTE_PROTO = 201  # `ip route show proto 201`

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsMissing(ValueError):
    pass


def netns_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def netns_exists(name: str | None) -> bool:
    """Whether namespace `name` is pinned (None, the current one, always is)."""
    return name is None or os.path.ismount(netns_path(name))


def netns_unpinned(name: str) -> bool:
    """Whether /run/netns/NAME is a plain file with no namespace on it: what a create killed before
    the pinning leaves (`ip netns add` too). It names no namespace and may be replaced or removed."""
    path = netns_path(name)
    return os.path.isfile(path) and not os.path.ismount(path) and os.path.getsize(path) == 0


def list_netns() -> list[str]:
    """Names of the namespaces pinned in /run/netns."""
    try:
        return sorted(name for name in os.listdir(NETNS_RUN_DIR) if netns_exists(name))
    except FileNotFoundError:
        return []


def _libc_call(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _setns(fd: int) -> None:
    _libc_call(_libc.setns(fd, CLONE_NEWNET), "setns")


_shared_run_dir = False


def _share_run_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns add` does, so pod namespaces pinned there
    are seen from mount namespaces made later (`ip netns exec`). Once per process."""
    global _shared_run_dir
    if _shared_run_dir:
        return
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    run_dir = NETNS_RUN_DIR.encode()
    if _libc.mount(b"none", run_dir, None, MS_SHARED | MS_REC, None) != 0:
        # Not a mount point yet: bind it onto itself, then share it.
        _libc_call(_libc.mount(run_dir, run_dir, None, MS_BIND | MS_REC, None), f"bind {NETNS_RUN_DIR}")
        _libc_call(_libc.mount(b"none", run_dir, None, MS_SHARED | MS_REC, None), f"share {NETNS_RUN_DIR}")
    _shared_run_dir = True


def create_netns(name: str, setup=None) -> None:
    """Create network namespace `name` pinned at /run/netns/NAME, like `ip netns add`.

    Done in this thread, with no helper process: unshare(CLONE_NEWNET) moves only the calling
    thread into a new namespace; `setup()` runs in it, then it is bind-mounted in place before the
    thread goes back. Killed before the mount, no namespace is left, only an empty file to reuse.
    """
    _share_run_dir()
    path = netns_path(name)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0))
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _libc_call(_libc.unshare(CLONE_NEWNET), f"unshare netns {name}")
        try:
            if setup is not None:
                setup()
            _libc_call(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), None, MS_BIND, None),
                       f"pin netns {name}")
        finally:
            _setns(own)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(own)


def remove_netns(name: str) -> None:
    """Unpin network namespace `name` and remove its file, like `ip netns delete`."""
    path = netns_path(name)
    if os.path.ismount(path):
        _libc_call(_libc.umount2(path.encode(), MNT_DETACH), f"unpin netns {name}")
    os.unlink(path)


@contextmanager
def _entered(target: int):
    """Run the body with this thread in the network namespace open as fd `target` (closed after)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


@contextmanager
def inside(name: str | None):
    """Run the body with this thread in network namespace `name` (None: stay where we are)."""
    if name is None:
        yield
        return
    try:
        target = os.open(netns_path(name), os.O_RDONLY)
    except FileNotFoundError:
        raise NetnsMissing(f"network namespace {name!r} does not exist") from None
    with _entered(target):
        yield


NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NETLINK_NETFILTER, NFTA_GEN_ID = 12, 1
NFT_MSG_NEWGEN, NFT_MSG_GETGEN = (10 << 8) | 15, (10 << 8) | 16  # nfnetlink subsystem 10: nf_tables
RTM_NEWNEIGH, RTM_GETNEIGH, NDA_DST, NTF_PROXY = 28, 30, 1, 0x8
_NLMSG = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_NDMSG = struct.Struct("=BxxxiHBB")  # ndmsg: family, 3 pad bytes, ifindex, state, flags, type


def _exchange(sock, kind: int, body: bytes, flags: int = 0, sequence: int = 1) -> list[tuple[int, bytes]]:
    """(type, message with its header) of each message the kernel answers one request with on netlink socket
    `sock` (a dump's, up to NLMSG_DONE); an error answered is raised as OSError."""
    answers = []
    sock.send(_NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | flags, sequence, 0) + body)
    while True:
        reply, at = sock.recv(65536), 0
        while at + _NLMSG.size <= len(reply):
            length, answered, _flags, answering = _NLMSG.unpack_from(reply, at)[:4]
            if length < _NLMSG.size:
                raise ValueError(f"netlink: a message of {length} bytes")
            message = reply[at:at + length]
            at += (length + 3) & ~3
            if answering != sequence:  # what is left of an earlier request on a socket kept open
                continue
            if answered == NLMSG_DONE:
                return answers
            code = -struct.unpack_from("=i", message, _NLMSG.size)[0] if answered == NLMSG_ERROR else 0
            if code:
                raise OSError(code, os.strerror(code))
            if answered != NLMSG_ERROR:  # an error of 0 is an acknowledgement
                answers.append((answered, message))
        if not flags & NLM_F_DUMP:
            return answers


def _ask(protocol: int, kind: int, body: bytes, flags: int = 0) -> list[tuple[int, bytes]]:
    """(type, body) of each message the kernel answers one request with, on a plain netlink socket of this
    thread's namespace (a dump's, up to NLMSG_DONE); an error answered is raised as OSError."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol) as sock:
        sock.settimeout(5)
        return [(answered, message[_NLMSG.size:]) for answered, message in _exchange(sock, kind, body, flags)]


def _attributes(data: bytes, at: int) -> dict[int, bytes]:
    """{type: value} of the netlink attributes in `data` from offset `at` (each: length, type, value padded to 4)."""
    found = {}
    while at + 4 <= len(data):
        size, kind = struct.unpack_from("=HH", data, at)
        if size < 4:
            break
        found[kind & 0x3FFF] = data[at + 4:at + size]  # without the nested and byte order bits
        at += (size + 3) & ~3
    return found


def _nft_generation() -> int:
    """The nf_tables generation of this thread's namespace: NFT_MSG_GETGEN on a plain netlink socket (no
    pyroute2, whose import costs more than the rest of an unchanged nat_rule run at 10,000 services)."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)  # nfgenmsg: family, version, resource id
    answers = _ask(NETLINK_NETFILTER, NFT_MSG_GETGEN, body)
    kind, reply = answers[0] if answers else (None, b"")
    if kind != NFT_MSG_NEWGEN:
        raise ValueError(f"NFT_MSG_GETGEN: answered with message type {kind}")
    generation = _attributes(reply, 4).get(NFTA_GEN_ID)
    if generation is None:
        raise ValueError("NFT_MSG_GETGEN: no generation in the answer")
    return struct.unpack_from(">I", generation)[0]


def proxy_entries(answers: list[tuple[int, bytes]]) -> dict[int, list[str]]:
    """{link index: sorted addresses} of the IPv6 proxy neighbour entries in the messages of a dump. Pure."""
    found: dict = {}
    for kind, body in answers:
        if kind != RTM_NEWNEIGH or len(body) < _NDMSG.size:
            continue
        family, index, _state, flags, _type = _NDMSG.unpack_from(body)
        dst = _attributes(body, _NDMSG.size).get(NDA_DST)
        if family == socket.AF_INET6 and flags & NTF_PROXY and dst is not None and len(dst) == 16:
            found.setdefault(index, []).append(ipaddress.IPv6Address(dst))
    return {index: [str(address) for address in sorted(addresses)] for index, addresses in found.items()}


NFT_MSG_NEWTABLE, NFT_MSG_GETTABLE, NFTA_TABLE_NAME = (10 << 8) | 0, (10 << 8) | 1, 1
NFPROTO = {"inet": 1, "ip": 2, "ip6": 10}


def nf_table_exists(netns: str | None, family: str, table: str) -> bool | None:
    """Whether nf_tables holds table `family table` in `netns` (NFT_MSG_GETTABLE on a plain netlink socket: no
    process, so an IPv4-only node pays microseconds for asking about IPv6); None where it cannot tell."""
    name = table.encode() + b"\0"
    attribute = struct.pack("=HH", 4 + len(name), NFTA_TABLE_NAME) + name + b"\0" * (-len(name) % 4)
    body = struct.pack("=BBH", NFPROTO[family], 0, 0) + attribute  # nfgenmsg: family, version, resource id
    try:
        with inside(netns):
            answers = _ask(NETLINK_NETFILTER, NFT_MSG_GETTABLE, body)
    except OSError as err:
        return False if err.errno == errno.ENOENT else None
    except (ValueError, struct.error):  # NetnsMissing too
        return None
    return True if answers and answers[0][0] == NFT_MSG_NEWTABLE else None


def legacy_tables(netns: str | None, family: str) -> set:
    """The tables x_tables (iptables-legacy, ip6tables-legacy for `family` ip6) has in `netns`, from /proc."""
    path = f"/proc/thread-self/net/{'ip6' if family == 'ip6' else 'ip'}_tables_names"
    try:
        with inside(netns), open(path) as handle:
            return set(handle.read().split())
    except (OSError, NetnsMissing):
        return set()


def proxy_neighbours(netns: str | None) -> dict[int, list[str]]:
    """{link index: sorted addresses} of the IPv6 proxy neighbour entries of namespace `netns` (`ip -6 neigh show
    proxy`), from one dump on a plain netlink socket: pyroute2 dumps none (it asks without the NTF_PROXY flag
    that makes the kernel dump its proxy table)."""
    request = _NDMSG.pack(socket.AF_INET6, 0, 0, NTF_PROXY, 0)
    with inside(netns):
        return proxy_entries(_ask(socket.NETLINK_ROUTE, RTM_GETNEIGH, request, NLM_F_DUMP))


def ruleset_mark(name: str | None) -> list | None:
    """[boot id, namespace inode, nf_tables generation] of namespace `name`: the kernel counts every nf_tables
    transaction of the namespace (nft, iptables-nft, anyone's), so while the mark is the same, not one rule
    there has changed (a reboot or a namespace made again changes the first two). None where it cannot be read.
    Rules of iptables-legacy are not counted (nat_rule asks only where every backend is nf_tables, which is then
    in use, so asking loads nothing new)."""
    try:
        with inside(name):
            generation = _nft_generation()
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        inode = os.stat(netns_path(name) if name else "/proc/self/ns/net").st_ino
        return [boot, inode, generation]
    except (struct.error, ValueError, NetnsMissing) + kernel_errors():
        return None


def inside_session(ipr):
    """Run the body with this thread in the network namespace of netlink session `ipr`."""
    return _entered(fcntl.ioctl(ipr.fileno(), SIOCGSKNS))


def open_session(name: str | None) -> "IPRoute":
    """An IPRoute bound to network namespace `name` (None: the current one)."""
    with inside(name):
        return __getattr__("IPRoute")()


def sysctl_path(name: str) -> str:
    """/proc/sys path of a dotted sysctl name; an interface part may itself hold dots."""
    parts = name.split(".")
    if parts[:3] in (["net", "ipv4", "conf"], ["net", "ipv6", "conf"], ["net", "ipv4", "neigh"],
                     ["net", "ipv6", "neigh"]) and len(parts) > 4:
        parts = parts[:3] + [".".join(parts[3:-1]), parts[-1]]
    return os.path.join("/proc/sys", *parts)


def read_sysctl(netns: str | None, name: str) -> str:
    """A net.* sysctl as seen inside `netns` (/proc/sys/net follows the reading thread's namespace)."""
    with inside(netns), open(sysctl_path(name)) as handle:
        return handle.read().strip()


def write_sysctl(netns: str | None, name: str, value: str) -> None:
    with inside(netns), open(sysctl_path(name), "w") as handle:
        handle.write(f"{value}\n")


RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 16, 18, 20, 22, 24, 26
IFLA_IFNAME = 3
_IFINFOMSG = struct.Struct("=BxHiII")  # family, pad, type, index, flags, change
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12


def _decoders() -> dict:
    """pyroute2's class for each answer a read session takes, by message type."""
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg
    return {RTM_NEWLINK: ifinfmsg, RTM_NEWADDR: ifaddrmsg, RTM_NEWROUTE: rtmsg}


class ReadSession:
    """The reads of one namespace on a plain netlink socket, answered as IPRoute answers them (decoded by
    pyroute2's message classes): `link`, `addr` and `route` "dump", and `link` "get" by index or name.

    Through pyroute2 0.9's IPRoute a request costs about 0.25 ms of asyncio around the kernel's answer, and
    opening one as much again; here a tenth of that. An unchanged pods run reads every pod's namespace three
    times: at 300 pods that was a third of its run. And its route dump has both families with any pyroute2
    (0.7's IPRoute dumps IPv4 routes only). A dump is kept until `forget` (Sessions.changed: after a
    change), so the parts of a pods run read the node's links once, not once each."""

    def __init__(self, name: str | None):
        with inside(name):
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._sock.settimeout(5)
        try:  # the kernel then applies a dump's filters (a route type) itself, before answering
            self._sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        except OSError:  # before Linux 4.20: every route is answered, and the callers keep the type they read
            pass
        self._sequence = 0
        self._decoders = _decoders()
        self._dumps: dict = {}

    def forget(self) -> None:
        """Drop the dumps kept: the namespace has changed since."""
        self._dumps.clear()

    def _dump(self, kind: int, body: bytes) -> list:
        if (kind, body) not in self._dumps:
            self._dumps[kind, body] = self._request(kind, body, NLM_F_DUMP)
        return self._dumps[kind, body]

    def _request(self, kind: int, body: bytes, flags: int = 0) -> list:
        self._sequence += 1
        found = []
        for answered, message in _exchange(self._sock, kind, body, flags, self._sequence):
            if answered in self._decoders:
                msg = self._decoders[answered](message)
                msg.decode()
                found.append(msg)
        return found

    def link(self, command: str, **request) -> list:
        """"dump", or "get" by `index` or `ifname`."""
        if command == "dump" and not request:
            return self._dump(RTM_GETLINK, _IFINFOMSG.pack(0, 0, 0, 0, 0))
        if command == "get" and request and set(request) <= {"index", "ifname"}:
            body = _IFINFOMSG.pack(0, 0, request.get("index", 0), 0, 0)
            if request.get("ifname"):
                name = request["ifname"].encode() + b"\0"
                body += struct.pack("=HH", 4 + len(name), IFLA_IFNAME) + name + b"\0" * (-len(name) % 4)
            return self._request(RTM_GETLINK, body)
        raise ValueError(f"a read session does not {command} links")

    def addr(self, command: str, **request) -> list:
        if command != "dump" or request:
            raise ValueError(f"a read session does not {command} addresses")
        return self._dump(RTM_GETADDR, struct.pack("=BBBBi", 0, 0, 0, 0, 0))

    def route(self, command: str, **request) -> list:
        """Both families' routes in one dump, of one `type` (RTN_UNICAST...) if given."""
        if command != "dump" or set(request) - {"type"}:
            raise ValueError(f"a read session does not {command} routes")
        return self._dump(RTM_GETROUTE, _RTMSG.pack(0, 0, 0, 0, 0, 0, 0, request.get("type", 0), 0))

    def close(self) -> None:
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Sessions:
    """One netlink session per namespace, opened on first use, all closed at exit.

    While open, Python's cyclic garbage collector is paused: a batch of hundreds of pods parses
    hundreds of thousands of netlink objects, and the collector rescanning them again and again took
    a quarter of a module's run. At exit what was allocated meanwhile is frozen (left out of later
    collections, not freed) rather than scanned once more: module processes end soon after.
    """

    def __init__(self):
        self._open = {}
        self._readers = {}
        self._collecting = False

    def __getitem__(self, name: str | None) -> "IPRoute":
        if name not in self._open:
            self._open[name] = open_session(name)
        return self._open[name]

    def changed(self) -> None:
        """Something was changed: the reads kept are stale."""
        for reader in self._readers.values():
            reader.forget()

    def reader(self, name: str | None) -> ReadSession:
        """The read session of namespace `name`, for reading it (a namespace only read needs no IPRoute)."""
        if name not in self._readers:
            self._readers[name] = ReadSession(name)
        return self._readers[name]

    def __enter__(self):
        self._collecting = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc):
        for session in (*self._open.values(), *self._readers.values()):
            session.close()
        self._open.clear()
        self._readers.clear()
        if self._collecting:
            gc.freeze()
            gc.enable()


def describe_error(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    code = getattr(err, "code", None) or getattr(err, "errno", None)
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    return str(err)


def is_errno(err: Exception, *codes: int) -> bool:
    return getattr(err, "code", None) in codes or getattr(err, "errno", None) in codes


# --- reading links --------------------------------------------------------

def link_by_name(ipr, name: str):
    try:
        return ipr.link("get", ifname=name)[0]
    except kernel_errors() as err:
        if is_errno(err, errno.ENODEV):
            return None
        raise


def delete_link(ipr, name: str) -> None:
    """Delete link `name`; one already gone is deleted (a veth goes with the namespace of its other side, a moment
    after that namespace is deleted)."""
    try:
        ipr.link("del", ifname=name)
    except kernel_errors() as err:
        if not is_errno(err, errno.ENODEV):
            raise


def link_index(ipr, name: str) -> int:
    """The index of link `name`; a missing one is an error naming it."""
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise OSError(errno.ENODEV, f"no link named {name}")
    return found[0]


def link_kind(link) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info else None


def is_owned(link) -> bool:
    return (link.get_attr("IFLA_IFALIAS") or "").startswith(OWNER)


def addresses_by_link(ipr) -> dict[int, list[str]]:
    """{link index: its global-scope addresses as sorted 'ip/prefix' strings}, from one dump of the
    namespace: reading a whole node costs one request, not one per link."""
    found: dict = {}
    for msg in ipr.addr("dump"):
        if msg["family"] not in (socket.AF_INET, socket.AF_INET6) or msg["scope"] != 0:
            continue  # skip link-local and host scope
        found.setdefault(msg["index"], []).append(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
    return {index: sorted(addresses, key=address_order) for index, addresses in found.items()}


def link_addresses(ipr, index: int) -> list[str]:
    """Global-scope addresses of a link, as sorted 'ip/prefix' strings."""
    return addresses_by_link(ipr).get(index, [])


def links_by_name(ipr) -> dict:
    """{name: link message} of every link in the namespace, from one dump."""
    return {link.get_attr("IFLA_IFNAME"): link for link in ipr.link("dump")}


def link_state(ipr, link, names: dict | None = None, addresses: dict | None = None) -> dict:
    """The normalised attributes of a link that modules compare and set.

    `names` ({index: name}) and `addresses` (from addresses_by_link) let a caller reading many
    links of one namespace pass what it read once; without them the link's own are asked for.
    """
    info = link.get_attr("IFLA_LINKINFO")
    slave = info.get_attr("IFLA_INFO_SLAVE_DATA") if info else None
    master = link.get_attr("IFLA_MASTER")
    if master and names is not None and master in names:
        master_name = names[master]
    else:
        master_name = ipr.link("get", index=master)[0].get_attr("IFLA_IFNAME") if master else ""
    state = {
        "kind": link_kind(link),
        "mtu": link.get_attr("IFLA_MTU"),
        "mac": link.get_attr("IFLA_ADDRESS"),
        "up": bool(link["flags"] & 1),
        "master": master_name,
        "addresses": (addresses.get(link["index"], []) if addresses is not None
                      else link_addresses(ipr, link["index"])),
        "owned": is_owned(link),
    }
    if slave is not None and info.get_attr("IFLA_INFO_SLAVE_KIND") == "bridge":
        state["hairpin"] = bool(slave.get_attr("IFLA_BRPORT_MODE"))
    return state
