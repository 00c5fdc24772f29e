"""Services (seed 004 labs 4 and 5) proven by traffic, in the order they run: the converged inventory with
iptables; one endpoint of each service removed (check mode predicts the run); then the whole inventory again
with the nftables backend (check mode first, then for real, then once more: no change)."""
import json
import random

import pytest
from services import (HOSTVARS, OUTSIDE, WORKERS, client, cluster_ip6, first, http, identities, node_ip, ours, playbook, recap,
                      udp)

WEB, ECHO = first("tcp"), first("udp")  # the seed's web and echo
WEB_URL = f"http://{WEB['cluster_ip']}:{WEB['port']}/"
CLIENT, CLIENT_POD = client()  # the seed's worker1/netns1, no service's endpoint
SOURCE_PORT = random.randint(40000, 60000)  # one UDP flow, kept across the endpoint change


def endpoint_pods(service: dict, node: str) -> list:
    return [e["pod"] for e in service["endpoints"] if e["node"] == node]


# --- the converged inventory (iptables) ------------------------------------------------------

@pytest.mark.parametrize("node", WORKERS)
def test_cluster_ip_from_another_pod_and_from_the_node(node):
    pod = next(p["name"] for p in HOSTVARS[node]["podnet_pods"] if p["name"] not in endpoint_pods(WEB, node))
    from_pod, from_node = http(node, WEB_URL, 10, pod=pod), http(node, WEB_URL, 10)
    assert len(from_pod) == 10 and set(from_pod) <= identities(WEB), from_pod
    assert len(from_node) == 10 and set(from_node) <= identities(WEB), from_node


@pytest.mark.parametrize("node", WORKERS)
def test_node_port_from_outside_and_from_the_node(node):
    url = f"http://{node_ip(node)}:{WEB['node_port']}/"
    from_outside = http(OUTSIDE, url, 10)
    assert len(from_outside) == 10 and set(from_outside) <= identities(WEB), from_outside
    assert set(http(node, url, 5)) <= identities(WEB)


def test_two_endpoints_50_requests_reach_both():
    answers = http(CLIENT, WEB_URL, 50, pod=CLIENT_POD)
    assert len(answers) == 50 and set(answers) == identities(WEB), answers


def test_hairpin_a_pod_reaches_itself_through_its_service():
    for endpoint in WEB["endpoints"]:
        me = f"{endpoint['node']}/{endpoint['pod']}"
        assert me in http(endpoint["node"], WEB_URL, 20, pod=endpoint["pod"]), me


def test_udp_service_from_a_pod_from_the_node_and_from_outside():
    assert udp(CLIENT, ECHO["cluster_ip"], ECHO["port"], SOURCE_PORT, pod=CLIENT_POD) in identities(ECHO)
    assert udp(CLIENT, ECHO["cluster_ip"], ECHO["port"], SOURCE_PORT + 1) in identities(ECHO)
    assert udp(OUTSIDE, node_ip(WORKERS[2]), ECHO["node_port"], SOURCE_PORT) in identities(ECHO)


# --- over IPv6 (a dual-stack lab: web and echo have an IPv6 side) --------------------------------

WEB6, ECHO6 = cluster_ip6(WEB), cluster_ip6(ECHO)
ipv6 = pytest.mark.skipif(not (WEB6 and ECHO6), reason="the lab's services have no IPv6 side (IPv4 only)")


@ipv6
@pytest.mark.parametrize("node", WORKERS)
def test_ipv6_cluster_ip_from_pods_and_node_and_node_port_from_outside(node):
    url = f"http://[{WEB6}]:{WEB['port']}/"
    pod = next(p["name"] for p in HOSTVARS[node]["podnet_pods"] if p["name"] not in endpoint_pods(WEB, node))
    from_pod, from_node = http(node, url, 10, pod=pod), http(node, url, 10)
    assert len(from_pod) == 10 and set(from_pod) <= identities(WEB), from_pod
    assert len(from_node) == 10 and set(from_node) <= identities(WEB), from_node
    node_port = f"http://[{HOSTVARS[node]['podnet_node_ip6']}]:{WEB['node_port']}/"
    from_outside = http(OUTSIDE, node_port, 10)
    assert len(from_outside) == 10 and set(from_outside) <= identities(WEB), from_outside


@ipv6
def test_ipv6_hairpin_and_udp():
    for endpoint in WEB["endpoints"]:
        me = f"{endpoint['node']}/{endpoint['pod']}"
        assert me in http(endpoint["node"], f"http://[{WEB6}]:{WEB['port']}/", 20, pod=endpoint["pod"]), me
    assert udp(CLIENT, ECHO6, ECHO["port"], SOURCE_PORT + 2, pod=CLIENT_POD) in identities(ECHO)
    assert udp(OUTSIDE, HOSTVARS[WORKERS[2]]["podnet_node_ip6"], ECHO["node_port"], SOURCE_PORT + 3) in identities(ECHO)


# --- one endpoint less ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fewer(tmp_path_factory):
    """The web service without its second endpoint and the echo service without the endpoint that serves
    the UDP flow of SOURCE_PORT; returns (recap of check mode, recap of the run, the flow's endpoints)."""
    served = udp(CLIENT, ECHO["cluster_ip"], ECHO["port"], SOURCE_PORT, pod=CLIENT_POD)
    assert udp(CLIENT, ECHO["cluster_ip"], ECHO["port"], SOURCE_PORT, pod=CLIENT_POD) == served  # one flow, one endpoint
    web = dict(WEB, endpoints=WEB["endpoints"][:1])
    echo = dict(ECHO, endpoints=[e for e in ECHO["endpoints"] if f"{e['node']}/{e['pod']}" != served])
    extra = tmp_path_factory.mktemp("services") / "fewer.json"
    extra.write_text(json.dumps({"podnet_services": [web, echo]}))
    rules = {n: ours(n) for n in WORKERS}
    planned = playbook("site.yml", "--check", "--tags", "services", "-e", f"@{extra}")
    assert planned.returncode == 0, planned.stdout[-3000:]
    assert {n: ours(n) for n in WORKERS} == rules, "check mode changed a rule"
    done = playbook("site.yml", "--tags", "services", "-e", f"@{extra}")
    assert done.returncode == 0, done.stdout[-3000:]
    return recap(planned.stdout), recap(done.stdout), served, identities(echo)


def test_check_mode_predicts_the_endpoint_change(fewer):
    predicted, real, _, _ = fewer
    assert predicted == real and all(real[n] > 0 for n in WORKERS), (predicted, real)


def test_no_request_reaches_a_removed_endpoint(fewer):
    left = {f"{WEB['endpoints'][0]['node']}/{WEB['endpoints'][0]['pod']}"}
    assert set(http(CLIENT, WEB_URL, 50, pod=CLIENT_POD)) == left
    assert set(http(OUTSIDE, f"http://{node_ip(WORKERS[1])}:{WEB['node_port']}/", 20)) == left


def test_udp_flow_moves_to_the_endpoint_left(fewer):
    _, _, served, left = fewer
    answer = udp(CLIENT, ECHO["cluster_ip"], ECHO["port"], SOURCE_PORT, pod=CLIENT_POD)
    assert answer in left and answer != served, (answer, served)


# --- the whole inventory again, with nftables ---------------------------------------------------

@pytest.fixture(scope="module")
def nftables(fewer):
    args = ("--tags", "egress,services", "-e", "podnet_firewall_backend=nftables")
    rules = {n: ours(n) for n in WORKERS}
    planned = playbook("site.yml", "--check", *args)
    assert planned.returncode == 0, planned.stdout[-3000:]
    assert {n: ours(n) for n in WORKERS} == rules, "check mode changed a rule"
    done = playbook("site.yml", *args)
    assert done.returncode == 0, done.stdout[-3000:]
    again = playbook("site.yml", *args)
    assert again.returncode == 0, again.stdout[-3000:]
    return recap(planned.stdout), recap(done.stdout), recap(again.stdout)


def test_nftables_check_mode_predicts_and_second_run_changes_nothing(nftables):
    predicted, real, again = nftables
    assert predicted == real and all(real[n] > 0 for n in WORKERS), (predicted, real)
    assert all(again[n] == 0 for n in WORKERS), again


@pytest.mark.parametrize("node", WORKERS)
def test_nftables_holds_everything_and_iptables_nothing(nftables, node):
    rules = ours(node)
    assert "HANDCNI" not in rules and "map service-ips" in rules and "numgen random mod 2" in rules


def test_nftables_traffic(nftables):
    assert set(http(CLIENT, WEB_URL, 50, pod=CLIENT_POD)) == identities(WEB)
    assert set(http(CLIENT, WEB_URL, 20)) <= identities(WEB)
    for node in WORKERS:
        assert set(http(OUTSIDE, f"http://{node_ip(node)}:{WEB['node_port']}/", 10)) <= identities(WEB)
    me = f"{WEB['endpoints'][0]['node']}/{WEB['endpoints'][0]['pod']}"
    assert me in http(WEB["endpoints"][0]["node"], WEB_URL, 20, pod=WEB["endpoints"][0]["pod"])
    assert udp(CLIENT, ECHO["cluster_ip"], ECHO["port"], SOURCE_PORT + 2, pod=CLIENT_POD) in identities(ECHO)
