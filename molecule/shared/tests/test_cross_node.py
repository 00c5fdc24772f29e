"""Seed 004 labs 6-8: pods reach the pods of every other node, by the scenario's method, proven by
traffic; the kernel objects are exactly the seed's; encapsulation happens exactly where it should
(packet counters); a worker dropped from the inventory leaves no entry anywhere, and nothing of
anyone else is touched."""
import itertools

import pytest

from cross_node import (CIDR, DEVICE, METHOD, NODE_IP, NODE_MTU, OVERHEAD, expected_routes, fdb, forwarded,
                        inventory_without, link, matrix, neighbours, playbook_with, routes, scratch, tunnel_ip,
                        tunnelled, tx_packets, vtep_mac)
from lab import LEAF, POD_CIDRS6, WORKERS, Node, playbook, run_in, sources

PAIRS = list(itertools.permutations(WORKERS, 2))
COUNT = 5


@pytest.mark.parametrize("name", WORKERS)
def test_every_pod_reaches_every_pod_on_the_other_nodes(name):
    node = Node(name)
    failed = [f"{name}/{src['name']} -> {other}/{dst['ip']}"
              for src in node.pods for other in WORKERS if other != name for dst in Node(other).pods
              if node.ping(src["name"], dst["ip"]).rc != 0]
    assert failed == []


@pytest.mark.parametrize("src, dst", PAIRS)
def test_a_df_ping_at_the_full_pod_mtu_crosses_every_path(src, dst):
    node, other = Node(src), Node(dst)
    assert node.mtu == NODE_MTU - OVERHEAD, "the pod MTU follows the method"
    pod, target = node.pods[0], other.pods[0]["ip"]
    eth0 = node.in_pod(pod["name"], "cat", "/sys/class/net/eth0/mtu").stdout.strip()
    assert eth0 == str(node.mtu)
    fits = node.ping(pod["name"], target, node.mtu - 28)
    assert fits.rc == 0, fits.stdout + fits.stderr


@pytest.mark.parametrize("name", WORKERS + [LEAF])
def test_the_routes_are_the_seeds(name):
    assert routes(name) == expected_routes(name)


@pytest.mark.parametrize("name", WORKERS)
def test_the_tunnel_device_is_the_seeds(name):
    links = run_in(name, "ip", "-o", "-d", "link", "show").stdout
    if DEVICE is None:
        assert " ipip " not in links and " vxlan " not in links, "static routes need no tunnel"
        return
    device = link(name, DEVICE)
    data = device["linkinfo"]["info_data"]
    assert device["ifalias"] == f"handcni.podnet {'ipip_tunnel' if METHOD == 'ipip' else 'vxlan_fdb'}"
    assert device["mtu"] == NODE_MTU - OVERHEAD and "UP" in device["flags"]
    addresses = run_in(name, "ip", "-o", "-4", "addr", "show", "dev", DEVICE).stdout
    assert f"inet {tunnel_ip(name)}/32" in addresses, "the tunnel address is the pod CIDR's network address"
    peers = [w for w in WORKERS if w != name and tunnelled(name, w)]
    if METHOD == "ipip":
        assert data["local"] == NODE_IP[name] and data.get("remote", "any") == "any"
        return
    assert (data["id"], data["port"], data["local"], data["learning"]) == (100, 4789, NODE_IP[name], False)
    assert device["address"] == vtep_mac(NODE_IP[name])
    assert fdb(name) == {vtep_mac(NODE_IP[p]): NODE_IP[p] for p in peers}
    assert neighbours(name) == {address: vtep_mac(NODE_IP[p]) for p in peers
                                for address in [tunnel_ip(p)] + ([tunnel_ip(p, 6)] if POD_CIDRS6 else [])}


def test_the_leaf_routes_pod_cidrs_only_without_a_tunnel():
    leaf_routes = run_in(LEAF, "ip", "route").stdout
    for cidr in CIDR.values():
        assert (cidr in leaf_routes) == (METHOD == "static"), leaf_routes


@pytest.mark.parametrize("src, dst", PAIRS)
def test_traffic_is_encapsulated_exactly_where_it_should_be(src, dst):
    """Pings from a pod of src to a pod of dst: the tunnel device of src carries them exactly when
    the path is tunnelled; with static routes, the leaf routes them exactly across subnets."""
    node, target = Node(src), Node(dst).pods[0]["ip"]
    pod = node.pods[0]["name"]
    argv = ["ping", "-c", str(COUNT), "-i", "0.2", "-W", "2", "-n", "-q", target]
    if DEVICE is None:
        before = forwarded(LEAF)
        assert node.in_pod(pod, *argv).rc == 0
        routed = forwarded(LEAF) - before
        across = expected_routes(src)[CIDR[dst]][0].endswith(".254")
        assert (routed >= 2 * COUNT) if across else (routed < COUNT), (src, dst, routed)
        return
    before = tx_packets(src, DEVICE)
    assert node.in_pod(pod, *argv).rc == 0
    sent = tx_packets(src, DEVICE) - before
    if tunnelled(src, dst):
        assert sent >= COUNT, f"{src} -> {dst} should go through {DEVICE}: it sent {sent} packets"
    else:
        assert sent == 0, f"{src} -> {dst} should go directly, yet {DEVICE} sent {sent} packets"


def test_verify_playbook_proves_the_matrix():
    run = playbook_with(sources()[1::2], "verify.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    cells = matrix(run.stdout)
    assert cells and all(c[0] == "ok" for c in cells), [c for c in cells if c[0] != "ok"]
    for src, dst in PAIRS:
        assert any(c[1] == "cross_node" and c[3].startswith(f"{src}/") and c[4].startswith(f"{dst}/") for c in cells)
        mtu = [c for c in cells if c[1] == "mtu" and c[3].startswith(f"{src}/") and c[4].startswith(f"{dst}/")]
        assert mtu and " ".join(mtu[0][6:]) == f"DF ping at pod MTU {NODE_MTU - OVERHEAD} across nodes", mtu


GONE = WORKERS[-1]  # the last worker (the seed's worker3, alone on its subnet)
STAYING = [w for w in WORKERS if w != GONE]
FOREIGN_ROUTE = "10.77.0.0/16"


@pytest.fixture(scope="module")
def dropped():
    """Someone else's objects next to ours; the cross_node part of site.yml with the last worker gone from the
    inventory (what each node then looks like); then again with the whole inventory; then the strangers go."""
    first = STAYING[0]
    strangers = [
        (first, f"ip route add {FOREIGN_ROUTE} via {NODE_IP[STAYING[1]]}", f"ip route del {FOREIGN_ROUTE}"),
        (LEAF, f"ip route add {FOREIGN_ROUTE} via {NODE_IP[first]}", f"ip route del {FOREIGN_ROUTE}"),
        (first, f"ip link add vxf type vxlan id 99 dstport 4789 local {NODE_IP[first]} && "
                f"bridge fdb add 0e:00:0a:fb:09:09 dev vxf dst {NODE_IP[GONE]} && "
                "ip neigh add 10.251.99.0 lladdr 0e:00:0a:fb:09:09 dev vxf", "ip link del vxf"),
    ]
    if METHOD == "vxlan":  # a learned neighbour on our own device is not ours either
        strangers.append((first, f"ip neigh add 10.251.9.9 lladdr 0e:00:0a:fb:09:08 dev {DEVICE} nud stale",
                          f"ip neigh del 10.251.9.9 dev {DEVICE}"))
    for node, add, _ in strangers:
        assert run_in(node, "sh", "-c", add).rc == 0, add
    try:
        with scratch() as directory:
            run = playbook_with([inventory_without(GONE, directory)], "site.yml", "--tags", "cross_node")
        seen = {n: run_in(n, "sh", "-c", "ip route show table all; bridge fdb show; ip neigh show nud all;"
                                         " ip -o link").stdout for n in STAYING + [LEAF, GONE]}
        back = playbook("site.yml", "--tags", "cross_node")
    finally:
        for node, _, remove in strangers:
            run_in(node, "sh", "-c", remove)
    return {"run": run, "seen": seen, "back": back}


@pytest.mark.parametrize("name", STAYING + [LEAF])
def test_a_worker_dropped_from_the_inventory_leaves_no_entry_for_it(dropped, name):
    assert dropped["run"].returncode == 0, dropped["run"].stdout[-3000:]
    seen = dropped["seen"][name]
    assert CIDR[GONE] not in seen, f"a route to {GONE}'s pods is left on {name}"
    assert tunnel_ip(GONE) not in seen, f"a neighbour entry for {GONE}'s VTEP is left on {name}"
    if POD_CIDRS6:
        assert POD_CIDRS6[GONE] not in seen and f"{tunnel_ip(GONE, 6)} " not in seen, f"IPv6 of {GONE} left on {name}"
    ours = [line for line in seen.splitlines() if DEVICE and f"dev {DEVICE}" in line]
    assert not [line for line in ours if NODE_IP[GONE] in line or vtep_mac(NODE_IP[GONE]) in line], ours


def test_what_we_did_not_make_is_untouched(dropped):
    first, leaf = dropped["seen"][STAYING[0]], dropped["seen"][LEAF]
    assert FOREIGN_ROUTE in first and FOREIGN_ROUTE in leaf
    assert f"0e:00:0a:fb:09:09 dev vxf dst {NODE_IP[GONE]} self permanent" in first
    assert "10.251.99.0 dev vxf lladdr 0e:00:0a:fb:09:09 PERMANENT" in first
    if METHOD == "vxlan":
        assert f"10.251.9.9 dev {DEVICE} lladdr 0e:00:0a:fb:09:08 STALE" in first
    # the dropped worker is no longer managed: its own objects are left as they were
    assert all(CIDR[w] in dropped["seen"][GONE] for w in STAYING)


def test_the_dropped_worker_comes_back_in_one_run(dropped):
    assert dropped["back"].returncode == 0, dropped["back"].stdout[-3000:]
    for name in STAYING + [LEAF]:
        assert routes(name) == expected_routes(name)
    if METHOD == "vxlan":
        for name in STAYING:
            assert (vtep_mac(NODE_IP[GONE]) in fdb(name)) == tunnelled(name, GONE)
    node = Node(STAYING[0])
    assert node.ping(node.pods[0]["name"], Node(GONE).pods[0]["ip"]).rc == 0
