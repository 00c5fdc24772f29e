"""Unit tests for the services part of plugins/module_utils/_firewall.py, _iptables.py and _nftables.py
(kube-proxy style DNAT).

fixtures/iptables_services.txt is the real `iptables-save -t nat` of worker1 in the lab after site.yml
(iptables 1.8.9, nf_tables); fixtures/nft_services.json the real `nft -j list table ip handcni` (nftables
1.0.6) of the two services below, made by this code in a throwaway network namespace (nft_services_vmap.json:
the same as written before session 10).
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _firewall as fw
from ansible_collections.handcni.podnet.plugins.module_utils import _ipt_save as save
from ansible_collections.handcni.podnet.plugins.module_utils import _iptables as ipt
from ansible_collections.handcni.podnet.plugins.module_utils import _nftables as nft
from ansible_collections.handcni.podnet.plugins.module_utils import _services as svc

FIXTURES = Path(__file__).parent / "fixtures"
IPTABLES_SAVE = (FIXTURES / "iptables_services.txt").read_text()
NFT_JSON = (FIXTURES / "nft_services.json").read_text()
# the same services as written before session 10: one anonymous `numgen random mod N vmap { }` per service
NFT_VMAP_JSON = (FIXTURES / "nft_services_vmap.json").read_text()

WEB = {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "node_port": 32080, "target_port": 80,
       "endpoints": [{"ip": "192.168.10.3"}, {"ip": "192.168.20.2"}]}
ECHO = {"name": "echo", "cluster_ip": "11.96.10.7", "port": 7, "protocol": "udp", "node_port": 30007,
        "endpoints": [{"ip": "192.168.20.1"}, {"ip": "192.168.30.3"}]}
MASQ = {"source": "192.168.10.0/24", "exclude": ["192.168.10.0/24", "192.168.20.0/24", "192.168.30.0/24"]}
NODE = ("192.168.210.21",)


def services(*items) -> tuple:
    return tuple(sorted(svc.normalise_services(list(items)), key=lambda s: s.name))


def lab_set(*items, masquerade=(MASQ,)) -> fw.NatSet:
    """What site.yml makes on worker1 (the iptables fixture)."""
    return fw.NatSet(tuple(fw.normalise_masquerades(list(masquerade))), services(*items), NODE)


IPT = ipt.IptablesNat(None)
NFT = nft.NftablesNat(None)


# --- iptables -----------------------------------------------------------------------------

def test_iptables_save_reads_back_as_the_model_and_renders_the_same():
    have = IPT.parse(IPTABLES_SAVE)
    assert have.nat == lab_set(WEB, ECHO)
    assert have.lines == IPT.render(lab_set(WEB, ECHO)).lines
    assert IPT.plan(have, lab_set(WEB, ECHO)) is None


def test_iptables_render_is_kube_proxys_layout():
    lines = IPT.render(lab_set(WEB, masquerade=())).lines
    web = '"handcni.podnet service web"'
    svc_chain = "HANDCNI-SVC-" + svc.service_hash(svc.normalise_services([WEB])[0])
    expected = [
        "-A PREROUTING -m comment --comment handcni.podnet -j HANDCNI-SERVICES",
        "-A OUTPUT -m comment --comment handcni.podnet -j HANDCNI-SERVICES",
        "-A POSTROUTING -m comment --comment handcni.podnet -j HANDCNI-SERVICES-MASQ",
        f"-A HANDCNI-SERVICES -d 11.96.10.3/32 -p tcp -m comment --comment {web} -m tcp --dport 8080 -j {svc_chain}",
        '-A HANDCNI-SERVICES -d 192.168.210.21/32 -m comment --comment "handcni.podnet nodeports" -j HANDCNI-NODEPORTS',
        "-A HANDCNI-SERVICES-MASQ -m mark --mark 0x2000/0x2000 -m comment --comment "
        '"handcni.podnet services masquerade" -j MASQUERADE',
        f"-A {svc_chain} -m comment --comment {web} -m statistic --mode random --probability 0.50000000000 -j ",
        f"-m comment --comment {web} -j MARK --set-xmark 0x2000/0x2000",
        f"-p tcp -m comment --comment {web} -m tcp -j DNAT --to-destination 192.168.20.2:80",
    ]
    for line in expected:
        assert any(line in have for have in lines), line
    assert ":HANDCNI-POSTROUTING - [0:0]" not in lines


@pytest.mark.parametrize("remaining, text", [(2, "0.50000000000"), (3, "0.33333333349"), (5, "0.20000000019"),
                                             (7, "0.14285714272"), (4, "0.25000000000")])
def test_iptables_probability_is_printed_as_iptables_save_does(remaining, text):
    assert ipt.ipt_probability(remaining) == text


def test_iptables_three_endpoints_are_chosen_one_in_three_then_one_in_two():
    three = dict(WEB, endpoints=[{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}])
    state = ipt.ipt_render(fw.NatSet((), services(three), NODE))
    chain = next(name for name in state.chains if name.startswith(ipt.IPT_SVC))
    chances = [rule[rule.index("--probability") + 1] if "--probability" in rule else None for rule in state.chains[chain]]
    assert chances == ["0.33333333349", "0.50000000000", None]


def test_iptables_removing_an_endpoint_touches_exactly_its_rules():
    have = IPT.parse(IPTABLES_SAVE)
    fewer = dict(WEB, endpoints=[{"ip": "192.168.10.3"}])
    tx = IPT.plan(have, lab_set(fewer, ECHO))
    web = svc.normalise_services([WEB])[0]
    gone = "HANDCNI-SEP-" + svc.endpoint_hash(web, web.endpoints[1])
    kept = "HANDCNI-SEP-" + svc.endpoint_hash(web, web.endpoints[0])
    svc_chain = "HANDCNI-SVC-" + svc.service_hash(web)
    assert tx.script.splitlines() == [
        "*nat",
        f":{svc_chain} - [0:0]",
        f":{gone} - [0:0]",
        f'-A {svc_chain} -m comment --comment "handcni.podnet service web" -j {kept}',
        f"-X {gone}",
        "COMMIT",
    ]
    assert tx.description == (f"iptables-restore --noflush: table nat: write chain {svc_chain} (1 rule), "
                              f"delete chain {gone}")


def test_iptables_removing_a_service_removes_its_chains_and_dispatch_rules_only():
    have = IPT.parse(IPTABLES_SAVE)
    tx = IPT.plan(have, lab_set(WEB))
    declared = sorted(line for line in tx.script.splitlines() if line.startswith(":"))
    deleted = sorted(line[3:] for line in tx.script.splitlines() if line.startswith("-X "))
    assert [line[1:].split()[0] for line in declared] == sorted(["HANDCNI-NODEPORTS", "HANDCNI-SERVICES"] + deleted)
    assert len(deleted) == 4  # echo's SVC, EXT and two SEP chains
    assert "HANDCNI-POSTROUTING" not in tx.script and not any(line.startswith(("-D", "-I")) for line in tx.script.splitlines())


def test_iptables_services_only_run_leaves_the_masquerade_alone():
    have = IPT.parse(IPTABLES_SAVE)
    tx = IPT.plan(have, fw.NatSet(), ("services",))
    assert "HANDCNI-POSTROUTING" not in tx.script
    assert {line for line in tx.script.splitlines() if line.startswith("-D")} == {
        "-D PREROUTING -m comment --comment handcni.podnet -j HANDCNI-SERVICES",
        "-D OUTPUT -m comment --comment handcni.podnet -j HANDCNI-SERVICES",
        "-D POSTROUTING -m comment --comment handcni.podnet -j HANDCNI-SERVICES-MASQ",
    }
    assert tx.after == IPT.render(lab_set(masquerade=(MASQ,))).lines


def test_iptables_masquerade_only_run_leaves_the_services_alone():
    have = IPT.parse(IPTABLES_SAVE)
    other = fw.NatSet(tuple(fw.normalise_masquerades([{"source": "192.168.10.0/24"}])))
    tx = IPT.plan(have, other, ("masquerade",))
    assert [line for line in tx.script.splitlines() if line.startswith(":")] == [":HANDCNI-POSTROUTING - [0:0]"]
    assert IPT.plan(have, fw.NatSet(), ("masquerade",)).description.endswith(
        "delete jump POSTROUTING -> HANDCNI-POSTROUTING, delete chain HANDCNI-POSTROUTING")


@pytest.mark.parametrize("edit", [
    lambda text: text.replace("-j DNAT --to-destination 192.168.20.2:80", "-j DNAT --to-destination 192.168.20.9:80"),
    lambda text: "\n".join(line for line in text.splitlines() if "statistic" not in line),
    lambda text: text.replace("--dport 32080", "--dport 32081"),
    lambda text: text.replace('-A OUTPUT -m comment --comment "handcni.podnet" -j HANDCNI-SERVICES\n', ""),
    lambda text: text.replace("COMMIT", "-A HANDCNI-SERVICES -j ACCEPT\nCOMMIT"),
])
def test_iptables_service_drift_is_seen(edit):
    have = IPT.parse(edit(IPTABLES_SAVE))
    assert IPT.plan(have, lab_set(WEB, ECHO)) is not None


def test_iptables_model_read_back_follows_the_drift():
    web = svc.normalise_services([WEB])[0]
    sep = "HANDCNI-SEP-" + svc.endpoint_hash(web, web.endpoints[1])
    text = "\n".join(line for line in IPTABLES_SAVE.splitlines() if not line.startswith(f"-A {sep} "))
    read = IPT.parse(text).nat
    assert [s.endpoints for s in read.services if s.name == "web"] == [web.endpoints[:1]]


def test_iptables_tokens_match_shlex_on_real_output():
    for line in IPTABLES_SAVE.splitlines():
        if line.startswith("-A"):
            assert save.ipt_tokens(line) == tuple(shlex.split(line))
    assert save.ipt_tokens('-A X -m comment --comment "a \\"b\\" c\\\\d" -j ACCEPT')[-3] == 'a "b" c\\d'
    assert save.ipt_tokens("-A X -m comment --comment 'single quoted' -j ACCEPT")[-3] == "single quoted"
    assert save.ipt_tokens('-A X --comment "unbalanced') is None


# --- nftables -----------------------------------------------------------------------------

def nft_set(*items) -> fw.NatSet:
    """What made the nftables fixture."""
    return fw.NatSet((), services(*items), NODE)


NFT_WEB = dict(WEB)
NFT_ECHO = {"name": "echo", "cluster_ip": "11.96.10.7", "port": 7, "protocol": "udp",
            "endpoints": [{"ip": "192.168.30.3"}]}


def test_nft_json_reads_back_as_the_model_and_renders_the_same():
    have = NFT.parse(NFT_JSON)
    assert have.nat == nft_set(NFT_WEB, NFT_ECHO)
    assert have.lines == NFT.render(nft_set(NFT_WEB, NFT_ECHO)).lines
    assert NFT.plan(have, nft_set(NFT_WEB, NFT_ECHO)) is None


def test_nft_tables_of_the_vmap_layout_read_back_and_are_rewritten_per_service():
    have = NFT.parse(NFT_VMAP_JSON)
    assert have.nat == nft_set(NFT_WEB, NFT_ECHO)
    tx = NFT.plan(have, nft_set(NFT_WEB, NFT_ECHO))
    assert tx.description == "nft -f: table ip handcni: write chain service-echo (1 rule), write chain service-web (2 rules)"


def test_nft_render_is_kube_proxys_nftables_layout():
    lines = NFT.render(nft_set(NFT_WEB)).lines
    for line in [
        "add map ip handcni service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }",
        "add element ip handcni service-ips { 11.96.10.3 . tcp . 8080 : goto service-web }",
        "add element ip handcni service-nodeports { tcp . 32080 : goto external-web }",
        "add chain ip handcni prerouting { type nat hook prerouting priority -100; policy accept; }",
        "add chain ip handcni output { type nat hook output priority -100; policy accept; }",
        'add rule ip handcni services ip daddr . meta l4proto . th dport vmap @service-ips comment "handcni.podnet services"',
        'add rule ip handcni services ip daddr 192.168.210.21 meta l4proto . th dport vmap @service-nodeports '
        'comment "handcni.podnet nodeports"',
        'add rule ip handcni service-web numgen random mod 2 0 goto endpoint-web-192.168.10.3-80 '
        'comment "handcni.podnet service web"',
        'add rule ip handcni service-web goto endpoint-web-192.168.20.2-80 comment "handcni.podnet service web"',
        'add rule ip handcni endpoint-web-192.168.20.2-80 ip saddr 192.168.20.2 meta mark set meta mark | 0x00002000 '
        'comment "handcni.podnet service web"',
        'add rule ip handcni endpoint-web-192.168.20.2-80 meta l4proto tcp dnat to 192.168.20.2:80 '
        'comment "handcni.podnet service web"',
        'add rule ip handcni external-web meta mark set meta mark | 0x00002000 comment "handcni.podnet service web"',
        'add rule ip handcni external-web goto service-web comment "handcni.podnet service web"',
        'add rule ip handcni services-masquerade meta mark & 0x00002000 == 0x00002000 masquerade '
        'comment "handcni.podnet services masquerade"',
    ]:
        assert line in lines, line


def test_nft_create_makes_chains_before_what_refers_to_them():
    tx = NFT.plan(NFT.parse(None), nft_set(NFT_WEB, NFT_ECHO))
    script = tx.script.splitlines()
    first_map = next(i for i, line in enumerate(script) if line.startswith("add map"))
    assert all(line.startswith(("add table", "delete table", "add chain")) for line in script[:first_map])
    assert script.count("add element ip handcni service-ips { 11.96.10.3 . tcp . 8080 : goto service-web, "
                        "11.96.10.7 . udp . 7 : goto service-echo }") == 1
    assert tx.description == "nft -f: create table ip handcni (10 chains; 16 rules; 2 maps with 3 elements)"


def test_nft_removing_an_endpoint_touches_exactly_its_objects():
    have = NFT.parse(NFT_JSON)
    tx = NFT.plan(have, nft_set(dict(NFT_WEB, endpoints=[{"ip": "192.168.10.3"}]), NFT_ECHO))
    assert tx.script.splitlines() == [
        "flush chain ip handcni service-web",
        'add rule ip handcni service-web goto endpoint-web-192.168.10.3-80 comment "handcni.podnet service web"',
        "flush chain ip handcni endpoint-web-192.168.20.2-80",
        "delete chain ip handcni endpoint-web-192.168.20.2-80",
    ]
    assert tx.description == ("nft -f: table ip handcni: write chain service-web (1 rule), "
                              "delete chain endpoint-web-192.168.20.2-80")


def test_nft_adding_a_service_adds_its_element_and_chains():
    have = NFT.parse(NFT_JSON)
    extra = {"name": "dns", "cluster_ip": "11.96.0.10", "port": 53, "protocol": "udp", "endpoints": [{"ip": "10.0.0.1"}]}
    tx = NFT.plan(have, nft_set(NFT_WEB, NFT_ECHO, extra))
    script = tx.script.splitlines()
    assert script[:2] == ["add chain ip handcni endpoint-dns-10.0.0.1-53", "add chain ip handcni service-dns"]
    assert "add element ip handcni service-ips { 11.96.0.10 . udp . 53 : goto service-dns }" in script
    assert not any(line.startswith(("flush", "delete")) for line in script)


def test_nft_removing_services_drops_maps_after_emptying_their_chains():
    have = NFT.parse(NFT_JSON)
    script = NFT.plan(have, fw.NatSet(tuple(fw.normalise_masquerades([MASQ]))), ("services", "masquerade")).script
    lines = script.splitlines()
    assert lines[0].startswith("add chain ip handcni postrouting")
    assert lines.index("delete map ip handcni service-ips") < lines.index("delete chain ip handcni service-web")
    assert lines.index("flush chain ip handcni services") < lines.index("delete map ip handcni service-ips")


def test_nft_services_only_run_keeps_the_masquerade_chain():
    masq = nft.NftablesNat.render(NFT, fw.NatSet(tuple(fw.normalise_masquerades([MASQ]))))
    both = NFT.render(fw.NatSet(masq.nat.masquerade, services(NFT_WEB), NODE))
    tx = NFT.plan(both, fw.NatSet(), ("services",))
    assert tx.after == masq.lines
    assert "postrouting" not in tx.script.replace("services-masquerade", "")


@pytest.mark.parametrize("edit", [
    lambda d: d["nftables"][2]["map"]["elem"].pop(),                                           # element deleted
    lambda d: d["nftables"][2]["map"]["elem"][0][1].__setitem__("goto", {"target": "service-web"}),
    lambda d: d["nftables"].pop(),                                                             # rule deleted
    lambda d: d["nftables"][-5]["rule"]["expr"][0]["match"]["left"]["numgen"].__setitem__("mod", 3),
    lambda d: d["nftables"][-2]["rule"]["expr"][0]["match"].__setitem__("right", "192.168.210.99"),
    lambda d: d["nftables"][9]["chain"].__setitem__("prio", 0),                                # prerouting
])
def test_nft_service_drift_is_seen(edit):
    data = json.loads(NFT_JSON)
    edit(data)
    have = NFT.parse(json.dumps(data))
    assert NFT.plan(have, nft_set(NFT_WEB, NFT_ECHO)) is not None


def test_nft_unreadable_object_in_our_table_means_a_whole_replace():
    data = json.loads(NFT_JSON)
    data["nftables"].append({"set": {"family": "ip", "table": "handcni", "name": "s", "type": "ipv4_addr"}})
    tx = NFT.plan(NFT.parse(json.dumps(data)), nft_set(NFT_WEB, NFT_ECHO))
    assert tx.script.startswith("add table ip handcni\ndelete table ip handcni\nadd table ip handcni\n")
    assert tx.description.startswith("nft -f: replace table ip handcni")


def test_nft_unreadable_rule_is_rewritten_not_kept():
    data = json.loads(NFT_JSON)
    data["nftables"][-6]["rule"]["expr"].append({"log": {"prefix": "x"}})                      # service-echo's
    have = NFT.parse(json.dumps(data))
    assert [s.endpoints for s in have.nat.services if s.name == "echo"] == [()]
    tx = NFT.plan(have, nft_set(NFT_WEB, NFT_ECHO))
    assert tx.script.startswith("flush chain ip handcni service-echo\n")


@pytest.mark.parametrize("value", [
    {"vmap": {"key": {"numgen": {"mode": "inc", "mod": 1, "offset": 0}}, "data": {"set": [[0, {"goto": {"target": "x"}}]]}}},
    {"vmap": {"key": {"numgen": {"mode": "random", "mod": 2, "offset": 0}}, "data": {"set": [[0, {"goto": {"target": "x"}}]]}}},
    {"vmap": {"key": {"numgen": {"mode": "random", "mod": 1, "offset": 0}}, "data": {"set": [[0, {"jump": {"target": "x"}}]]}}},
    {"vmap": {"key": {"concat": [{"meta": {"key": "iifname"}}]}, "data": "@m"}},
    {"dnat": {"addr": "10.0.0.1", "port": 80, "flags": "random"}},
    {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 5}},
    {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "sctp"}},
    {"match": {"op": "!=", "left": {"numgen": {"mode": "random", "mod": 2, "offset": 0}}, "right": 0}},
    {"match": {"op": "==", "left": {"numgen": {"mode": "inc", "mod": 2, "offset": 0}}, "right": 0}},
])
def test_nft_what_we_do_not_write_is_unrecognised(value):
    with pytest.raises(nft._Unrecognised):
        nft.nft_term(value)


def test_nft_kinds_of_our_objects():
    assert nft.nft_kind("postrouting") == "masquerade"
    assert {nft.nft_kind(n) for n in ("services", "prerouting", "output", "services-masquerade", "service-web",
                                      "external-web", "endpoint-web-10.0.0.1-80")} == {"services"}
    assert nft.nft_kind("service-ips", is_map=True) == "services" and nft.nft_kind("other") is None


# --- several backends, one run --------------------------------------------------------------

def test_merged_and_carried():
    web, echo = services(WEB), services(ECHO)
    one = fw.NatSet((), web, NODE)
    two = fw.NatSet((), echo + services(dict(WEB, port=1)), ("10.0.0.1",))
    assert fw.merged([one, two]) == fw.NatSet((), echo + web, NODE)
    masq = fw.NatSet(tuple(fw.normalise_masquerades([MASQ])))
    assert fw.carried(fw.NatSet(), fw.NatSet(masq.masquerade, web, NODE), ("services",)) == masq
    assert fw.managed_kinds({"masquerade": [], "services": None}) == ("masquerade",)
    assert fw.managed_kinds({"masquerade": None, "services": None}) == fw.KINDS


# --- external addresses, externalTrafficPolicy Local, traffic from outside the cluster (issue 20) --------------

LB = {"name": "lb", "cluster_ip": "11.96.10.4", "port": 80, "node_port": 30080, "load_balancer_ip": "198.51.100.11",
      "external_ips": ["198.51.100.12"], "external_traffic_policy": "Local",
      "endpoints": [{"ip": "192.168.10.3", "local": True}, {"ip": "192.168.20.2"}]}
WEB_EXT = dict(WEB, external_ips=["198.51.100.10"])
CIDRS = ("192.168.10.0/24", "192.168.20.0/24")


def outside_set(*items, cidrs=CIDRS) -> fw.NatSet:
    return fw.NatSet((), services(*items), NODE, cidrs)


def test_external_addresses_and_local_policy_in_the_model():
    lb = services(LB)[0]
    assert lb.external == ("198.51.100.11", "198.51.100.12")
    assert lb.local == (svc.Endpoint("192.168.10.3", 80),)
    assert services(WEB_EXT)[0].local is None
    assert services(dict(LB, endpoints=[{"ip": "192.168.20.2"}]))[0].local == ()


@pytest.mark.parametrize("items, message", [
    ([dict(WEB_EXT), dict(ECHO, external_ips=["198.51.100.10"])], "services[1].external_ips: 198.51.100.10 is also"),
    ([dict(WEB, external_ips=["11.96.10.3"])], "services[0].external_ips[0]: 11.96.10.3 is listed twice"),
    ([dict(WEB, load_balancer_ip="198.51.100.1", external_ips=["198.51.100.1"])],
     "services[0].load_balancer_ip: 198.51.100.1 is listed twice"),
    ([dict(WEB, external_ips=["224.0.0.1"])], "services[0].external_ips[0]: '224.0.0.1' cannot be"),
    ([dict(WEB, external_traffic_policy="local")], "services[0].external_traffic_policy: 'local' is not one of"),
])
def test_bad_external_addresses_are_refused(items, message):
    with pytest.raises(ValueError) as err:
        svc.normalise_services(items)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize("backend", [IPT, NFT], ids=["iptables", "nftables"])
def test_cluster_policy_marks_external_traffic_local_policy_goes_to_this_nodes_endpoints(backend):
    lines = "\n".join(backend.render(outside_set(WEB_EXT, LB)).lines)
    if backend is IPT:
        ext, svl = ("HANDCNI-EXT-" + svc.service_hash(services(WEB_EXT)[0]),
                    "HANDCNI-SVL-" + svc.service_hash(services(LB)[0]))
        assert f"-d 198.51.100.10/32 -p tcp -m comment --comment \"handcni.podnet service web\" -m tcp --dport 8080 -j {ext}" in lines
        assert f"-A {ext} -m comment --comment \"handcni.podnet service web\" -j MARK --set-xmark 0x2000/0x2000" in lines
        for address in ("198.51.100.11", "198.51.100.12"):
            assert f"-d {address}/32 -p tcp -m comment --comment \"handcni.podnet service lb\" -m tcp --dport 80 -j {svl}" in lines
        assert f"--dport 30080 -j {svl}" in lines
        # Local: one endpoint here, chosen without a mark (the client's address is kept)
        assert [line for line in lines.splitlines() if line.startswith(f"-A {svl} ")] == [
            f"-A {svl} -m comment --comment \"handcni.podnet service lb\" -j HANDCNI-SEP-"
            + svc.endpoint_hash(services(LB)[0], svc.Endpoint("192.168.10.3", 80))]
        assert "-A HANDCNI-OUTSIDE -s 192.168.10.0/24 -m comment --comment \"handcni.podnet from outside the cluster\" -j RETURN" in lines
    else:
        assert "add element ip handcni service-ips { 198.51.100.10 . tcp . 8080 : goto external-web }" in lines
        assert "add element ip handcni service-ips { 198.51.100.11 . tcp . 80 : goto local-lb }" in lines
        assert "add element ip handcni service-nodeports { tcp . 30080 : goto local-lb }" in lines
        assert 'add rule ip handcni local-lb goto endpoint-lb-192.168.10.3-80 comment "handcni.podnet service lb"' in lines
        assert ("add rule ip handcni service-web ip saddr != { 192.168.10.0/24, 192.168.20.0/24 } meta mark set meta "
                "mark | 0x00002000") in lines


@pytest.mark.parametrize("backend", [IPT, NFT], ids=["iptables", "nftables"])
def test_local_policy_without_an_endpoint_here_is_not_answered_on_node_ports_or_external_addresses(backend):
    lines = "\n".join(backend.render(outside_set(dict(LB, endpoints=[{"ip": "192.168.20.2"}]))).lines)
    assert "198.51.100.1" not in lines and "30080" not in lines and "SVL" not in lines and "local-lb" not in lines
    assert "11.96.10.4" in lines


def test_iptables_reads_external_addresses_local_endpoints_and_cluster_cidrs_back():
    want = outside_set(WEB_EXT, LB)
    rendered = IPT.render(want)
    have = IPT.parse("*nat\n" + "\n".join(rendered.lines) + "\nCOMMIT\n")
    assert have.nat == want
    assert IPT.plan(have, want) is None


def test_without_cluster_cidrs_nothing_is_marked_for_coming_from_outside():
    lines = IPT.render(outside_set(WEB_EXT, cidrs=())).lines + NFT.render(outside_set(WEB_EXT, cidrs=())).lines
    assert not [line for line in lines if "OUTSIDE" in line or "saddr !=" in line]


def test_udp_flows_to_an_external_address_are_flushed_with_the_endpoint():
    echo = services(dict(ECHO, external_ips=["198.51.100.7"]))[0]
    flushes = svc.conntrack_flushes([echo], [echo._replace(endpoints=echo.endpoints[:1])])
    assert any("--orig-dst 198.51.100.7" in flush.description and "192.168.30.3" in flush.description
               for flush in flushes)


def test_a_natset_comes_back_from_its_json_whole():
    nat = fw.NatSet(tuple(fw.normalise_masquerades([MASQ])), services(WEB_EXT, LB, ECHO), NODE, CIDRS)
    assert fw.natset_from_json(json.loads(json.dumps(list(nat)))) == nat
    assert fw.natset_from_json(json.loads(json.dumps(list(fw.NatSet())))) == fw.NatSet()


def test_nft_endpoints_are_chosen_by_a_cascade_one_in_n_each():
    three = dict(WEB, endpoints=[{"ip": "192.168.10.3"}, {"ip": "192.168.20.2"}, {"ip": "192.168.30.3"}])
    rules = [line for line in NFT.render(nft_set(three)).lines if line.startswith("add rule ip handcni service-web ")]
    assert [rule.split(" comment ")[0].removeprefix("add rule ip handcni service-web ") for rule in rules] == [
        "numgen random mod 3 0 goto endpoint-web-192.168.10.3-80",
        "numgen random mod 2 0 goto endpoint-web-192.168.20.2-80",
        "goto endpoint-web-192.168.30.3-80"]
