"""Unit tests for plugins/module_utils/_bgp.py: the BGP speaker model, its validation, masking and waiting."""
from __future__ import annotations

import re

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _bgp as bgp
from ansible_collections.handcni.podnet.plugins.module_utils import _state as state

LEAF = {"name": "leaf03", "address": "192.168.210.254", "remote_as": 65000}


def params(**overrides) -> dict:
    data = {"router_id": "192.168.210.22", "local_as": 65002, "networks": ["192.168.20.0/24"],
            "neighbors": [dict(LEAF)]}
    data.update(overrides)
    return data


def neighbor(**overrides) -> dict:
    return {"neighbors": [dict(LEAF, **overrides)]}


def fails(data: dict, field: str) -> str:
    with pytest.raises(ValueError) as err:
        bgp.speaker(data)
    assert str(err.value).startswith(field + ":"), str(err.value)
    return str(err.value)


def test_a_seed_speaker_is_normalised():
    speaker = bgp.speaker(params(networks=["192.168.20.0/24", "192.168.20.0/24", "10.0.0.0/8"]))
    assert speaker.router_id == "192.168.210.22" and speaker.local_as == 65002
    assert speaker.networks == ("10.0.0.0/8", "192.168.20.0/24")
    (leaf,) = speaker.neighbors
    assert leaf.name == "leaf03" and leaf.address == "192.168.210.254" and leaf.remote_as == 65000
    assert leaf.graceful_restart and leaf.import_prefixes == () and leaf.export_prefixes == ()
    assert not speaker.ibgp(leaf)


def test_a_neighbour_without_a_name_is_named_after_its_address():
    speaker = bgp.speaker(params(neighbors=[{"address": "10.1.2.3", "remote_as": 65002}]))
    assert speaker.neighbors[0].name == "peer_10_1_2_3"
    assert speaker.ibgp(speaker.neighbors[0])


@pytest.mark.parametrize("value", [0, 4294967296, -1, True, "65000"])
def test_local_as_out_of_range_names_the_field(value):
    assert "1..4294967295" in fails(params(local_as=value), "local_as")


@pytest.mark.parametrize("value", [1, 65000, 4200000000, 4294967295])
def test_as_in_range(value):
    assert bgp.speaker(params(local_as=value)).local_as == value


@pytest.mark.parametrize("value", ["192.168.210", "fe80::1", "10.0.0.0/8", "x"])
def test_router_id_must_be_ipv4(value):
    fails(params(router_id=value), "router_id")


def test_router_id_and_local_as_are_required():
    fails(params(router_id=None), "router_id")
    fails(params(local_as=None), "local_as")


def test_neighbour_address_and_as_are_required():
    assert "required" in fails(params(neighbors=[{"remote_as": 65000}]), "neighbors[0].address")
    assert "required" in fails(params(neighbors=[{"address": "10.0.0.1"}]), "neighbors[0].remote_as")
    fails(params(**neighbor(remote_as=0)), "neighbors[0].remote_as")
    fails(params(**neighbor(address="2001:db8::x")), "neighbors[0].address")


# --- IPv6 sessions (dual stack) -----------------------------------------------------

LEAF6 = {"name": "leaf03_v6", "address": "fd00:210::254", "remote_as": 65000, "source_address": "fd00:210::22",
         "import_prefixes": [{"prefix": "fd00:20::/64", "action": "deny"}, {"prefix": "fd00::/48", "ge": 64, "le": 64}],
         "export_prefixes": ["fd00:20::/64"]}


def test_an_ipv6_neighbour_is_a_session_of_its_own_family():
    speaker = bgp.speaker(params(networks=["fd00:20::/64", "192.168.20.0/24"], neighbors=[dict(LEAF), dict(LEAF6)]))
    four, six = speaker.neighbors
    assert (four.version, six.version) == (4, 6) and speaker.ipv6
    assert speaker.networks == ("192.168.20.0/24", "fd00:20::/64")  # IPv4 first
    assert speaker.networks_of(6) == ("fd00:20::/64",) and speaker.neighbors_of(6) == (six,)
    assert six.import_prefixes[1] == bgp.PrefixRule("permit", "fd00::/48", 64, 64)
    assert six.import_prefixes[1].max_length == 128 and four.version == 4
    assert not bgp.speaker(params()).ipv6
    assert bgp.speaker(params(neighbors=[{"address": "fd00::1", "remote_as": 1}])).neighbors[0].name == "peer_fd00__1"


@pytest.mark.parametrize("item, field, words", [
    ({"source_address": "192.168.210.22"}, "neighbors[0].source_address", "is not an IPv6 address"),
    ({"import_prefixes": ["192.168.20.0/24"]}, "neighbors[0].import_prefixes[0].prefix", "is not an IPv6 network"),
    ({"export_prefixes": [{"prefix": "fd00::/48", "le": 129}]}, "neighbors[0].export_prefixes[0].le", "48..128"),
])
def test_an_ipv6_neighbours_source_and_rules_are_ipv6(item, field, words):
    assert words in fails(params(neighbors=[dict(LEAF6, **item)]), field)


def test_an_ipv4_neighbours_rules_are_ipv4():
    assert "is not an IPv4 network" in fails(params(**neighbor(export_prefixes=["fd00::/64"])),
                                             "neighbors[0].export_prefixes[0].prefix")


@pytest.mark.parametrize("rule, field", [
    ({"prefix": "192.168.0.0/33"}, "neighbors[0].import_prefixes[1].prefix"),
    ({"prefix": "192.168.1.0/16"}, "neighbors[0].import_prefixes[1].prefix"),   # host bits set
    ({"prefix": "not-a-cidr"}, "neighbors[0].import_prefixes[1].prefix"),
    ({"prefix": "2001:db8::/32"}, "neighbors[0].import_prefixes[1].prefix"),
    ({"prefix": "192.168.0.0/16", "ge": 8}, "neighbors[0].import_prefixes[1].ge"),
    ({"prefix": "192.168.0.0/16", "le": 33}, "neighbors[0].import_prefixes[1].le"),
    ({"prefix": "192.168.0.0/16", "ge": 26, "le": 24}, "neighbors[0].import_prefixes[1]"),
    ({"prefix": "192.168.0.0/16", "action": "maybe"}, "neighbors[0].import_prefixes[1].action"),
])
def test_a_bad_filter_names_the_field(rule, field):
    fails(params(**neighbor(import_prefixes=[{"prefix": "10.0.0.0/8"}, rule])), field)


@pytest.mark.parametrize("rule, expected", [
    ("10.0.0.0/8", ("permit", "10.0.0.0/8", 8, 8)),
    ({"prefix": "10.0.0.0/8", "le": 24}, ("permit", "10.0.0.0/8", 8, 24)),
    ({"prefix": "10.0.0.0/8", "ge": 24}, ("permit", "10.0.0.0/8", 24, 32)),
    ({"prefix": "10.0.0.0/8", "ge": 16, "le": 24, "action": "deny"}, ("deny", "10.0.0.0/8", 16, 24)),
    ({"prefix": "default", "le": 32}, ("permit", "0.0.0.0/0", 0, 32)),
])
def test_prefix_rule_ranges(rule, expected):
    assert tuple(bgp.prefix_rule(rule, "f")) == expected


@pytest.mark.parametrize("rule, expected", [
    ("fd00:20::/64", ("permit", "fd00:20::/64", 64, 64)),
    ({"prefix": "fd00::/48", "ge": 64}, ("permit", "fd00::/48", 64, 128)),
    ({"prefix": "default", "le": 128}, ("permit", "::/0", 0, 128)),
])
def test_ipv6_prefix_rule_ranges(rule, expected):
    assert tuple(bgp.prefix_rule(rule, "f", 6)) == expected


def test_the_password_is_checked_but_never_echoed():
    secret = 'has space"'
    message = fails(params(**neighbor(password=secret)), "neighbors[0].password")
    assert secret not in message and "has space" not in message
    fails(params(**neighbor(password="x" * 81)), "neighbors[0].password")
    assert bgp.speaker(params(**neighbor(password="s3cr3t!#"))).neighbors[0].password == "s3cr3t!#"
    assert bgp.speaker(params(**neighbor(password=""))).neighbors[0].password is None


def test_the_public_neighbour_hides_the_password():
    public = bgp.speaker(params(**neighbor(password="s3cr3t"))).neighbors[0].public()
    assert public["password"] is True and "s3cr3t" not in repr(public)


@pytest.mark.parametrize("item, field", [
    ({"name": "9lives"}, "neighbors[0].name"),
    ({"name": "leaf-03"}, "neighbors[0].name"),
    ({"hold_time": 2}, "neighbors[0].hold_time"),
    ({"hold_time": 9, "keepalive_time": 9}, "neighbors[0].keepalive_time"),
    ({"multihop": 0}, "neighbors[0].multihop"),
    ({"import_limit": -1}, "neighbors[0].import_limit"),
    ({"description": 'say "hi"'}, "neighbors[0].description"),
    ({"source_address": "192.168.210"}, "neighbors[0].source_address"),
    ({"route_reflector_client": True}, "neighbors[0].route_reflector_client"),  # eBGP neighbour
    ({"bfd": {"interval": 5}}, "neighbors[0].bfd.interval"),
    ({"bfd": {"interval": 60001}}, "neighbors[0].bfd.interval"),
    ({"bfd": {"multiplier": 1}}, "neighbors[0].bfd.multiplier"),
    ({"bfd": {"multiplier": 256}}, "neighbors[0].bfd.multiplier"),
    ({"bfd": "fast"}, "neighbors[0].bfd"),
])
def test_bad_neighbour_options_name_the_field(item, field):
    fails(params(**neighbor(**item)), field)


def test_bfd_timers_default_to_100_ms_times_3():
    item = bgp.speaker(params(**neighbor(bfd={}))).neighbors[0]
    assert item.bfd == bgp.Bfd(100, 3) and item.bfd.detect_ms == 300
    assert item.public()["bfd"] == {"interval": 100, "multiplier": 3, "graceful": False}
    assert bgp.speaker(params(**neighbor())).neighbors[0].bfd is None


def test_neighbours_are_unique_by_name_and_address():
    fails(params(neighbors=[dict(LEAF), dict(LEAF, address="10.0.0.1")]), "neighbors[1].name")
    fails(params(neighbors=[dict(LEAF), dict(LEAF, name="other")]), "neighbors[1].address")


def test_a_bad_network_names_the_field():
    fails(params(networks=["192.168.20.0/24", "192.168.20.1/24"]), "networks[1]")


# --- masking ---------------------------------------------------------------------

PATTERN = re.compile(r"^peer (?P<key>\S+) password (?P<secret>\S+)$", re.MULTILINE)


def test_passwords_are_masked_and_a_change_is_marked():
    old = "peer a password one\npeer b password two\n"
    new = "peer a password one\npeer b password three\npeer c password four\n"
    changed = bgp.changed_passwords(old, new, PATTERN)
    assert changed == {"b", "c"}
    masked = bgp.mask_passwords(new, PATTERN, changed)
    assert masked == ("peer a password <hidden>\npeer b password <hidden, changed>\n"
                      "peer c password <hidden, changed>\n")
    assert bgp.changed_passwords(None, "", PATTERN) == set()


# --- sessions and waiting -----------------------------------------------------------

def session(state: str, info: str = "") -> bgp.Session:
    return bgp.Session("leaf03", "192.168.210.254", 65000, state, "", info)


def test_not_established_names_each_neighbour_with_state_and_error():
    speaker = bgp.speaker(params(neighbors=[dict(LEAF), {"name": "spare", "address": "10.0.0.9", "remote_as": 1}]))
    problems = bgp.not_established(speaker.neighbors, {"leaf03": session("Idle", "Received: Bad peer AS")})
    assert problems == ["leaf03 (192.168.210.254, AS 65000): BGP state Idle, last error: Received: Bad peer AS",
                        "spare (10.0.0.9, AS 1): not configured in the running daemon"]
    silent = bgp.not_established(speaker.neighbors[:1], {"leaf03": session("Connect")})
    assert "password" in silent[0] and "Connect" in silent[0]
    assert bgp.not_established(speaker.neighbors[:1], {"leaf03": session("Established")}) == []


def test_wait_returns_as_soon_as_all_are_established():
    speaker = bgp.speaker(params())
    answers = iter([{"leaf03": session("Active")}, {"leaf03": session("Established")}])
    sessions, problems = bgp.wait(lambda: next(answers), speaker.neighbors, timeout=30, interval=0)
    assert problems == [] and sessions["leaf03"].established


def test_wait_gives_up_after_the_timeout_with_the_problems():
    speaker = bgp.speaker(params())
    sessions, problems = bgp.wait(lambda: {"leaf03": session("Active")}, speaker.neighbors, timeout=0, interval=0)
    assert len(problems) == 1 and "Active" in problems[0]


# --- files and processes -------------------------------------------------------------

def test_config_files_are_written_atomically_with_mode(tmp_path):
    path = tmp_path / "bird.conf"
    state.write_text(str(path), "router id 1.2.3.4;\n", 0o640)
    assert path.read_text() == "router id 1.2.3.4;\n"
    assert bgp.file_mode(str(path))[0] == 0o640
    assert state.read_text(str(tmp_path / "missing")) is None
    assert [p.name for p in tmp_path.iterdir()] == ["bird.conf"]


def test_a_rule_with_an_unknown_key_names_it():
    fails(params(**neighbor(export_prefixes=[{"prefix": "10.0.0.0/8", "length": 24}])),
          "neighbors[0].export_prefixes[0]")
