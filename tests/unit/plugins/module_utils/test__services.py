"""Unit tests for plugins/module_utils/_services.py: the service model, its validation, conntrack flushes."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _services as svc

WEB = {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "node_port": 32080, "target_port": 80,
       "endpoints": [{"ip": "192.168.20.2"}, {"ip": "192.168.10.3"}]}
ECHO = {"name": "echo", "cluster_ip": "11.96.10.7", "port": 7, "protocol": "udp", "node_port": 30007,
        "endpoints": [{"ip": "192.168.30.3", "port": 7007}, {"ip": "192.168.20.1", "port": 7007}]}


def one(item: dict) -> svc.Service:
    return svc.normalise_services([item])[0]


def rejects(items, prefix: str, state: str = "present") -> None:
    with pytest.raises(ValueError) as err:
        svc.normalise_services(items, "services", state)
    assert str(err.value).startswith(prefix), str(err.value)


# --- the model -------------------------------------------------------------------------

def test_normalise_defaults_and_sorts_endpoints():
    web = one(WEB)
    assert web == svc.Service("web", "11.96.10.3", 8080, "tcp", 32080,
                              (svc.Endpoint("192.168.10.3", 80), svc.Endpoint("192.168.20.2", 80)))
    assert web.comment == "handcni.podnet service web"
    assert web.public() == {"name": "web", "cluster_ip": "11.96.10.3", "port": 8080, "protocol": "tcp",
                            "node_port": 32080, "endpoints": [{"ip": "192.168.10.3", "port": 80},
                                                              {"ip": "192.168.20.2", "port": 80}],
                            "external_ips": [], "external_traffic_policy": "Cluster", "local_endpoints": []}


def test_target_port_defaults_to_the_port_and_endpoints_may_have_their_own():
    service = one({"name": "s", "cluster_ip": "10.96.0.1", "port": 53, "protocol": "UDP",
                   "endpoints": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1", "port": 5353}]})
    assert service.protocol == "udp"
    assert service.endpoints == (svc.Endpoint("10.0.0.1", 5353), svc.Endpoint("10.0.0.2", 53))


def test_endpoints_sort_numerically():
    service = one({"name": "s", "cluster_ip": "10.96.0.1", "port": 80,
                   "endpoints": [{"ip": "10.0.0.10"}, {"ip": "10.0.0.9"}, {"ip": "10.0.0.9", "port": 8}]})
    assert [e.text() for e in service.endpoints] == ["10.0.0.9:8", "10.0.0.9:80", "10.0.0.10:80"]


@pytest.mark.parametrize("items, prefix", [
    ([dict(WEB, name="bad name")], "services[0].name: 'bad name' is not a valid service name"),
    ([dict(WEB, name="-web")], "services[0].name: "),
    ([dict(WEB, name="x" * 64)], "services[0].name: "),
    ([dict(WEB, cluster_ip=None)], "services[0].cluster_ip: required"),
    ([dict(WEB, cluster_ip="11.96.10.300")], "services[0].cluster_ip: '11.96.10.300' is not a valid IPv4 address"),
    ([dict(WEB, cluster_ip="fd00::1")], "services[0].endpoints[0].ip: '192.168.20.2' is not an IPv6 address, as "),
    ([dict(WEB, cluster_ip="fd00::1", endpoints=[{"ip": "fd00:20::2"}], external_ips=["198.51.100.1"])],
     "services[0].external_ips[0]: '198.51.100.1' is not an IPv6 address"),
    ([dict(WEB, endpoints=[{"ip": "fd00:20::2"}])], "services[0].endpoints[0].ip: 'fd00:20::2' is an IPv6 address, but "),
    ([dict(WEB, cluster_ip="ff02::1")], "services[0].cluster_ip: 'ff02::1' cannot be"),
    ([dict(WEB, cluster_ip="fd00::zz")], "services[0].cluster_ip: 'fd00::zz' is not a valid IP address"),
    ([dict(WEB, cluster_ip="0.0.0.0")], "services[0].cluster_ip: '0.0.0.0' cannot be"),
    ([dict(WEB, port=None)], "services[0].port: required"),
    ([dict(WEB, port=0)], "services[0].port: 0 is not a port number"),
    ([dict(WEB, port=True)], "services[0].port: True is not a port number"),
    ([dict(WEB, node_port=70000)], "services[0].node_port: 70000 is not a port number"),
    ([dict(WEB, target_port=-1)], "services[0].target_port: -1 is not a port number"),
    ([dict(WEB, protocol="sctp")], "services[0].protocol: 'sctp' is not one of tcp, udp"),
    ([ECHO, dict(WEB, endpoints=[{"ip": "192.168.10.3"}, {"ip": "192.168.10.300"}])],
     "services[1].endpoints[1].ip: '192.168.10.300' is not a valid IPv4 address"),
    ([dict(WEB, endpoints=[{"ip": "10.0.0.1", "port": 99999}])], "services[0].endpoints[0].port: 99999"),
    ([dict(WEB, endpoints=[{"ip": "10.0.0.1"}, {"ip": "10.0.0.1", "port": 80}])],
     "services[0].endpoints[1]: 10.0.0.1:80 is listed twice (also services[0].endpoints[0])"),
    ([dict(WEB, endpoints=["10.0.0.1"])], "services[0].endpoints[0]: '10.0.0.1' is not a dict"),
    ([WEB, dict(ECHO, name="web")], "services[1].name: web is also used by services[0]"),
    ([WEB, dict(ECHO, cluster_ip="11.96.10.3", port=8080, protocol="tcp")],
     "services[1].cluster_ip: 11.96.10.3:8080/tcp is also used by services[0]"),
    ([WEB, dict(ECHO, node_port=32080, protocol="tcp")], "services[1].node_port: 32080/tcp is also used by services[0]"),
    (["web"], "services[0]: 'web' is not a dict"),
    # what Ansible's argument check did before the module checked its services itself
    ([dict(WEB, nodeport=30080)], "services[0].nodeport: unknown key (known: name, cluster_ip"),
    ([dict(WEB, endpoints=[{"ip": "10.0.0.1", "weight": 2}])], "services[0].endpoints[0].weight: unknown key"),
    ([dict(WEB, endpoints=[{"ip": "10.0.0.1", "local": "perhaps"}])],
     "services[0].endpoints[0].local: 'perhaps' is not true or false"),
    ([dict(WEB, external_ips="198.51.100.1")], "services[0].external_ips: '198.51.100.1' is not a list"),
    ([dict(WEB, port="http")], "services[0].port: 'http' is not a port number"),
])
def test_normalise_rejects_naming_the_field(items, prefix):
    rejects(items, prefix)


def test_numbers_and_booleans_as_ansible_converts_them():
    service = svc.normalise_services([dict(WEB, port="8080", external_traffic_policy="Local",
                                           endpoints=[{"ip": "10.0.0.1", "port": "80", "local": "yes"}])])[0]
    assert service.port == 8080 and service.local == (svc.Endpoint("10.0.0.1", 80),)


def test_same_port_numbers_in_other_protocols_are_fine():
    services = svc.normalise_services([WEB, dict(WEB, name="web-udp", protocol="udp")])
    assert [s.protocol for s in services] == ["tcp", "udp"]


def test_absent_needs_only_names():
    assert [s.name for s in svc.normalise_services([{"name": "web"}], "services", "absent")] == ["web"]
    rejects([{"name": "web"}, {"name": "web"}], "services[1].name: 'web' is listed twice", "absent")
    rejects([{"name": "a b"}], "services[0].name: ", "absent")


def test_node_addresses():
    assert svc.normalise_addresses(["192.168.210.22", "10.0.0.1"]) == ("10.0.0.1", "192.168.210.22")
    with pytest.raises(ValueError, match=r"^node_addresses\[1\]: 10.0.0.1 is listed twice"):
        svc.normalise_addresses(["10.0.0.1", "10.0.0.1"])
    with pytest.raises(ValueError, match=r"^node_addresses\[0\]: 'x' is not"):
        svc.normalise_addresses(["x"])
    with pytest.raises(ValueError, match=r"^node_addresses: service web has node_port 32080"):
        svc.check_node_addresses([one(WEB)], ())
    svc.check_node_addresses([one(dict(WEB, node_port=None))], ())


def test_chain_hashes_are_stable_and_kube_proxy_sized():
    web = one(WEB)
    assert svc.service_hash(web) == svc.service_hash(web._replace(cluster_ip="10.0.0.1", endpoints=()))
    assert len(svc.service_hash(web)) == 16 and svc.service_hash(web).isalnum()
    assert svc.endpoint_hash(web, web.endpoints[0]) != svc.endpoint_hash(web, web.endpoints[1])
    assert svc.endpoint_hash(web, web.endpoints[0]) != svc.endpoint_hash(web._replace(name="web2"), web.endpoints[0])


def test_name_of_a_comment():
    assert svc.name_of("handcni.podnet service web") == "web"
    assert svc.name_of("handcni.podnet services") is None
    assert svc.name_of("handcni.podnet service a b") is None
    assert svc.name_of(None) is None


# --- which services a backend should hold -----------------------------------------------

def test_wanted_keeps_unlisted_services_unless_pruned():
    web, echo = one(WEB), one(ECHO)
    assert svc.wanted([web], [echo], "present", prune=False) == (echo, web)
    assert svc.wanted([web], [echo], "present", prune=True) == (web,)
    assert svc.wanted([web], [web._replace(port=1)], "present", prune=False) == (web,)


def test_wanted_rejects_a_clash_with_a_kept_service():
    kept = one(dict(ECHO, name="old", cluster_ip="11.96.10.3", port=8080, protocol="tcp"))
    with pytest.raises(ValueError, match=r"^services\[0\].cluster_ip: 11.96.10.3:8080/tcp is also used by service old"):
        svc.wanted([one(WEB)], [kept], "present", prune=False)
    assert svc.wanted([one(WEB)], [kept], "present", prune=True) == (one(WEB),)


def test_wanted_absent():
    web, echo = one(WEB), one(ECHO)
    assert svc.wanted([svc.Service("web", "", 0)], [web, echo], "absent", False) == (echo,)
    assert svc.wanted([], [web, echo], "absent", False) == ()


# --- conntrack ---------------------------------------------------------------------------

def argvs(flushes) -> list:
    return [" ".join(f.argv) for f in flushes]


def test_removed_udp_endpoint_is_flushed_for_cluster_ip_and_node_port():
    echo = one(ECHO)
    fewer = echo._replace(endpoints=echo.endpoints[:1])
    flushes = svc.conntrack_flushes([echo], [fewer], ("192.168.210.21",))
    assert argvs(flushes) == [
        "conntrack -D -p udp --orig-dst 11.96.10.7 --orig-port-dst 7 --reply-src 192.168.30.3 --reply-port-src 7007",
        "conntrack -D -p udp --orig-port-dst 30007 --reply-src 192.168.30.3 --reply-port-src 7007",
    ]
    assert "service echo" in flushes[0].description and "removed endpoint 192.168.30.3:7007" in flushes[0].description


def test_nothing_to_flush_when_nothing_changes_or_for_tcp():
    web, echo = one(WEB), one(ECHO)
    assert svc.conntrack_flushes([web, echo], [web, echo]) == []
    assert svc.conntrack_flushes([web], [web._replace(endpoints=web.endpoints[:1])]) == []
    assert svc.conntrack_flushes([echo], [echo._replace(endpoints=echo.endpoints + (svc.Endpoint("10.0.0.9", 7),))]) == []


def test_removed_udp_service_flushes_every_endpoint():
    echo = one(ECHO)
    assert len(svc.conntrack_flushes([echo], [])) == 4


def test_new_udp_service_flushes_flows_from_before_it_had_endpoints():
    echo = one(ECHO)
    assert argvs(svc.conntrack_flushes([], [echo], ("192.168.210.21",))) == [
        "conntrack -D -p udp --orig-dst 11.96.10.7 --orig-port-dst 7",
        "conntrack -D -p udp --orig-dst 192.168.210.21 --orig-port-dst 30007",
    ]
    empty = echo._replace(endpoints=())
    assert svc.conntrack_flushes([], [empty]) == []
    assert argvs(svc.conntrack_flushes([empty], [echo._replace(node_port=None)])) == [
        "conntrack -D -p udp --orig-dst 11.96.10.7 --orig-port-dst 7"]


def test_moved_udp_service_flushes_the_old_address():
    echo = one(ECHO)
    moved = echo._replace(cluster_ip="11.96.10.8", node_port=None)
    flushes = argvs(svc.conntrack_flushes([echo], [moved]))
    assert "conntrack -D -p udp --orig-dst 11.96.10.7 --orig-port-dst 7 --reply-src 192.168.20.1 --reply-port-src 7007" \
        in flushes
    assert flushes[-1] == "conntrack -D -p udp --orig-dst 11.96.10.8 --orig-port-dst 7"
