"""Same-node pod networking, proven by traffic, in whatever mode the scenario converged."""
import json

from lab import HOSTVARS, LEAF, OUTSIDE, POD_CIDRS6, ROOT, WORKERS, playbook


def test_pods_on_one_node_ping_each_other(node):
    for src in node.pods:
        for dst in node.pods:
            if src is not dst:
                result = node.ping(src["name"], dst["ip"])
                assert result.rc == 0, f"{node.name}: {src['name']} -> {dst['ip']}: {result.stdout}{result.stderr}"


def test_pods_reach_their_node(node):
    for pod in node.pods:
        result = node.ping(pod["name"], node.vars["podnet_node_ip"])
        assert result.rc == 0, f"{node.name}: {pod['name']} -> node: {result.stdout}{result.stderr}"


def test_full_pod_mtu_passes_and_one_byte_more_does_not(node):
    src, dst = node.pods[0], node.pods[1]
    fits = node.ping(src["name"], dst["ip"], node.mtu - 28)
    assert fits.rc == 0, fits.stdout + fits.stderr
    too_big = node.ping(src["name"], dst["ip"], node.mtu - 27)
    assert too_big.rc != 0, "a packet over the pod MTU must not pass with DF set"


def test_pods_hold_ipv6_exactly_when_dual_stack(node):
    """Dual stack: the pods talk over IPv6 too (each other, their node, a DF ping at the pod MTU with IPv6's
    48 bytes of headers, one byte more refused), got their addresses without DAD and take no router
    advertisements. IPv4 only: no pod holds a global IPv6 address or an IPv6 default route."""
    if node.network6 is None:
        for pod in node.pods:
            held = node.in_pod(pod["name"], "sh", "-c", "ip -6 -o addr show scope global; ip -6 route show default")
            assert held.stdout.strip() == "", f"{node.name}/{pod['name']} has IPv6: {held.stdout}"
        return
    for src in node.pods:
        assert node.in_pod(src["name"], "cat", "/proc/sys/net/ipv6/conf/eth0/accept_ra").stdout.strip() == "0"
        flags = node.in_pod(src["name"], "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global").stdout
        assert src["ip6"] in flags and "nodad" in flags and "tentative" not in flags, flags
        for target in [dst["ip6"] for dst in node.pods if dst is not src] + [node.vars.get("podnet_node_ip6")]:
            if target:
                result = node.ping(src["name"], target)
                assert result.rc == 0, f"{node.name}: {src['name']} -> {target}: {result.stdout}{result.stderr}"
    src, dst = node.pods[0], node.pods[1]
    assert node.ping(src["name"], dst["ip6"], node.mtu - 48).rc == 0
    assert node.ping(src["name"], dst["ip6"], node.mtu - 47).rc != 0, "over the pod MTU with DF must not pass"


def test_the_wiring_is_the_scenarios_mode(node):
    links = node.run("ip", "-d", "link", "show").stdout
    host_routes = node.run("ip", "route", "show", "proto", "201").stdout
    for pod in node.pods:
        veth = node.run("ip", "-d", "link", "show", pod["veth"]).stdout
        pod_route = node.in_pod(pod["name"], "ip", "route", "show", "default").stdout
        proxy_arp = node.run("cat", f"/proc/sys/net/ipv4/conf/{pod['veth']}/proxy_arp").stdout.strip()
        assert "alias handcni.podnet veth" in veth
        if node.mode == "bridge":
            assert "master br0" in veth and "hairpin on" in veth
            assert f"default via {node.gateway} dev eth0" in pod_route
        else:
            assert "master" not in veth
            assert f"{pod['ip']} dev {pod['veth']}" in host_routes
            via = "169.254.1.1" if node.style == "proxy_arp" else node.gateway
            assert f"default via {via} dev eth0" in pod_route and "onlink" in pod_route
        assert proxy_arp == ("1" if node.mode == "routed" and node.style == "proxy_arp" else "0")
    assert (" br0:" in links) == (node.mode == "bridge")
    assert (" veth-host@" in links) == (node.mode == "routed" and node.style == "veth_gateway")
    if node.mode == "bridge":
        assert host_routes.strip() == ""


def test_verify_playbook_matrix_is_green():
    run = playbook("verify.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    cells = json.loads((ROOT / "build/verify.json").read_text())
    assert cells and all(cell["ok"] for cell in cells)
    assert {cell["kind"] for cell in cells} >= {"same_node", "mtu", "egress", "cross_node",
                                                "clusterip", "hairpin", "nodeport", "udp"}
    ipv6 = {cell["kind"] for cell in cells if cell["family"] == 6}
    egress6 = {"egress"} if HOSTVARS.get(OUTSIDE, {}).get("podnet_node_ip6") else set()
    # the services with an IPv6 side (the lab's web and echo with dual stack) are probed over IPv6 too
    dual_services = any("IPv6" in (s.get("ip_families") or []) for s in HOSTVARS[WORKERS[0]].get("podnet_services") or [])
    services6 = {"clusterip", "hairpin", "nodeport", "udp"} if dual_services and "clusterip" in {c["kind"] for c in cells} \
        else set()
    assert ipv6 == ({"same_node", "mtu", "cross_node"} | egress6 | services6 if POD_CIDRS6 else set()), ipv6
    if HOSTVARS[LEAF].get("bgp_advertise_services") and HOSTVARS[LEAF].get("cross_node_method") == "bgp":
        assert {cell["kind"] for cell in cells} >= {"bgp_service", "ecmp"}
