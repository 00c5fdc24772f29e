"""Unit tests for IPv6 services in plugins/module_utils/_services.py, _firewall.py, _iptables.py and _nftables.py:
a dual-stack Service is one entry per family (the same name), each rendered into its family's tables.

fixtures/ip6tables_services.txt and nft_services6.json are the real `ip6tables-save -t nat` (1.8.9, nf_tables) and
`nft -j list table ip6 handcni` (1.0.6) of SIX below, written by this code in a throwaway network namespace.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _command as command
from ansible_collections.handcni.podnet.plugins.module_utils import _firewall as fw
from ansible_collections.handcni.podnet.plugins.module_utils import _iptables as ipt
from ansible_collections.handcni.podnet.plugins.module_utils import _nftables as nft
from ansible_collections.handcni.podnet.plugins.module_utils import _services as svc

# kernel: a fixture, used by name
from test__firewall_ipv6 import NFT_V, FakeTools, kernel  # pylint: disable=unused-import

FIXTURES = Path(__file__).parent / "fixtures"
IP6TABLES_SAVE = (FIXTURES / "ip6tables_services.txt").read_text()
NFT6_JSON = (FIXTURES / "nft_services6.json").read_text()

WEB = {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "node_port": 32080, "target_port": 80,
       "endpoints": [{"ip": "192.168.10.3"}, {"ip": "192.168.20.2"}]}
WEB6 = {"name": "web", "cluster_ip": "fd00:96::a", "port": 8080, "node_port": 32080, "target_port": 80,
        "external_ips": ["2001:db8:100::10"], "endpoints": [{"ip": "fd00:10::3"}, {"ip": "fd00:20::2"}]}
ECHO6 = {"name": "echo", "cluster_ip": "fd00:96::7", "port": 7, "protocol": "udp", "node_port": 30007,
         "external_traffic_policy": "Local", "endpoints": [{"ip": "fd00:20::1", "local": True}, {"ip": "fd00:30::3"}]}
CIDRS6 = ("fd00:10::/64", "fd00:20::/64", "fd00:30::/64")
IPT = ipt.IptablesNat(None)
NFT = nft.NftablesNat(None)


def natset(*items, addresses=("fd00:210::21",), cidrs=CIDRS6) -> fw.NatSet:
    return fw.NatSet((), tuple(sorted(svc.normalise_services(list(items)), key=svc.service_order)), addresses, cidrs)


SIX = natset(WEB6, ECHO6)
DUAL = natset(WEB, WEB6, addresses=("192.168.210.21", "fd00:210::21"), cidrs=("192.168.10.0/24",) + CIDRS6)


def test_an_ipv6_service_is_normalised_canonically():
    web = svc.normalise_services([dict(WEB6, cluster_ip="FD00:96:0::A")])[0]
    assert (web.cluster_ip, web.version, web.key) == ("fd00:96::a", 6, ("web", 6))
    assert web.endpoints[0].text() == "[fd00:10::3]:80"


def test_a_name_is_unique_per_family():
    assert [s.version for s in svc.normalise_services([WEB6, WEB])] == [6, 4]
    with pytest.raises(ValueError, match=r"^services\[1\]\.name: web \(IPv6\) is also used by services\[0\]$"):
        svc.normalise_services([WEB6, dict(WEB6, cluster_ip="fd00:96::b")])


def test_wanted_listed_by_name_takes_both_families():
    have = list(DUAL.services)
    assert svc.wanted(svc.normalise_services([WEB]), have, "present", False) == (have[0],)
    assert svc.wanted(svc.normalise_services([{"name": "web"}], state="absent"), have, "absent", False) == ()
    assert [s.key for s in svc.wanted([], have, "present", False)] == [("web", 4), ("web", 6)]


def test_node_ports_need_node_addresses_of_their_family():
    svc.check_node_addresses(SIX.services, ("fd00:210::21",))
    with pytest.raises(ValueError, match=r"^node_addresses: service echo has node_port 30007, so the node's IPv6"):
        svc.check_node_addresses(SIX.services, ("192.168.210.21",))


def test_natset_family_splits_services_addresses_and_cidrs():
    assert DUAL.family(4) == natset(WEB, addresses=("192.168.210.21",), cidrs=("192.168.10.0/24",))
    assert DUAL.family(6) == natset(WEB6)
    assert fw.normalise_cidrs(["fd00:20::/64", "192.168.10.0/24", "fd00:10::/64"]) == ("192.168.10.0/24",) + CIDRS6[:2]
    assert fw.endpoint_from("[fd00:10::3]:80") == svc.Endpoint("fd00:10::3", 80)
    assert fw.host("fd00::1/128") == "fd00::1"


# --- iptables ---------------------------------------------------------------------

def test_ip6tables_save_reads_back_as_the_model_and_renders_the_same():
    have = IPT.parse("", IP6TABLES_SAVE)
    assert have.nat == SIX
    assert have.detail.same(IPT.render(SIX).detail)
    assert IPT.plan(have, SIX) is None


def test_iptables_dual_stack_renders_ipv4_as_before_and_ipv6_in_ip6tables():
    four = IPT.render(natset(WEB, addresses=("192.168.210.21",), cidrs=("192.168.10.0/24",)))
    both = IPT.render(DUAL)
    assert both.detail.four == four.detail.four
    six = [line for line in both.lines if line.startswith(ipt.IPT6_LABEL)]
    assert any("-d fd00:96::a/128 -p tcp" in line for line in six)
    assert any("--to-destination [fd00:20::2]:80" in line for line in six)
    assert any("-d fd00:210::21/128" in line and "HANDCNI-NODEPORTS" in line for line in six)


def test_iptables_adding_the_ipv6_side_is_one_ip6tables_transaction():
    have = IPT.render(DUAL.family(4))
    transactions = IPT.plans(have, DUAL)[1]
    assert [(tx.family, tx.argv[0]) for tx in transactions] == [(6, "ip6tables-restore")]


def test_iptables_an_ipv6_service_needs_ip6tables(kernel):
    tools = FakeTools({"iptables": NFT_V}, missing=("ip6tables-restore",))
    backend = ipt.IptablesNat(command.Runner(tools.run_command, tools.which))
    assert backend.refused(backend.plans(backend.parse(""), natset(WEB6))[1]) == (
        "backend: iptables writes the IPv6 service web with ip6tables-save and ip6tables-restore, "
        "which are not on the node; install them or choose the nftables backend")
    assert backend.refused(backend.plans(backend.parse(""), natset(WEB, addresses=("192.168.210.21",)))[1]) is None


def test_iptables_removing_the_ipv6_side_leaves_no_ipv6_rule():
    have = IPT.render(DUAL)
    want = IPT.plans(have, DUAL.family(4))[0]
    assert not want.detail.six.holds_ours()
    assert want.detail.four == have.detail.four


# --- nftables ---------------------------------------------------------------------

def test_nft_ip6_handcni_reads_back_as_the_model_and_renders_the_same():
    have = NFT.parse(None, NFT6_JSON)
    assert have.nat == SIX
    assert have.detail.same(NFT.render(SIX).detail)
    assert NFT.plan(have, SIX) is None


def test_nft_dual_stack_is_one_transaction_with_ipv4_as_before():
    four = NFT.render(DUAL.family(4))
    both = NFT.render(DUAL)
    assert both.detail.four == four.detail.four
    transaction = NFT.plan(four, DUAL)
    assert transaction.argv == ["nft", "-f", "-"]
    assert "table ip6 handcni" in transaction.script and "add table ip handcni" not in transaction.script
    assert "ipv6_addr . inet_proto . inet_service" in transaction.script
    assert "dnat to [fd00:10::3]:80" in transaction.script


# --- conntrack --------------------------------------------------------------------

def test_udp_flushes_of_an_ipv6_service_are_conntrack_f_ipv6():
    before = natset(ECHO6).services
    after = natset(dict(ECHO6, endpoints=[{"ip": "fd00:20::1", "local": True}])).services
    flushes = svc.conntrack_flushes(before, after, ("192.168.210.21", "fd00:210::21"))
    assert flushes and all(f.argv[:5] == ["conntrack", "-D", "-f", "ipv6", "-p"] for f in flushes)
    assert any("fd00:30::3" in f.argv for f in flushes)
    fresh = svc.conntrack_flushes((), before, ("192.168.210.21", "fd00:210::21"))
    assert "192.168.210.21" not in [a for f in fresh for a in f.argv]
    assert "fd00:210::21" in [a for f in fresh for a in f.argv]
