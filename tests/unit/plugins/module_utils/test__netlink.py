"""Unit tests for the plain netlink parts of plugins/module_utils/_netlink.py: the request loop and the read
session on a faked socket, and the parsing of the proxy neighbour dump (no kernel)."""
from __future__ import annotations

import errno
import socket
import struct

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _netlink
from ansible_collections.handcni.podnet.plugins.module_utils._netlink import (
    NDA_DST,
    NLM_F_DUMP,
    NLMSG_DONE,
    NLMSG_ERROR,
    NTF_PROXY,
    RTM_GETNEIGH,
    RTM_NEWNEIGH,
    _ask,
    _attributes,
    proxy_entries,
)


def attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def neighbour(address: str, index: int, flags: int = NTF_PROXY) -> bytes:
    """The body of an RTM_NEWNEIGH message, as the kernel dumps one."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    ndmsg = struct.pack("=BxxxiHBB", family, index, 0, flags, 1)
    return ndmsg + attribute(NDA_DST, socket.inet_pton(family, address))


def message(kind: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body + b"\0" * (-len(body) % 4)


class FakeSocket:
    """Answers each recv with the next of `replies`, and keeps what was sent."""

    def __init__(self, replies: list):
        self.replies = list(replies)
        self.sent = []

    def __call__(self, *_args):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def settimeout(self, _seconds):
        pass

    def setsockopt(self, *option):
        self.options = getattr(self, "options", []) + [option]

    def send(self, data: bytes):
        self.sent.append(data)

    def recv(self, _size: int) -> bytes:
        return self.replies.pop(0)


def test_the_ndmsg_is_the_kernels_12_bytes():
    assert _netlink._NDMSG.size == 12


def test_attributes_are_read_past_their_padding():
    data = b"\0" * 4 + attribute(1, b"\x01\x02\x03") + attribute(0x8000 | 2, b"abcd")  # nested bit dropped
    assert _attributes(data, 4) == {1: b"\x01\x02\x03", 2: b"abcd"}


def test_proxy_entries_by_link_in_address_order():
    answers = [(RTM_NEWNEIGH, neighbour("fe80::1", 7)), (RTM_NEWNEIGH, neighbour("fd00::10", 7)),
               (RTM_NEWNEIGH, neighbour("fd00::2", 7)), (RTM_NEWNEIGH, neighbour("fe80::1", 3))]
    assert proxy_entries(answers) == {7: ["fd00::2", "fd00::10", "fe80::1"], 3: ["fe80::1"]}


def test_proxy_entries_leave_out_other_neighbours_families_and_messages():
    answers = [(RTM_NEWNEIGH, neighbour("fd00::9", 7, flags=0)), (RTM_NEWNEIGH, neighbour("10.0.0.1", 7)),
               (RTM_NEWNEIGH + 1, neighbour("fd00::8", 7)), (RTM_NEWNEIGH, b"\0" * 4)]
    assert proxy_entries(answers) == {}


def test_a_dump_is_read_over_several_replies_up_to_done(monkeypatch):
    fake = FakeSocket([message(RTM_NEWNEIGH, neighbour("fe80::1", 7)) + message(RTM_NEWNEIGH, neighbour("fd00::1", 7)),
                       message(RTM_NEWNEIGH, neighbour("fd00::2", 8)) + message(NLMSG_DONE, struct.pack("=i", 0))])
    monkeypatch.setattr(_netlink.socket, "socket", fake)
    answers = _ask(socket.NETLINK_ROUTE, RTM_GETNEIGH, b"body", NLM_F_DUMP)
    assert proxy_entries(answers) == {7: ["fd00::1", "fe80::1"], 8: ["fd00::2"]}
    length, kind, flags = struct.unpack_from("=IHH", fake.sent[0])
    assert (length, kind, flags) == (20, RTM_GETNEIGH, 0x301) and fake.sent[0].endswith(b"body")


def test_an_error_answered_is_raised(monkeypatch):
    monkeypatch.setattr(_netlink.socket, "socket", FakeSocket([message(NLMSG_ERROR, struct.pack("=i", -errno.EPERM))]))
    with pytest.raises(OSError) as err:
        _ask(socket.NETLINK_ROUTE, RTM_GETNEIGH, b"", NLM_F_DUMP)
    assert err.value.errno == errno.EPERM


def test_a_request_that_is_no_dump_takes_one_reply(monkeypatch):
    monkeypatch.setattr(_netlink.socket, "socket", FakeSocket([message(RTM_NEWNEIGH, b"x" * 4)]))
    assert _ask(socket.NETLINK_ROUTE, RTM_GETNEIGH, b"") == [(RTM_NEWNEIGH, b"x" * 4)]


def test_the_nf_tables_generation_is_read_from_its_attribute(monkeypatch):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0) + attribute(_netlink.NFTA_GEN_ID, struct.pack(">I", 42))
    monkeypatch.setattr(_netlink.socket, "socket", FakeSocket([message(_netlink.NFT_MSG_NEWGEN, body)]))
    assert _netlink._nft_generation() == 42


def test_an_nf_tables_answer_without_a_generation_is_an_error(monkeypatch):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, 0)
    monkeypatch.setattr(_netlink.socket, "socket", FakeSocket([message(_netlink.NFT_MSG_NEWGEN, body)]))
    with pytest.raises(ValueError, match="no generation"):
        _netlink._nft_generation()


def link_message(index: int, name: str, sequence: int) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0, 0) + attribute(_netlink.IFLA_IFNAME, name.encode() + b"\0")
    return struct.pack("=IHHII", 16 + len(body), _netlink.RTM_NEWLINK, 2, sequence, 0) + body


@pytest.fixture
def decoders():
    """pyroute2's message classes, imported before a test fakes the socket class (ssl subclasses it on import)."""
    pytest.importorskip("pyroute2.netlink.rtnl.ifinfmsg")


def test_a_read_session_skips_what_is_left_of_an_earlier_request_and_keeps_its_dump(monkeypatch, decoders):
    done = struct.pack("=IHHII", 20, NLMSG_DONE, 2, 1, 0) + struct.pack("=i", 0)
    fake = FakeSocket([link_message(7, "stale", 0) + link_message(1, "lo", 1) + done])
    monkeypatch.setattr(_netlink.socket, "socket", fake)
    reader = _netlink.ReadSession(None)
    assert [link.get_attr("IFLA_IFNAME") for link in reader.link("dump")] == ["lo"]
    assert [link["index"] for link in reader.link("dump")] == [1] and len(fake.sent) == 1  # kept, not asked again


def test_a_read_session_gets_a_link_by_name(monkeypatch, decoders):
    fake = FakeSocket([link_message(3, "eth0", 1)])
    monkeypatch.setattr(_netlink.socket, "socket", fake)
    assert _netlink.ReadSession(None).link("get", ifname="eth0")[0]["index"] == 3
    kind, flags = struct.unpack_from("=HH", fake.sent[0], 4)
    assert (kind, flags) == (_netlink.RTM_GETLINK, 1) and fake.sent[0][32:] == attribute(_netlink.IFLA_IFNAME, b"eth0\0")


def test_a_read_session_refuses_what_is_no_read():
    reader = _netlink.ReadSession.__new__(_netlink.ReadSession)
    for call in (lambda: reader.link("del", index=3), lambda: reader.addr("add"), lambda: reader.route("dump", table=5)):
        with pytest.raises(ValueError, match="a read session does not"):
            call()


def test_a_read_session_asks_the_kernel_for_one_route_type(monkeypatch, decoders):
    done = struct.pack("=IHHII", 20, NLMSG_DONE, 2, 1, 0) + struct.pack("=i", 0)
    fake = FakeSocket([done])
    monkeypatch.setattr(_netlink.socket, "socket", fake)
    assert _netlink.ReadSession(None).route("dump", type=1) == []
    assert fake.options == [(_netlink.SOL_NETLINK, _netlink.NETLINK_GET_STRICT_CHK, 1)]  # the kernel filters
    assert _netlink._RTMSG.unpack_from(fake.sent[0], 16)[7] == 1
