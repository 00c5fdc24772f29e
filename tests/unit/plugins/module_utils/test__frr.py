"""Unit tests for plugins/module_utils/_frr.py: frr.conf rendering and bgpd's JSON."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _bgp as bgp
from ansible_collections.handcni.podnet.plugins.module_utils import _frr as frr

# leaf03 of seed lab 9 with one node, as the bgp role asks for it.
LEAF = bgp.speaker({
    "router_id": "192.168.210.254", "local_as": 65000,
    "neighbors": [{
        "name": "worker2", "address": "192.168.210.22", "remote_as": 65002, "source_address": "192.168.210.254",
        "description": "worker2", "password": "s3cret", "hold_time": 9, "keepalive_time": 3,
        "connect_retry_time": 5, "import_limit": 256, "import_prefixes": ["192.168.20.0/24"],
        "export_prefixes": [{"prefix": "192.168.20.0/24", "action": "deny"},
                            {"prefix": "192.168.0.0/19", "ge": 19, "le": 24}],
    }],
})

LEAF_CONF = """\
! Managed by handcni.podnet (frr_bgp); changes made here are overwritten.
frr defaults traditional
hostname leaf03
log file /var/log/frr/handcni/frr.log informational
service integrated-vtysh-config
!
ip prefix-list HANDCNI-worker2-IN seq 10 permit 192.168.20.0/24
ip prefix-list HANDCNI-worker2-OUT seq 10 deny 192.168.20.0/24
ip prefix-list HANDCNI-worker2-OUT seq 20 permit 192.168.0.0/19 le 24
!
router bgp 65000
 bgp router-id 192.168.210.254
 no bgp default ipv4-unicast
 bgp log-neighbor-changes
 bgp graceful-restart
 neighbor 192.168.210.22 remote-as 65002
 neighbor 192.168.210.22 description worker2
 neighbor 192.168.210.22 password s3cret
 neighbor 192.168.210.22 update-source 192.168.210.254
 neighbor 192.168.210.22 timers 3 9
 neighbor 192.168.210.22 timers connect 5
 !
 address-family ipv4 unicast
  neighbor 192.168.210.22 activate
  neighbor 192.168.210.22 prefix-list HANDCNI-worker2-IN in
  neighbor 192.168.210.22 prefix-list HANDCNI-worker2-OUT out
  neighbor 192.168.210.22 maximum-prefix 256 restart 1
 exit-address-family
exit
!
"""

REFLECTOR = bgp.speaker({
    "router_id": "192.168.210.254", "local_as": 65000, "networks": ["10.9.0.0/16"],
    "neighbors": [{"name": "worker1", "address": "192.168.210.21", "remote_as": 65000, "graceful_restart": False,
                   "route_reflector_client": True, "next_hop_self": True, "multihop": 2, "passive": True}],
})


def test_the_seed_leaf_config():
    assert frr.render(LEAF, "leaf03", "/var/log/frr/handcni/frr.log") == LEAF_CONF


def test_a_reflector_and_the_other_options():
    text = frr.render(REFLECTOR, "leaf03")
    assert "  neighbor 192.168.210.21 route-reflector-client\n" in text
    assert "  neighbor 192.168.210.21 next-hop-self force\n" in text
    assert " neighbor 192.168.210.21 graceful-restart-disable\n" in text and " bgp graceful-restart\n" not in text
    assert " neighbor 192.168.210.21 passive\n" in text
    assert "ebgp-multihop" not in text  # iBGP
    assert "  network 10.9.0.0/16\n" in text and " no bgp network import-check\n" in text
    # a neighbour without rules gets lists that deny everything, never missing ones (FRR: permit all)
    assert "ip prefix-list HANDCNI-worker1-IN seq 10 deny 0.0.0.0/0 le 32\n" in text
    assert "ip prefix-list HANDCNI-worker1-OUT seq 10 deny 0.0.0.0/0 le 32\n" in text
    assert "log file" not in text


@pytest.mark.parametrize("rule, entry", [
    ("10.0.0.0/8", "permit 10.0.0.0/8"),
    ({"prefix": "10.0.0.0/8", "le": 24}, "permit 10.0.0.0/8 le 24"),
    ({"prefix": "10.0.0.0/8", "ge": 24}, "permit 10.0.0.0/8 ge 24"),
    ({"prefix": "10.0.0.0/8", "ge": 16, "le": 24}, "permit 10.0.0.0/8 ge 16 le 24"),
    ({"prefix": "10.0.0.0/8", "ge": 24, "le": 24}, "permit 10.0.0.0/8 ge 24 le 24"),
    ({"prefix": "10.0.0.0/8", "ge": 8, "le": 8, "action": "deny"}, "deny 10.0.0.0/8"),
    ({"prefix": "0.0.0.0/0", "le": 32}, "permit 0.0.0.0/0 le 32"),
])
def test_prefix_list_entries_have_one_spelling(rule, entry):
    assert frr.prefix_list_entry(bgp.prefix_rule(rule, "f")) == entry


def test_passwords_are_masked_per_neighbour():
    text = frr.render(LEAF, "leaf03")
    assert bgp.passwords(text, frr.PASSWORD) == {"192.168.210.22": "s3cret"}
    assert "s3cret" not in bgp.mask_passwords(text, frr.PASSWORD)


def test_daemons_file_and_marker():
    text = frr.daemons_file("-P 0")
    assert "bgpd=yes" in text and 'zebra_options="-P 0 -s 90000000"' in text
    assert frr.owned(frr.render(LEAF, "x")) and not frr.owned("frr version 8.4.4\n")


WITH_BFD = LEAF._replace(neighbors=(LEAF.neighbors[0]._replace(bfd=bgp.Bfd(100, 3)),
                                    LEAF.neighbors[0]._replace(name="worker3", address="192.168.230.23",
                                                               bfd=bgp.Bfd(300, 5))))


def test_bfd_timers_are_the_sessions_and_bfdd_runs():
    text = frr.render(WITH_BFD, "leaf03")
    assert " neighbor 192.168.210.22 bfd 3 100 100\n" in text
    assert " neighbor 192.168.230.23 bfd 5 300 300\n" in text
    assert frr.daemons(WITH_BFD) == ("zebra", "bfdd", "bgpd") and frr.daemons(LEAF) == ("zebra", "bgpd")
    daemons = frr.daemons_file("-P 0", frr.daemons(WITH_BFD))
    assert "bfdd=yes\n" in daemons and 'bfdd_options="-P 0"' in daemons
    assert "bfd" not in frr.render(LEAF, "leaf03").replace("bfdd", "")


# Dual stack: worker2's IPv6 session beside its IPv4 one (bgp_speaker's worker2_v6), on a route reflector.
DUAL = bgp.speaker({
    "router_id": "192.168.210.254", "local_as": 65000, "max_paths": 3,
    "neighbors": [LEAF.neighbors[0].public() | {"password": "s3cret", "bfd": {}}, {
        "name": "worker2_v6", "address": "fd00:210::22", "remote_as": 65000, "source_address": "fd00:210::254",
        "description": "worker2", "password": "s3cret", "import_limit": 256, "import_prefixes": ["fd00:20::/64"],
        "route_reflector_client": True, "next_hop_self": True, "bfd": {},
        "export_prefixes": [{"prefix": "fd00:20::/64", "action": "deny"}, {"prefix": "fd00::/48", "ge": 64}],
    }, {"name": "worker3_v6", "address": "fd00:230::23", "remote_as": 65003}],
})


def test_ipv6_neighbours_have_ipv6_prefix_lists_and_are_activated_in_ipv6_unicast_only():
    text = frr.render(DUAL, "leaf03")
    assert "ipv6 prefix-list HANDCNI-worker2_v6-IN seq 10 permit fd00:20::/64\n" in text
    assert "ipv6 prefix-list HANDCNI-worker2_v6-OUT seq 20 permit fd00::/48 ge 64\n" in text  # le 128: the longest
    assert "ipv6 prefix-list HANDCNI-worker3_v6-IN seq 10 deny ::/0 le 128\n" in text  # no rules: nothing
    assert " neighbor fd00:210::22 update-source fd00:210::254\n" in text and " neighbor fd00:210::22 bfd 3 100 100\n" in text
    four = text[text.index(" address-family ipv4 unicast"):text.index(" address-family ipv6 unicast")]
    six = text[text.index(" address-family ipv6 unicast"):]
    assert "fd00" not in four and "192.168" not in six
    assert "  maximum-paths 3\n  maximum-paths ibgp 3\n" in four and "  maximum-paths 3\n  maximum-paths ibgp 3\n" in six
    assert ("  neighbor fd00:210::22 activate\n  neighbor fd00:210::22 route-reflector-client\n"
            "  neighbor fd00:210::22 next-hop-self force\n  neighbor fd00:210::22 prefix-list HANDCNI-worker2_v6-IN in\n"
            "  neighbor fd00:210::22 prefix-list HANDCNI-worker2_v6-OUT out\n"
            "  neighbor fd00:210::22 maximum-prefix 256 restart 1\n") in six
    assert six.endswith(" exit-address-family\nexit\n!\n")
    assert bgp.passwords(text, frr.PASSWORD) == {"192.168.210.22": "s3cret", "fd00:210::22": "s3cret"}
    assert "address-family ipv6" not in frr.render(LEAF, "leaf03")


def test_parse_summary_reads_both_families():
    data = dict(SUMMARY, ipv6Unicast={"routerId": "192.168.210.254", "as": 65000, "peers": {
        "fd00:210::22": {"remoteAs": 65000, "state": "Established", "connectionsEstablished": 2}}})
    router_id, local_as, found = frr.parse_summary(json.dumps(data), DUAL.neighbors)
    assert (router_id, local_as) == ("192.168.210.254", 65000)
    assert found["worker2_v6"].established and found["worker2_v6"].established_count == 2
    assert found["worker2"].address == "192.168.210.22" and found["192.168.230.23"].state == "Active"
    only6 = frr.parse_summary(json.dumps({"ipv6Unicast": data["ipv6Unicast"]}), DUAL.neighbors)
    assert only6[:2] == ("192.168.210.254", 65000) and list(only6[2]) == ["worker2_v6"]


@pytest.mark.skipif(not shutil.which("vtysh"), reason="FRR is not installed")
@pytest.mark.parametrize("speaker", [LEAF, REFLECTOR, WITH_BFD, DUAL],
                         ids=["ebgp-leaf", "ibgp-reflector", "bfd", "dual-stack"])
def test_vtysh_itself_accepts_the_rendering(tmp_path, speaker):
    path = tmp_path / "frr.conf"
    path.write_text(frr.render(speaker, "leaf03"))
    run = subprocess.run(["vtysh", "--dryrun", "-f", str(path)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


SUMMARY = {"ipv4Unicast": {"routerId": "192.168.210.254", "as": 65000, "peers": {
    "192.168.210.22": {"remoteAs": 65002, "state": "Established", "peerUptimeEstablishedEpoch": 1795353810,
                       "connectionsEstablished": 1, "connectionsDropped": 0},
    "192.168.230.23": {"remoteAs": 65003, "state": "Active", "connectionsEstablished": 0,
                       "lastNotificationReason": "OPEN Message Error/Bad Peer AS"},
}}}


def test_parse_summary_names_peers_by_the_listed_neighbours():
    router_id, local_as, sessions = frr.parse_summary(json.dumps(SUMMARY), LEAF.neighbors)
    assert (router_id, local_as) == ("192.168.210.254", 65000)
    assert sessions["worker2"].established and sessions["worker2"].established_count == 1
    assert sessions["worker2"].since == "1795353810"
    other = sessions["192.168.230.23"]
    assert other.state == "Active" and other.info == "OPEN Message Error/Bad Peer AS" and not other.established


def test_parse_summary_without_an_instance():
    assert frr.parse_summary("{}", LEAF.neighbors) == (None, None, {})
    with pytest.raises(ValueError):
        frr.parse_summary("% Unknown command", LEAF.neighbors)


def test_neighbor_errors_of_sessions_that_are_down():
    text = json.dumps({"192.168.210.22": {"bgpState": "Established", "lastResetDueTo": "old"},
                       "192.168.230.23": {"bgpState": "Active", "lastResetDueTo": "BGP Notification received"}})
    assert frr.neighbor_errors(text) == {"192.168.230.23": "BGP Notification received"}
    assert frr.neighbor_errors("garbage") == {}


def test_max_paths_is_ecmp_for_ebgp_and_ibgp_with_the_as_path_relaxed():
    text = frr.render(bgp.speaker({"router_id": "192.168.210.254", "local_as": 65000, "max_paths": 3}), "leaf03")
    assert " bgp bestpath as-path multipath-relax\n" in text
    assert "  maximum-paths 3\n  maximum-paths ibgp 3\n" in text
    assert "maximum-paths" not in frr.render(bgp.speaker({"router_id": "192.168.210.254", "local_as": 65000}),
                                             "leaf03")
