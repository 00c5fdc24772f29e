"""Dual-stack Services (plugins/module_utils/_service_families.py) and their inventory checks (_inventory.py)."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.filter.preflight import podnet_problems
from ansible_collections.handcni.podnet.plugins.module_utils import _service_families as sf

from test__dual_stack import GROUPS, changed

WEB = {"name": "web", "cluster_ip": "11.96.10.3", "cluster_ips": ["11.96.10.3", "fd00:96::a"],
       "ip_families": ["IPv4", "IPv6"], "port": 8080, "node_port": 32080, "target_port": 80,
       "endpoints": [{"node": "worker1", "pod": "netns3"}, {"node": "worker2", "pod": "netns2"}]}


@pytest.mark.parametrize("service, dual, sides", [
    ({"cluster_ip": "11.96.10.3"}, False, [(4, "11.96.10.3")]),
    ({"cluster_ip": "11.96.10.3"}, True, [(4, "11.96.10.3")]),  # SingleStack: as before
    (WEB, True, [(4, "11.96.10.3"), (6, "fd00:96::a")]),
    (WEB, False, [(4, "11.96.10.3")]),  # PreferDualStack on an IPv4-only cluster: the IPv4 side alone
    (dict(WEB, cluster_ip="fd00:96::a", cluster_ips=["fd00:96::a", "11.96.10.3"], ip_families=["IPv6", "IPv4"]), True,
     [(6, "fd00:96::a"), (4, "11.96.10.3")]),
    (dict(WEB, cluster_ip="fd00:96::a", cluster_ips=None, ip_families=None), True, [(6, "fd00:96::a")]),
    (dict(WEB, ip_families=None), True, [(4, "11.96.10.3"), (6, "fd00:96::a")]),  # families of the cluster IPs
    (dict(WEB, cluster_ip=None), True, [(4, "11.96.10.3"), (6, "fd00:96::a")]),
])
def test_families_of_a_service(service, dual, sides):
    assert sf.families({k: v for k, v in service.items() if v is not None}, dual, "s") == sides


@pytest.mark.parametrize("change, dual, message", [
    (dict(ip_family_policy="RequireDualStack"), False,
     "s.ip_family_policy: RequireDualStack needs a dual-stack cluster (podnet_dual_stack: true)"),
    (dict(ip_family_policy="SingleStack"), True, "s.ip_families: ['IPv4', 'IPv6'] are two families, but ip_family_policy"),
    (dict(ip_family_policy="Sometimes"), True, "s.ip_family_policy: 'Sometimes' is not one of SingleStack, "),
    (dict(ip_families=["IPv6"], cluster_ips=["fd00:96::a"], cluster_ip="fd00:96::a"), False,
     "s.ip_families: IPv6 needs a dual-stack cluster (podnet_dual_stack: true)"),
    (dict(ip_families=None, cluster_ips=None, cluster_ip="fd00:96::a"), False,
     "s.ip_families: an IPv6 cluster IP needs a dual-stack cluster"),
    (dict(ip_families=["IPv4", "IPv4"]), True, "s.ip_families: ['IPv4', 'IPv4'] is not [IPv4], [IPv6]"),
    (dict(ip_families=["ipv6"]), True, "s.ip_families: ['ipv6'] is not [IPv4], [IPv6]"),
    (dict(cluster_ips=["11.96.10.3", "11.96.10.4"]), True, "s.cluster_ips[1]: 11.96.10.4 is a second IPv4 address"),
    (dict(cluster_ips=["11.96.10.3", "nope"]), True, "s.cluster_ips[1]: 'nope' is not an IP address"),
    (dict(cluster_ips=["fd00:96::a", "11.96.10.3"]), True, "s.cluster_ips[0]: fd00:96::a is not of ip_families[0] (IPv4)"),
    (dict(cluster_ip="11.96.10.9"), True, "s.cluster_ip: '11.96.10.9' is neither cluster_ips[0] nor its IPv4 address"),
    (dict(cluster_ips=["11.96.10.3"]), True, "s.cluster_ips: no IPv6 address for the service's IPv6 side"),
])
def test_bad_families_are_one_line_naming_the_field(change, dual, message):
    service = {k: v for k, v in dict(WEB, **change).items() if v is not None}
    with pytest.raises(ValueError) as err:
        sf.families(service, dual, "s")
    assert str(err.value).startswith(message), str(err.value)


def test_an_entry_per_family_keeps_its_family_s_addresses():
    service = dict(WEB, external_ips=["198.51.100.1", "2001:db8::1"], load_balancer_ip="2001:db8::2")
    four, six = (sf.entry(service, version, ip) for version, ip in sf.families(service, True, "s"))
    assert (four["cluster_ip"], four["external_ips"], four["load_balancer_ip"]) == ("11.96.10.3", ["198.51.100.1"], None)
    assert (six["cluster_ip"], six["external_ips"], six["load_balancer_ip"]) == ("fd00:96::a", ["2001:db8::1"], "2001:db8::2")
    assert not set(sf.KEYS) & set(four)


# --- the inventory ----------------------------------------------------------------------

def test_a_dual_stack_service_in_a_dual_stack_or_ipv4_only_lab_has_no_problem():
    assert podnet_problems(changed(all__podnet_services=[WEB], all__podnet_service_cidr6="fd00:96::/112"), GROUPS) == []
    assert podnet_problems(changed(all__podnet_services=[WEB], all__podnet_dual_stack=False), GROUPS) == []


@pytest.mark.parametrize("changes, text", [
    (dict(all__podnet_services=[dict(WEB, ip_family_policy="RequireDualStack")], all__podnet_dual_stack=False),
     "podnet_services[0].ip_family_policy: RequireDualStack needs a dual-stack cluster"),
    (dict(all__podnet_services=[WEB], all__podnet_service_cidr6="fd00:97::/112"),
     "podnet_services[0].cluster_ips[1]: fd00:96::a is outside podnet_service_cidr6 fd00:97::/112"),
    (dict(all__podnet_service_cidr6="11.96.0.0/16"), "podnet_service_cidr6: '11.96.0.0/16' is not a valid IPv6 network"),
    (dict(all__podnet_services=[dict(WEB, cluster_ips=["11.96.10.3", "fd00:10::9"])]),
     "podnet_services[0].cluster_ips[1]: fd00:10::9 is inside worker1's"),
    (dict(all__podnet_services=[dict(WEB, ip_families=["IPv4"], ip_family_policy=None, cluster_ips=["11.96.10.3"],
                                     external_ips=["2001:db8::1"])]),
     "podnet_services[0].external_ips[0]: 2001:db8::1 is IPv6, but the service has no IPv6 side (ip_families)"),
    (dict(all__podnet_services=[WEB, dict(WEB, name="two", cluster_ips=["11.96.10.4", "fd00:96::a"], cluster_ip="11.96.10.4",
                                          node_port=None)]),
     "podnet_services[1].cluster_ip: [fd00:96::a]:8080/tcp is also used by podnet_services[0]"),
])
def test_bad_dual_stack_services_are_named_in_one_line(changes, text):
    found = podnet_problems(changed(**changes), GROUPS)
    assert any(text in line for line in found), found
