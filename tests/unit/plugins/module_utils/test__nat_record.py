"""Unit tests for plugins/module_utils/_nat_record.py: which runs are answered from the record, and which plan a
few services alone (a partial sync); plus that such a plan writes exactly what the whole set's plan writes."""
from __future__ import annotations

import json

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _command as command
from ansible_collections.handcni.podnet.plugins.module_utils import _firewall as fw
from ansible_collections.handcni.podnet.plugins.module_utils import _nat_record as record
from ansible_collections.handcni.podnet.plugins.module_utils import _services as svc
from ansible_collections.handcni.podnet.plugins.module_utils._iptables import IptablesNat
from ansible_collections.handcni.podnet.plugins.module_utils._nftables import NftablesNat

WEB = {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "node_port": 32080, "target_port": 80,
       "endpoints": [{"ip": "192.168.10.3"}, {"ip": "192.168.20.2"}]}
WEB6 = dict(WEB, cluster_ip="fd00:96::a", endpoints=[{"ip": "fd00:10::3"}])
ECHO = {"name": "echo", "cluster_ip": "11.96.10.7", "port": 7, "protocol": "udp", "endpoints": [{"ip": "192.168.30.3"}]}
LOCAL = {"name": "local", "cluster_ip": "11.96.10.9", "port": 80, "external_traffic_policy": "Local",
         "endpoints": [{"ip": "192.168.10.5", "local": True}, {"ip": "192.168.20.5"}]}
ADDRESSES = ["192.168.210.21", "fd00:210::21"]


def params(*services, **more) -> dict:
    return dict({"backend": "nftables", "state": "present", "prune": True, "masquerade": None, "netns": None,
                 "restore": None, "node_addresses": ADDRESSES, "cluster_cidrs": None, "services": list(services)}, **more)


def last(run: dict) -> dict:
    """The record a run of `run` leaves (held: its services, normalised, in the JSON a record holds)."""
    held = fw.NatSet((), tuple(sorted(svc.normalise_services(run["services"]), key=svc.service_order)),
                     tuple(ADDRESSES))
    digest, rest, given = record.run_digests(run)
    return json.loads(json.dumps({"digest": digest, "rest": rest, "given": given,
                                  "held": {"nftables": list(held), "iptables": list(fw.NatSet())}}))


def changes(before: dict, now: dict):
    rest, given = record.run_digests(now)[1:]
    return record.endpoint_changes(last(before), now, rest, given, "nftables")


def test_the_same_arguments_give_the_same_digests_and_one_service_changes_one():
    before, now = params(WEB, ECHO, WEB6), params(WEB, dict(ECHO, endpoints=[{"ip": "192.168.30.4"}]), WEB6)
    assert record.run_digests(before) == record.run_digests(json.loads(json.dumps(before)))
    (one, rest, given), (other, rest2, given2) = record.run_digests(before), record.run_digests(now)
    assert one != other and rest == rest2 and list(given) == ["web/4", "echo/4", "web/6"]
    assert [key for key in given if given[key] != given2[key]] == ["echo/4"]
    assert record.run_digests(params(WEB, "not a dict"))[2] is None
    assert record.run_digests(params(WEB, WEB))[2] is None  # listed twice: the whole check says so


def test_endpoints_alone_changed_are_planned_alone():
    moved = dict(WEB, endpoints=[{"ip": "192.168.10.3"}, {"ip": "192.168.20.9"}])
    old, new = changes(params(WEB, ECHO, WEB6), params(moved, ECHO, WEB6))
    assert [s.key for s in old] == [s.key for s in new] == [("web", 4)]
    assert [e.ip for e in new[0].endpoints] == ["192.168.10.3", "192.168.20.9"]
    # a Local service's endpoints on this node, and the IPv6 entry of a dual-stack service
    local = dict(LOCAL, endpoints=[{"ip": "192.168.10.6", "local": True}])
    assert [s.key for s in changes(params(LOCAL, WEB6), params(local, WEB6))[1]] == [("local", 4)]
    web6 = dict(WEB6, endpoints=[{"ip": "fd00:10::4"}])
    assert [s.key for s in changes(params(WEB, WEB6), params(WEB, web6))[1]] == [("web", 6)]


@pytest.mark.parametrize("now", [
    params(dict(WEB, node_port=32081), ECHO),                     # a node port: the shared dispatch changes
    params(dict(WEB, endpoints=[]), ECHO),                        # no endpoint left
    params(dict(LOCAL, endpoints=[{"ip": "192.168.20.5"}]), ECHO),  # no endpoint left on this node (Local)
    params(dict(LOCAL, external_traffic_policy="Cluster"), ECHO),  # the policy
    params(WEB, dict(ECHO, endpoints=[{"ip": "192.168.30.3", "port": 0}])),  # bad: the whole check names it
    params(WEB),                                                   # a service less
    params(WEB, ECHO, LOCAL, prune=False),                         # anything but the services
    params(WEB, ECHO, LOCAL),                                      # nothing changed: answered before this
], ids=["node port", "no endpoint", "no local endpoint", "policy", "bad", "one less", "prune", "same"])
def test_anything_else_plans_the_whole_set(now):
    assert changes(params(WEB, ECHO, LOCAL), now) is None


@pytest.mark.parametrize("backend", [NftablesNat, IptablesNat])
def test_a_partial_plan_writes_what_the_whole_plan_writes(backend):
    """The changed services' chains, planned alone, are the whole set's transaction; the record afterwards
    holds what the whole set's run would."""
    before = params(WEB, ECHO, LOCAL, WEB6)
    now = params(dict(WEB, endpoints=[{"ip": "192.168.20.9"}]), ECHO,
                 dict(LOCAL, endpoints=[{"ip": "192.168.10.6", "local": True}, {"ip": "192.168.20.5"}]), WEB6)
    tools = backend(command.Runner(lambda *a, **k: (0, "", ""), lambda tool: tool))
    whole = [fw.NatSet((), tuple(sorted(svc.normalise_services(run["services"]), key=svc.service_order)),
                       tuple(sorted(ADDRESSES))) for run in (before, now)]
    full = tools.plans(tools.render(whole[0]), whole[1], ("services",))[1]
    old, new = changes(before, now)
    part = tools.plans(tools.render(fw.NatSet((), old, whole[0].node_addresses)),
                       fw.NatSet((), new, whole[0].node_addresses), ("services",))[1]
    assert [(tx.argv, tx.script, tx.description) for tx in part] == [(tx.argv, tx.script, tx.description) for tx in full]
    held = record.held_after(last(before), "nftables", new)["nftables"]
    assert fw.natset_from_json(json.loads(json.dumps(held))).services == whole[1].services


def test_iptables_nft_is_asked_for_its_whole_cache_only_by_a_large_transaction_on_a_small_table():
    """iptables-nft 1.8.9 costs a transaction naming many chains their square unless a chainless command (-S)
    comes first; the built-in chains jumped from are declared with the nat table's one policy before it."""
    from ansible_collections.handcni.podnet.plugins.module_utils import _iptables as ipt
    many = fw.NatSet((), tuple(svc.normalise_services(
        [dict(WEB, name=f"web-{i}", cluster_ip=f"11.96.{i // 250}.{i % 250 + 1}", node_port=30000 + i)
         for i in range(300)])), ("192.168.210.21",))
    few = fw.NatSet((), tuple(svc.normalise_services([WEB])), ("192.168.210.21",))
    none = ipt.parse_iptables_save("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n")
    crowded = ipt.parse_iptables_save("*nat\n" + "".join(f":KUBE-SVC-{i} - [0:0]\n" for i in range(1000)) + "COMMIT\n")
    assert (none.others, crowded.others) == (2, 1000)
    asked = []

    def nft():
        asked.append(True)
        return True
    head = ipt.ipt_script(none, ipt.ipt_render(many), nf_tables=nft)[0].splitlines()[:5]
    assert head == ["*nat", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", ":PREROUTING ACCEPT [0:0]", "-S"]
    assert asked == [True]
    assert "-S" not in ipt.ipt_script(none, ipt.ipt_render(many), nf_tables=lambda: False)[0].splitlines()  # legacy
    assert "-S" not in ipt.ipt_script(none, ipt.ipt_render(few), nf_tables=nft)[0].splitlines() and len(asked) == 1
    # the table holds many chains, ours or others', or was not read (planned from the record): their listing would cost more
    assert "-S" not in ipt.ipt_script(ipt.ipt_render(many), none, nf_tables=nft)[0].splitlines()
    assert "-S" not in ipt.ipt_script(crowded, ipt.ipt_render(many), nf_tables=nft)[0].splitlines()
    assert "-S" not in ipt.ipt_script(ipt.ipt_render(fw.NatSet()), ipt.ipt_render(many), nf_tables=nft)[0].splitlines()
