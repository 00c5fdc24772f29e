"""The BGP side of the scenario's lab: the daemons' own view of their sessions, the kernels' routes,
and polling (BGP converges in seconds; tests wait for a state, never assert on how long it took)."""
import ipaddress
import json
import time

from lab import HOSTVARS, LEAF, POD_CIDRS, POD_CIDRS6, WORKERS, playbook, run_in

from ansible_collections.handcni.podnet.plugins.module_utils._services import announced

LEAF_VARS = HOSTVARS[LEAF]
DAEMON = LEAF_VARS.get("bgp_leaf_daemon", "frr")
AS_MODE = LEAF_VARS.get("bgp_as_mode", "per_node")
PATHSPACE = LEAF_VARS.get("bgp_frr_pathspace", "handcni")
LEAF_PROTO = "bgp" if DAEMON == "frr" else "bird"  # how the leaf's kernel marks learned routes
CIDRS = POD_CIDRS
NODE_IP = {w: HOSTVARS[w]["podnet_node_ip"] for w in WORKERS}
# dual stack: the IPv6 prefixes, over an IPv6 session per peer (named as the IPv4 one, then _v6)
CIDRS6 = POD_CIDRS6
NODE_IP6 = {w: HOSTVARS[w].get("podnet_node_ip6") for w in WORKERS}
SESSIONS = WORKERS + [f"{w}_v6" for w in WORKERS if w in CIDRS6]  # the leaf's sessions, by BIRD's names
PIDFILE = "/run/bird/bird.pid"
# {worker: service prefixes it announces} with bgp_advertise_services, else {}
ANNOUNCED = announced(LEAF_VARS.get("podnet_services") or [], WORKERS, LEAF_VARS.get("podnet_service_cidr")) \
    if LEAF_VARS.get("bgp_advertise_services") else {}


def until(read, done, timeout: float = 90.0, interval: float = 1.0):
    """Poll read() until done(value); return the last value (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(interval)
        value = read()
    return value


def routes(node: str, proto: str, version: int = 4) -> dict:
    """{destination: gateway} of the node's main table for routes of one protocol and family (a host route as
    X/32; an ECMP route's gateway None)."""
    out = run_in(node, "ip", f"-{version}", "-j", "route", "show", "proto", proto).stdout
    return {str(ipaddress.ip_network(r["dst"])): r.get("gateway") for r in json.loads(out or "[]")}


def pod_routes(node: str, proto: str) -> dict:
    """routes() to the pod CIDRs only (the leaf also holds the service prefixes when they are announced)."""
    return {dst: hop for dst, hop in routes(node, proto).items() if dst in CIDRS.values()}


def bird_sessions(node: str) -> dict:
    """{protocol: (state, since)} of the BGP protocols, from `birdc show protocols`."""
    out = run_in(node, "birdc", "show", "protocols").stdout
    found = {}
    for line in out.splitlines()[2:]:
        tokens = line.split()
        if len(tokens) >= 6 and tokens[1] == "BGP":
            found[tokens[0]] = (tokens[6] if len(tokens) > 6 else tokens[3], f"{tokens[4]} {tokens[5]}")
    return found


def frr_summary() -> dict:
    """{peer address: peer} of the leaf's `show bgp summary json`."""
    out = run_in(LEAF, "vtysh", "-N", PATHSPACE, "-c", "show bgp summary json").stdout
    data = json.loads(out)
    return {**data.get("ipv4Unicast", {}).get("peers", {}), **data.get("ipv6Unicast", {}).get("peers", {})}


def leaf_sessions() -> dict:
    """{session: (state, established count or since)} as the leaf's daemon reports them (SESSIONS' names)."""
    if DAEMON == "frr":
        by_ip = {**{ip: w for w, ip in NODE_IP.items()}, **{ip: f"{w}_v6" for w, ip in NODE_IP6.items() if ip}}
        return {by_ip[ip]: (p["state"], p["connectionsEstablished"]) for ip, p in frr_summary().items()}
    return bird_sessions(LEAF)


def leaf_address(worker: str, version: int = 4) -> str:
    """The leaf's address on the worker's subnet, of one family (the SVI's address or address6)."""
    ip = ipaddress.ip_address(NODE_IP[worker] if version == 4 else NODE_IP6[worker])
    for subnet in LEAF_VARS["podnet_leaf_subnets"]:
        iface = ipaddress.ip_interface(subnet["address" if version == 4 else "address6"])
        if ip in iface.network:
            return str(iface.ip)
    raise AssertionError(f"{worker} is on no leaf subnet")


def expected_gateway(node: str, other: str) -> str:
    """Where a node's route to another node's pods points: that node itself on a shared subnet with eBGP
    (the leaf keeps the third-party next hop), else the leaf."""
    gateway = leaf_address(node)
    if AS_MODE == "per_node" and leaf_address(other) == gateway:
        return NODE_IP[other]
    return gateway


def converge_bgp(*args: str):
    """Only the bgp role, on the hosts given with --limit (or all)."""
    return playbook("site.yml", "--tags", "bgp", *args)
