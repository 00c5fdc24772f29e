"""The node's CNI config, proven as a runtime uses it: the real plugins add a pod beside ours.

On the first worker (the seed's worker1), `cnipod` is a network namespace like the one a container
runtime makes for a pod; the conflist site.yml wrote is run with CNI_COMMAND=ADD through the real bridge and host-local
plugins, the new pod talks to the collection's own pods, and CNI_COMMAND=DEL leaves nothing.
"""
import ipaddress
import json

import pytest

from cni import CNI_PATH, CONFLIST, WORKERS, CniNode as Node

NETWORK_STATE = "/var/lib/cni/networks/handcni"  # host-local's reservations, one file per address
POD = "cnipod"
NETNS = f"/run/netns/{POD}"


@pytest.fixture(params=WORKERS)
def node(request) -> Node:
    return Node(request.param)


def free_addresses(node: Node) -> list:
    """What host-local may hand out on the node: the pod CIDR but our pods and the gateway."""
    taken = {pod["ip"] for pod in node.pods} | {node.gateway}
    return [str(ip) for ip in node.network.hosts() if str(ip) not in taken]


def test_every_worker_has_the_config_a_runtime_picks(node):
    stat = node.run("stat", "-c", "%a:%U:%G", CONFLIST)
    assert stat.rc == 0 and stat.stdout.strip() == "644:root:root", stat.stdout + stat.stderr
    # containerd and CRI-O use the first config of the directory in name order.
    listing = node.run("ls", "-1", "/etc/cni/net.d").stdout.split()
    assert sorted(f for f in listing if f.endswith((".conf", ".conflist", ".json")))[0] == "10-handcni.conflist"
    conflist = node.conflist()
    assert (conflist["cniVersion"], conflist["name"]) == ("1.0.0", "handcni")
    assert [plugin["type"] for plugin in conflist["plugins"]] == ["bridge"]
    bridge = conflist["plugins"][0]
    assert (bridge["bridge"], bridge["isGateway"], bridge["ipMasq"], bridge["hairpinMode"], bridge["mtu"]) == (
        "br0", True, False, True, node.mtu)
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    ranges = bridge["ipam"]["ranges"]
    assert len(ranges) == 1, "one range set, cut into sub-ranges around our pods"
    offered = []
    for sub in ranges[0]:
        assert (sub["subnet"], sub["gateway"]) == (str(node.network), node.gateway)
        low, high = ipaddress.ip_address(sub["rangeStart"]), ipaddress.ip_address(sub["rangeEnd"])
        offered += [str(low + i) for i in range(int(high) - int(low) + 1)]
    assert offered == free_addresses(node)


@pytest.fixture(scope="module")
def runtime_pod():
    """The first worker's `cnipod`, added by the real plugins from the node's conflist; always cleaned up."""
    node = Node(WORKERS[0])
    conflist = node.conflist()
    state = {"node": node, "conflist": conflist, "deleted": False}
    # The first of host-local's directories that does not exist yet: the test made it, the test removes it.
    made = next((d for d in ("/var/lib/cni", "/var/lib/cni/networks", NETWORK_STATE)
                 if node.run("test", "-e", d).rc != 0), None)
    created = node.run("ip", "netns", "add", POD)
    assert created.rc == 0, created.stderr
    try:
        state["result"] = node.cni("ADD", conflist, POD, NETNS)
        yield state
    finally:
        if not state["deleted"]:
            try:
                node.cni("DEL", conflist, POD, NETNS, add_result=state.get("result"))
            finally:
                node.run("ip", "netns", "delete", POD)
        if made:
            node.run("rm", "-rf", made)


def runtime_ip(runtime_pod) -> str:
    return runtime_pod["result"]["ips"][0]["address"].split("/")[0]


def host_veth(runtime_pod) -> str:
    interfaces = runtime_pod["result"]["interfaces"]
    return next(i["name"] for i in interfaces if not i.get("sandbox") and i["name"] != "br0")


def test_runtime_pod_gets_a_free_address_of_the_node_pod_cidr(runtime_pod):
    node, result = runtime_pod["node"], runtime_pod["result"]
    assert result["cniVersion"] == "1.0.0"
    assert len(result["ips"]) == 1, result
    address = ipaddress.ip_interface(result["ips"][0]["address"])
    assert address.network == node.network
    assert str(address.ip) in free_addresses(node), f"{address.ip} is one of our pods' or the gateway"
    assert result["ips"][0]["gateway"] == node.gateway
    eth0 = json.loads(node.run("ip", "netns", "exec", POD, "ip", "-j", "address", "show", "eth0").stdout)
    assert f"{address.ip}/{address.network.prefixlen}" in [
        f"{a['local']}/{a['prefixlen']}" for a in eth0[0]["addr_info"] if a["family"] == "inet"]
    route = node.run("ip", "netns", "exec", POD, "ip", "route", "show", "default").stdout
    assert f"default via {node.gateway} dev eth0" in route
    reservation = node.run("cat", f"{NETWORK_STATE}/{address.ip}")
    assert reservation.rc == 0 and reservation.stdout.split()[0] == POD, reservation.stdout + reservation.stderr


def test_runtime_pod_is_a_hairpin_port_of_the_bridge_at_the_pod_mtu(runtime_pod):
    node = runtime_pod["node"]
    veth = json.loads(node.run("ip", "-d", "-j", "link", "show", host_veth(runtime_pod)).stdout)[0]
    assert veth["master"] == "br0" and veth["mtu"] == node.mtu
    assert veth["linkinfo"]["info_slave_data"]["hairpin"] is True
    eth0 = json.loads(node.run("ip", "netns", "exec", POD, "ip", "-j", "link", "show", "eth0").stdout)[0]
    assert eth0["mtu"] == node.mtu
    bridge = node.run("ip", "-brief", "address", "show", "br0").stdout
    assert f"{node.gateway}/{node.network.prefixlen}" in bridge, "isGateway must keep the bridge's one address"


def test_runtime_pod_and_our_pods_ping_each_other(runtime_pod):
    node, ip = runtime_pod["node"], runtime_ip(runtime_pod)
    for pod in node.pods:
        there = node.ping(POD, pod["ip"])
        assert there.rc == 0, f"{POD} -> {pod['name']} {pod['ip']}: {there.stdout}{there.stderr}"
        back = node.ping(pod["name"], ip)
        assert back.rc == 0, f"{pod['name']} -> {POD} {ip}: {back.stdout}{back.stderr}"
    for target in (node.gateway, node.vars["podnet_node_ip"]):
        result = node.ping(POD, target)
        assert result.rc == 0, f"{POD} -> {target}: {result.stdout}{result.stderr}"


def test_full_pod_mtu_passes_and_one_byte_more_does_not(runtime_pod):
    node, ip = runtime_pod["node"], runtime_ip(runtime_pod)
    ours = node.pods[0]
    for src, dst in ((POD, ours["ip"]), (ours["name"], ip)):
        fits = node.ping(src, dst, node.mtu - 28)
        assert fits.rc == 0, f"{src} -> {dst} DF at MTU {node.mtu}: {fits.stdout}{fits.stderr}"
        too_big = node.ping(src, dst, node.mtu - 27)
        assert too_big.rc != 0, f"{src} -> {dst}: a packet over the pod MTU must not pass with DF set"


def test_host_local_hands_out_every_free_address_and_nothing_else(runtime_pod):
    """The real host-local plugin, fed the conflist's IPAM config with its own scratch dataDir,
    accepts the range set and allocates exactly the free addresses, in order, then stops."""
    node = runtime_pod["node"]
    assert len(runtime_pod["conflist"]["plugins"][0]["ipam"]["ranges"][0]) > 1, "the first worker's pods cut several sub-ranges"
    ipam = dict(runtime_pod["conflist"]["plugins"][0]["ipam"], dataDir="/run/cni-test-host-local")
    config = json.dumps({"cniVersion": "1.0.0", "name": "handcni", "ipam": ipam})
    want = free_addresses(node)
    # Fixed script, values as arguments; the config comes on stdin, read once.
    script = ('conf=$(cat); i=0; while [ "$i" -le "$1" ]; do '
              'printf %s "$conf" | CNI_CONTAINERID=fill$i "$2/host-local" || break; i=$((i+1)); done')
    try:
        run = node.stdin(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND=ADD", f"CNI_NETNS={NETNS}",
                          "CNI_IFNAME=eth0", f"CNI_PATH={CNI_PATH}", "sh", "-c", script, "fill",
                          str(len(want)), CNI_PATH], config)
    finally:
        node.run("rm", "-rf", "/run/cni-test-host-local")
    decoder, text, results = json.JSONDecoder(), run.stdout.strip(), []
    while text:
        obj, end = decoder.raw_decode(text)
        results.append(obj)
        text = text[end:].lstrip()
    *allocated, exhausted = results
    got = [obj["ips"][0]["address"].split("/")[0] for obj in allocated]
    assert got == want
    assert "no IP addresses available" in exhausted.get("msg", ""), exhausted


def test_del_releases_the_address_and_removes_the_veth(runtime_pod):
    node, conflist = runtime_pod["node"], runtime_pod["conflist"]
    ip, veth = runtime_ip(runtime_pod), host_veth(runtime_pod)
    node.cni("DEL", conflist, POD, NETNS, add_result=runtime_pod["result"])
    node.cni("DEL", conflist, POD, NETNS, add_result=runtime_pod["result"])  # DEL is idempotent
    assert node.run("ip", "link", "show", veth).rc != 0, f"{veth} is still on {node.name}"
    assert node.run("ip", "netns", "exec", POD, "ip", "link", "show", "eth0").rc != 0
    assert node.run("test", "-e", f"{NETWORK_STATE}/{ip}").rc != 0, f"host-local still holds {ip}"
    deleted = node.run("ip", "netns", "delete", POD)
    runtime_pod["deleted"] = True
    assert deleted.rc == 0, deleted.stderr
    assert POD not in node.run("ip", "netns", "list").stdout.split()
    for pod in node.pods:  # our pods are untouched
        assert node.ping(pod["name"], node.gateway).rc == 0
