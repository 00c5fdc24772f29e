"""The policy filters: the module's input per node, the truth table's cells, and the other cells judged."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.filter import policy as f
from ansible_collections.handcni.podnet.plugins.filter import verify as v

CLIENT = {"name": "client", "labels": {"app": "client"}}
HOSTVARS = {
    "w1": {"podnet_node_ip": "192.168.1.1", "podnet_pods": [CLIENT, {"name": "web", "ip": "10.0.1.3", "labels": {"app": "web"}}],
           "pod_network_assigned": [{"name": "client", "ip": "10.0.1.2"}, {"name": "web", "ip": "10.0.1.3"}]},
    "w2": {"podnet_node_ip": "192.168.1.2",
           "podnet_pods": [{"name": "web", "ip": "10.0.2.3", "labels": {"app": "web"}}, {"name": "other", "ip": "10.0.2.4", "namespace": "x"}]},
}
WORKERS = ["w1", "w2"]
NODES = {w: HOSTVARS[w]["podnet_node_ip"] for w in WORKERS}
PODS = {"w1": HOSTVARS["w1"]["pod_network_assigned"], "w2": [{"name": "web", "ip": "10.0.2.3"}, {"name": "other", "ip": "10.0.2.4"}]}
WEB_FROM_CLIENTS = [{"metadata": {"name": "web"}, "spec": {
    "podSelector": {"matchLabels": {"app": "web"}},
    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": 80}, {"port": 8000, "endPort": 8080}]}]}}]
SERVICE = {"name": "web", "cluster_ip": "11.96.0.1", "port": 80, "protocol": "tcp",
           "endpoints": [{"node": "w1", "pod": "web"}, {"node": "w2", "pod": "web"}]}


def test_the_module_gets_the_node_s_isolated_pods_with_addresses():
    assert f.network_policy_rules(WEB_FROM_CLIENTS, HOSTVARS, WORKERS, "w2") == [
        {"name": "default/web", "ip": "10.0.2.3", "egress": None,
         "ingress": [{"peers": ["10.0.1.2/32"], "ports": [{"protocol": "tcp", "port": 80, "end_port": None},
                                                          {"protocol": "tcp", "port": 8000, "end_port": 8080}]}]}]
    assert f.network_policy_rules([], HOSTVARS, WORKERS, "w2") == []


def test_a_bad_policy_is_one_line_naming_the_field():
    with pytest.raises(AnsibleFilterError, match=r"^podnet_network_policies\[0\]\.spec\.podSelector: required"):
        f.network_policy_rules([{"metadata": {"name": "p"}, "spec": {}}], HOSTVARS, WORKERS, "w1")


def test_ports_probed_and_bridge_mode_needs_br_netfilter():
    assert f.policy_ports(WEB_FROM_CLIENTS) == [80, 8000, 8080]
    assert f.policy_sysctls(WEB_FROM_CLIENTS, "bridge") == {"net.bridge.bridge-nf-call-iptables": 1}
    assert f.policy_sysctls(WEB_FROM_CLIENTS, "routed") == f.policy_sysctls([], "bridge") == {}


def test_the_truth_table_from_every_pod_of_the_node():
    probes = f.policy_probes(WEB_FROM_CLIENTS, HOSTVARS, WORKERS, "w1", [80, 81], None, NODES, PODS)
    verdicts = {(p["to"]): ("deny" if p.get("deny") else p["expect_one_of"][0]) for p in probes if p["from"] == "w1/client"}
    assert verdicts == {"w1/web 10.0.1.3:80": "w1/web", "w1/web 10.0.1.3:81": "deny",
                        "w2/web 10.0.2.3:80": "w2/web", "w2/web 10.0.2.3:81": "deny",
                        "w2/other 10.0.2.4:80": "w2/other", "w2/other 10.0.2.4:81": "w2/other"}
    assert len(probes) == 2 * 3 * 2


def test_other_cells_denied_kept_or_narrowed_to_the_allowed_endpoints():
    pings = v.cross_node_probes(PODS["w1"], "w1", PODS, 1400)
    judged = f.policy_judged(pings, WEB_FROM_CLIENTS, HOSTVARS, WORKERS, None, NODES, PODS)
    assert [(p["to"], bool(p.get("deny"))) for p in judged if p["kind"] == "cross_node"] == [
        ("w2/web 10.0.2.3", True), ("w2/other 10.0.2.4", False), ("w2/web 10.0.2.3", True), ("w2/other 10.0.2.4", False)]
    services = f.policy_judged(v.service_probes([SERVICE], "w1", "192.168.1.1", PODS["w1"], PODS), WEB_FROM_CLIENTS,
                               HOSTVARS, WORKERS, None, NODES, PODS)
    from_pod, from_node, hairpin = services
    assert "deny" not in from_pod and from_pod["expect_one_of"] == ["w1/web", "w2/web"]
    # the node reaches its own pod, not the other node's: only w1/web answers, asked several times
    assert from_node["expect_one_of"] == ["w1/web"] and from_node["argv"][:2] == ["sh", "-c"]
    assert hairpin.get("deny")  # web reaching itself: web is no client
    assert f.policy_judged(pings, [], HOSTVARS, WORKERS) is pings


def test_a_denied_cell_passes_only_without_an_answer():
    probe = {"kind": "policy", "from": "a", "to": "b", "argv": [], "deny": True}
    ok, = v.probe_cells([{"item": probe, "rc": 28, "stdout": "", "stderr": "timed out"}])
    bad, = v.probe_cells([{"item": probe, "rc": 0, "stdout": "w2/web\n", "stderr": ""}])
    ping, = v.probe_cells([{"item": probe, "rc": 1, "stdout": "1 packets transmitted, 0 received", "stderr": ""}])
    refused, = v.probe_cells([{"item": probe, "rc": 7, "stdout": "", "stderr": "curl: (7) Connection refused"}])
    assert ok["ok"] and ok["detail"] == "no answer (denied by policy)" and ping["ok"] and not refused["ok"]
    assert not bad["ok"] and bad["detail"] == "denied by policy, but answered: w2/web"
