"""Unit tests for plugins/module_utils/_bird.py: bird.conf rendering and `birdc show protocols` parsing."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _bgp as bgp
from ansible_collections.handcni.podnet.plugins.module_utils import _bird as bird

# Seed lab 9, worker2, as the bgp role asks for it.
WORKER2 = bgp.speaker({
    "router_id": "192.168.210.22", "local_as": 65002, "networks": ["192.168.20.0/24"],
    "neighbors": [{
        "name": "leaf03", "address": "192.168.210.254", "remote_as": 65000, "source_address": "192.168.210.22",
        "description": "leaf03", "password": "s3cret", "hold_time": 9, "keepalive_time": 3,
        "connect_retry_time": 5, "import_limit": 256,
        "import_prefixes": [{"prefix": "192.168.20.0/24", "action": "deny"},
                            {"prefix": "192.168.0.0/19", "ge": 19, "le": 24}],
        "export_prefixes": ["192.168.20.0/24"],
    }],
})

WORKER2_CONF = """\
# Managed by handcni.podnet (bird_bgp); changes made here are overwritten.
router id 192.168.210.22;
timeformat protocol iso long;

protocol device {
    scan time 10;
}

protocol kernel {
    scan time 10;
    ipv4 {
        import none;
        export where source = RTS_BGP;
    };
}

protocol static handcni_networks {
    ipv4;
    route 192.168.20.0/24 unreachable;
}

protocol bgp leaf03 {
    description "leaf03";
    local as 65002;
    source address 192.168.210.22;
    neighbor 192.168.210.254 as 65000;
    password "s3cret";
    hold time 9;
    keepalive time 3;
    connect retry time 5;
    error wait time 5, 300;
    graceful restart on;
    ipv4 {
        import filter {
            if net ~ [ 192.168.20.0/24 ] then reject;
            if net ~ [ 192.168.0.0/19{19,24} ] then accept;
            reject;
        };
        export filter {
            if net ~ [ 192.168.20.0/24 ] then accept;
            reject;
        };
        import limit 256 action restart;
    };
}
"""

# A route reflector on the leaf of one AS (bgp_as_mode=single, BIRD leaf).
REFLECTOR = bgp.speaker({
    "router_id": "192.168.210.254", "local_as": 65000,
    "neighbors": [{"name": "worker1", "address": "192.168.210.21", "remote_as": 65000,
                   "route_reflector_client": True, "next_hop_self": True, "graceful_restart": False,
                   "import_prefixes": ["192.168.10.0/24"]}],
})


def test_the_seed_node_config():
    assert bird.render(WORKER2) == WORKER2_CONF


def test_the_same_model_renders_the_same_text():
    assert bird.render(WORKER2) == bird.render(bgp.speaker(dict(
        router_id="192.168.210.22", local_as=65002, networks=["192.168.20.0/24"],
        neighbors=[n.public() | {"password": "s3cret"} for n in WORKER2.neighbors])))


def test_a_reflector_with_ibgp_clients():
    text = bird.render(REFLECTOR, kernel_export=True)
    block = text[text.index("protocol bgp worker1"):]
    assert "    direct;\n" in block and "    rr client;\n" in block
    assert "        next hop self;\n" in block and "graceful restart off;" in block
    assert "        export none;\n" in block  # no rules: nothing announced
    assert "handcni_networks" not in text


def test_direct_interfaces_and_no_kernel_export():
    text = bird.render(WORKER2, ("br0",), kernel_export=False, scan_time=60)
    assert 'protocol direct {\n    ipv4;\n    interface "br0";\n}' in text
    assert "        export none;\n" in text and "scan time 60;" in text


def test_passwords_are_masked_per_protocol():
    text = bird.render(WORKER2)
    assert bgp.passwords(text, bird.PASSWORD) == {"leaf03": "s3cret"}
    masked = bgp.mask_passwords(text, bird.PASSWORD, {"leaf03"})
    assert "s3cret" not in masked and 'password "<hidden, changed>";' in masked


def test_ownership_marker():
    assert bird.owned(bird.render(WORKER2))
    assert not bird.owned("router id 1.2.3.4;\n") and not bird.owned(None)


WITH_BFD = WORKER2._replace(neighbors=(WORKER2.neighbors[0]._replace(bfd=bgp.Bfd(100, 3, graceful=True)),))


def test_bfd_runs_the_bfd_protocol_with_the_sessions_timers():
    text = bird.render(WITH_BFD)
    assert "\nprotocol bfd handcni_bfd {\n}\n" in text
    assert "    bfd { graceful; min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n" in text
    hard = WITH_BFD._replace(neighbors=(WITH_BFD.neighbors[0]._replace(bfd=bgp.Bfd(100, 3)),))
    assert "    bfd { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n" in bird.render(hard)
    assert "bfd" not in bird.render(WORKER2)


# Dual stack: worker2's IPv6 prefix over a second session with the leaf's IPv6 address (bgp_speaker's leaf03_v6).
DUAL = bgp.speaker({
    "router_id": "192.168.210.22", "local_as": 65002, "networks": ["192.168.20.0/24", "fd00:20::/64"],
    "neighbors": [WORKER2.neighbors[0].public() | {"password": "s3cret", "bfd": {"graceful": True}}, {
        "name": "leaf03_v6", "address": "fd00:210::254", "remote_as": 65000, "source_address": "fd00:210::22",
        "description": "leaf03", "password": "s3cret", "import_limit": 256, "bfd": {"graceful": True},
        "import_prefixes": [{"prefix": "fd00:20::/64", "action": "deny"}, {"prefix": "fd00::/48", "ge": 64, "le": 64}],
        "export_prefixes": ["fd00:20::/64"],
    }],
})


def test_an_ipv6_session_has_its_channel_and_the_ipv6_kernel_table_and_networks_their_protocols():
    text = bird.render(DUAL)
    assert "\nprotocol kernel handcni_kernel6 {\n    scan time 10;\n    ipv6 {\n        import none;\n" \
           "        export where source = RTS_BGP;\n    };\n}\n" in text
    assert "\nprotocol static handcni_networks6 {\n    ipv6;\n    route fd00:20::/64 unreachable;\n}\n" in text
    assert "\nprotocol static handcni_networks {\n    ipv4;\n    route 192.168.20.0/24 unreachable;\n}\n" in text
    six = text[text.index("protocol bgp leaf03_v6 {"):]
    assert "    source address fd00:210::22;\n    neighbor fd00:210::254 as 65000;\n" in six
    assert "    bfd { graceful; " in six and text.count("protocol bfd handcni_bfd") == 1  # one BFD protocol for both
    assert "    ipv6 {\n        import filter {\n            if net ~ [ fd00:20::/64 ] then reject;\n" \
           "            if net ~ [ fd00::/48{64,64} ] then accept;\n" in six
    assert "        import limit 256 action restart;\n        next hop prefer global;\n    };\n}\n" in six
    four = text[text.index("protocol bgp leaf03 {"):text.index("protocol bgp leaf03_v6 {")]
    assert "    ipv4 {\n" in four and "ipv6" not in four and "prefer global" not in four
    assert bgp.passwords(text, bird.PASSWORD) == {"leaf03": "s3cret", "leaf03_v6": "s3cret"}


def test_ecmp_merges_paths_in_both_kernel_protocols():
    text = bird.render(DUAL._replace(max_paths=3))
    assert text.count("    merge paths on limit 3;\n}") == 2


def test_an_ipv4_only_speaker_has_no_ipv6_side():
    text = bird.render(WORKER2)
    assert "ipv6" not in text and "handcni_kernel6" not in text and "handcni_networks6" not in text


@pytest.mark.skipif(not shutil.which("bird"), reason="BIRD 2 is not installed")
@pytest.mark.parametrize("speaker", [WORKER2, REFLECTOR, WITH_BFD, DUAL],
                         ids=["ebgp-node", "ibgp-reflector", "bfd", "dual-stack"])
def test_bird_itself_parses_the_rendering(tmp_path, speaker):
    path = tmp_path / "bird.conf"
    path.write_text(bird.render(speaker, ("br0",)))
    run = subprocess.run(["bird", "-p", "-c", str(path)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


SHOW_PROTOCOLS_ALL = """\
BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-11-22 13:33:29

kernel1    Kernel     master4    up     2026-11-22 13:33:29
  Channel ipv4
    State:          UP
    Table:          master4

handcni_networks Static     master4    up     2026-11-22 13:33:29
  Channel ipv4
    State:          UP

leaf03     BGP        ---        up     2026-11-22 13:40:35  Established
  Description:    leaf03
  BGP state:          Established
    Neighbor address: 192.168.210.254
    Neighbor AS:      65000
    Local AS:         65001
    Neighbor ID:      192.168.210.254
  Channel ipv4
    State:          UP

spare      BGP        ---        start  2026-11-22 13:41:02  Idle          Received: Bad peer AS
  BGP state:          Idle
    Neighbor address: 192.168.230.254
    Neighbor AS:      65000
    Local AS:         65003
    Last error:       Received: Bad peer AS
"""

SHOW_PROTOCOLS = """\
BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     13:23:14.123
upstream   BGP        ---        start  13:23:14.123  Active        Socket: Connection refused
off        BGP        ---        down   2026-11-22
"""


def test_parse_show_protocols_all():
    protocols = bird.parse_protocols(SHOW_PROTOCOLS_ALL)
    assert [p["name"] for p in protocols] == ["device1", "kernel1", "handcni_networks", "leaf03", "spare"]
    leaf = protocols[3]
    assert leaf == {"name": "leaf03", "proto": "BGP", "table": "---", "state": "up", "since": "2026-11-22 13:40:35",
                    "info": "Established", "bgp_state": "Established", "neighbor_address": "192.168.210.254",
                    "neighbor_as": 65000}
    sessions = bird.sessions(protocols)
    assert set(sessions) == {"leaf03", "spare"}
    assert sessions["leaf03"].established and sessions["leaf03"].info == ""
    assert sessions["spare"].state == "Idle" and sessions["spare"].info == "Received: Bad peer AS"
    assert sessions["spare"].address == "192.168.230.254"


def test_parse_show_protocols_short_time_formats():
    protocols = bird.parse_protocols(SHOW_PROTOCOLS)
    assert protocols[1]["since"] == "13:23:14.123" and protocols[1]["info"] == "Active Socket: Connection refused"
    sessions = bird.sessions(protocols)
    assert sessions["upstream"].state == "Active" and sessions["upstream"].info == "Socket: Connection refused"
    assert sessions["off"].state == "Idle" and not sessions["off"].established


def test_parse_nothing():
    assert bird.parse_protocols("") == [] and bird.sessions([]) == {}


def test_max_paths_merges_equal_routes_into_one_ecmp_route():
    text = bird.render(bgp.speaker({"router_id": "192.168.210.254", "local_as": 65000, "max_paths": 3}))
    assert "    merge paths on limit 3;\n}" in text
    assert "merge paths" not in bird.render(bgp.speaker({"router_id": "192.168.210.254", "local_as": 65000}))
