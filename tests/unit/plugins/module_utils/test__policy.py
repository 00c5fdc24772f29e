"""The NetworkPolicy model: validation naming the field, and Kubernetes' semantics, by the upstream e2e cases
that fit pods without a cluster (test/e2e/network/netpol), each written out by hand."""
import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _policy as m

PODS = [m.Pod("w1", "a", "default", {"app": "client"}, "10.0.1.2"),
        m.Pod("w1", "b", "default", {"app": "web"}, "10.0.1.3"),
        m.Pod("w2", "c", "other", {"app": "client"}, "10.0.2.2"),
        m.Pod("w2", "d", "other", {"app": "web", "tier": "x"}, "10.0.2.3")]
NODES = {"w1": "192.168.1.1", "w2": "192.168.1.2"}
OUTSIDE = "203.0.113.10"


def judge(policies, namespaces=None):
    normal = m.normalise_policies(policies)
    labels = m.namespace_labels(namespaces or {}, PODS)
    return lambda src, dst, proto="tcp", port=80: m.allowed(normal, PODS, labels, src, dst, proto, port, NODES)


def policy(spec, name="p", namespace="default"):
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


def test_no_policy_everything_is_open():
    ok = judge([])
    assert ok("10.0.1.2", "10.0.2.3") and ok("10.0.2.3", OUTSIDE, "icmp", None)


def test_deny_all_ingress_but_the_own_node_and_replies_are_the_module_s():
    ok = judge([policy({"podSelector": {}})])  # policyTypes default: Ingress
    assert not ok("10.0.1.2", "10.0.1.3") and not ok("10.0.2.2", "10.0.1.3") and not ok(OUTSIDE, "10.0.1.3")
    assert ok("192.168.1.1", "10.0.1.3")       # its own node (kubelet)
    assert not ok("192.168.1.2", "10.0.1.3")   # another node is not
    assert ok("10.0.1.3", "10.0.2.2")          # egress untouched; namespace other untouched
    assert ok("10.0.1.2", "10.0.2.3")


def test_allow_from_a_label_in_the_policy_namespace_only():
    ok = judge([policy({"podSelector": {"matchLabels": {"app": "web"}},
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]})])
    assert ok("10.0.1.2", "10.0.1.3", "icmp", None)  # no ports: every protocol
    assert not ok("10.0.2.2", "10.0.1.3")            # a client, but of another namespace
    assert ok("10.0.2.2", "10.0.2.3")                # pod d is not in the policy's namespace


def test_allow_from_a_namespace_and_from_pods_of_a_namespace():
    ns = {"other": {"labels": {"team": "o"}}}
    ok = judge([policy({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "o"}}}]}]})], ns)
    assert ok("10.0.2.3", "10.0.1.3") and ok("10.0.2.2", "10.0.1.3") and not ok("10.0.1.2", "10.0.1.3")
    both = judge([policy({"podSelector": {}, "ingress": [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}},
        "podSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}]}]})])
    assert both("10.0.2.3", "10.0.1.3") and not both("10.0.2.2", "10.0.1.3")


def test_ip_block_with_except_and_ports_with_a_range():
    ok = judge([policy({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{
        "from": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.0/28"]}}],
        "ports": [{"port": 8000, "endPort": 8080}, {"protocol": "UDP", "port": 53}]}]})])
    assert ok("203.0.113.99", "10.0.1.3", "tcp", 8000) and ok("203.0.113.99", "10.0.1.3", "tcp", 8080)
    assert not ok("203.0.113.99", "10.0.1.3", "tcp", 8081) and not ok("203.0.113.99", "10.0.1.3", "tcp", 80)
    assert ok("203.0.113.99", "10.0.1.3", "udp", 53) and not ok("203.0.113.99", "10.0.1.3", "tcp", 53)
    assert not ok(OUTSIDE, "10.0.1.3", "tcp", 8000)  # .10 is in the exception
    assert not ok("203.0.113.99", "10.0.1.3", "icmp", None)


def test_policies_add_up_and_egress_needs_the_destination_s_ingress_too():
    ok = judge([policy({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
                        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": 80}]}]}),
                policy({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
                        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}]}, "q"),
                policy({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": []}, "r")])
    assert ok("10.0.1.2", OUTSIDE, "tcp", 443) and not ok("10.0.1.2", OUTSIDE, "tcp", 80)
    assert not ok("10.0.1.2", "10.0.1.3", "tcp", 80)    # egress allows it, web's ingress denies all
    assert ok("10.0.1.2", "192.168.1.1", "icmp", None)  # a pod always reaches its own node


def test_compiled_rules_match_the_judge():
    """The module's allow lists (addresses) say what the judge (labels) says, for every pod pair and port."""
    policies = m.normalise_policies([
        policy({"podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}},
                                      {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.2.0/24"]}}],
                             "ports": [{"port": 80}]}]}),
        policy({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": {}}]}]}, "e", "other")])
    labels = m.namespace_labels({}, PODS)
    rules = {p["ip"]: p for node in NODES for p in m.node_rules(policies, PODS, labels, node)}
    ingress = rules["10.0.1.3"]["ingress"]
    assert len(ingress) == 1 and ingress[0]["ports"] == [{"protocol": "tcp", "port": 80, "end_port": None}]
    assert "10.0.0.0/23" in ingress[0]["peers"] and "10.0.2.0/24" not in ingress[0]["peers"]  # 10/8 less 10.0.2/24
    assert rules["10.0.2.2"] == {"name": "other/c", "ip": "10.0.2.2", "ingress": None,
                                 "egress": [{"peers": ["10.0.1.2/31", "10.0.2.2/31"], "ports": None}]}

    def enforced(src, dst, port):
        import ipaddress

        def admits(entry, peer):
            return any((r["peers"] is None or any(ipaddress.ip_address(peer) in ipaddress.ip_network(n) for n in r["peers"]))
                       and (r["ports"] is None or any(p["protocol"] == "tcp" and p["port"] == port for p in r["ports"]))
                       for r in entry)
        out, into = rules.get(src, {}).get("egress"), rules.get(dst, {}).get("ingress")
        return (out is None or admits(out, dst)) and (into is None or admits(into, src))
    for src in PODS:
        for dst in PODS:
            for port in (80, 81):
                assert enforced(src.ip, dst.ip, port) == m.allowed(policies, PODS, labels, src.ip, dst.ip, "tcp", port), \
                    (src, dst, port)


@pytest.mark.parametrize("item, message", [
    (policy({}), "podnet_network_policies[0].spec.podSelector: required"),
    (policy({"podSelector": {"matchLabel": {}}}), "podnet_network_policies[0].spec.podSelector.matchLabel: unknown key"),
    (policy({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
     "podnet_network_policies[0].spec.ingress[0].from[0].ipBlock.cidr: '10.0.0.0/33' is not an IPv4 network"),
    (policy({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/8"]}}]}]}),
     "podnet_network_policies[0].spec.ingress[0].from[0].ipBlock.except[0]: 11.0.0.0/8 is not within cidr 10.0.0.0/8"),
    (policy({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}),
     "podnet_network_policies[0].spec.ingress[0].ports[0].port: 'http' is a named port, which is not supported"),
    (policy({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "endPort": 70}]}]}),
     "podnet_network_policies[0].spec.ingress[0].ports[0].endPort: 70 is below port 80"),
    (policy({"podSelector": {}, "egress": [{}], "policyTypes": ["Ingress"]}),
     "podnet_network_policies[0].spec.egress: given, but policyTypes ['Ingress'] leaves out Egress"),
    (policy({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
     "podnet_network_policies[0].spec.podSelector.matchExpressions[0].values: In needs a non-empty list"),
    (policy({"podSelector": {"matchLabels": {"a": 1}}}), "podnet_network_policies[0].spec.podSelector.matchLabels.a: label values are strings"),
    ({"kind": "Policy", "metadata": {"name": "x"}, "spec": {"podSelector": {}}}, "podnet_network_policies[0].kind: 'Policy' is not NetworkPolicy"),
])
def test_a_bad_policy_is_named_by_its_field(item, message):
    with pytest.raises(ValueError) as err:
        m.normalise_policies([item])
    assert str(err.value).startswith(message), str(err.value)


def test_kubernetes_defaults_policy_types_from_the_rules():
    only_ingress, both = m.normalise_policies([policy({"podSelector": {}}),
                                               policy({"podSelector": {}, "egress": [{}]}, "q")])
    assert only_ingress.ingress == () and only_ingress.egress is None
    assert both.ingress == () and both.egress == (m.Rule(None, None),)
