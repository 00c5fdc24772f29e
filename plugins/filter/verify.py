# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connectivity matrix of verify.yml: which probes to send, and how to report them."""
from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.module_utils._lazy import lazy

service_families = lazy("ansible_collections.handcni.podnet.plugins.module_utils._service_families")
_services = lazy("ansible_collections.handcni.podnet.plugins.module_utils._services")

ICMP_IP_HEADER = 28  # IPv4 header + ICMP header: payload = MTU - 28
ICMP6_IP_HEADER = 48  # IPv6 header + ICMPv6 header: payload = MTU - 48
# Each family's key in a pod's addresses (the ipam module's pods) and its ICMP headers.
FAMILIES = (("ip", 4, ICMP_IP_HEADER), ("ip6", 6, ICMP6_IP_HEADER))


def _ping(netns: str, target: str, size: int | None = None) -> list:
    argv = ["ip", "netns", "exec", netns, "ping", "-c1", "-W2", "-n"]
    if size is not None:
        argv += ["-M", "do", "-s", str(size)]
    return argv + [target]


def _flow(protocol: str, sources: list, targets: list) -> dict:
    """What a probe sends, for the policy judge (filter policy_judged): from one of `sources` (addresses) to
    each of `targets` ({ip, port?, identity?, sources?}: an endpoint may see another source, e.g. a node that
    masqueraded)."""
    return {"protocol": protocol, "sources": sources, "targets": targets}


def _addressed(pods: list, node: str) -> list:
    """The pods as the node holds them: each with the address it was given or allocated (the ipam module's
    `pods`), never the inventory's list, where an allocated pod has no `ip`."""
    for pod in pods or []:
        if not isinstance(pod, dict) or not pod.get("name") or not pod.get("ip"):
            raise AnsibleFilterError(f"{node}: {pod!r} is not a pod with its address; pass the ipam module's pods "
                                     "(pod_network_assigned), not podnet_pods")
    return pods or []


def _families(*groups: list) -> list:
    """(address key, version, ICMP headers) of every family all these pods hold: IPv4, and IPv6 when every pod
    has an IPv6 address too (dual stack)."""
    return [family for family in FAMILIES if all(pod.get(family[0]) for pods in groups for pod in pods)]


def same_node_probes(pods: list, node: str, node_ip: str, mtu: int, node_ip6: str | None = None) -> list:
    """Probes from every pod of a node: to each other pod, to the node, and a DF ping at the pod MTU, over
    each family the pods hold (to the node over IPv6 when its IPv6 address `node_ip6` is given).
    `pods`: the node's pods with their addresses, [{name, ip, ip6?}]."""
    pods = _addressed(pods, node)
    probes = []
    for key, version, headers in _families(pods):
        family = {"family": 6} if version == 6 else {}
        target = node_ip if version == 4 else node_ip6
        for src in pods:
            for dst in pods:
                if dst["name"] != src["name"]:
                    probes.append(_probe("same_node", node, src, node, dst, key, family))
            if target:
                probes.append({"kind": "same_node", "from": f"{node}/{src['name']}", "to": f"{node} {target}",
                               "argv": _ping(src["name"], target), "flow": _flow("icmp", [src[key]], [{"ip": target}]),
                               **family})
        if len(pods) > 1:
            probes.append(_probe("mtu", node, pods[0], node, pods[1], key, family, int(mtu) - headers,
                                 detail=f"DF ping at pod MTU {mtu}"))
    return probes


def _probe(kind: str, node: str, src: dict, worker: str, dst: dict, key: str, family: dict, size: int | None = None,
           **extra) -> dict:
    """A ping from pod `src` of `node` to pod `dst` of `worker`, over the family of address `key`."""
    return {"kind": kind, "from": f"{node}/{src['name']}", "to": f"{worker}/{dst['name']} {dst[key]}",
            "argv": _ping(src["name"], dst[key], size), "flow": _flow("icmp", [src[key]], [{"ip": dst[key]}]),
            **family, **extra}


def cross_node_probes(pods: list, node: str, others: dict, mtu: int) -> list:
    """From every pod to every pod of the other workers ({worker: pods}), and a DF ping at the pod MTU, over
    each family the pods hold. Every pod with its addresses, [{name, ip, ip6?}]."""
    pods = _addressed(pods, node)
    probes = []
    for worker, peers in sorted(others.items()):
        if worker == node:
            continue
        peers = _addressed(peers, worker)
        for key, version, headers in _families(pods, peers):
            family = {"family": 6} if version == 6 else {}
            probes += [_probe("cross_node", node, src, worker, dst, key, family) for src in pods for dst in peers]
            if pods and peers:
                probes.append(_probe("mtu", node, pods[0], worker, peers[0], key, family, int(mtu) - headers,
                                     detail=f"DF ping at pod MTU {mtu} across nodes"))
    return probes


def egress_probes(pods: list, node: str, node_ip: str, target: str, port: int, node_ip6: str | None = None,
                  target6: str | None = None, masquerade6: bool = True) -> list:
    """From every pod to a host outside the cluster, which answers with the source address it sees: the node's
    (masqueraded). Over IPv6 too where the pods, the node and the host have IPv6 addresses (dual stack): the
    node's IPv6 address, or the pod's own without IPv6 masquerade."""
    probes = []
    for key, version, _headers in _families(_addressed(pods, node)):
        seen_as, to = (node_ip, target) if version == 4 else (node_ip6, target6)
        if not to or not seen_as:
            continue
        url = f"http://{_host_port(to, port)}/"
        whose = "node" if version == 4 or masquerade6 else "pod"
        for pod in pods:
            expect = seen_as if whose == "node" else pod[key]
            probes.append({"kind": "egress", "from": f"{node}/{pod['name']}", "to": f"outside {url[7:-1]}",
                           "argv": ["ip", "netns", "exec", pod["name"], "curl", "-sS", "--max-time", "3", url],
                           "expect": expect, "whose": whose, "detail": f"source seen outside must be the {whose}'s {expect}",
                           "flow": _flow("tcp", [pod[key]], [{"ip": to, "port": int(port)}]),
                           **({"family": 6} if version == 6 else {})})
    return probes


# A UDP client for the service probes: one datagram to argv[1]:argv[2] from each of argv[4] (default 1) new
# sockets (a new flow each), print each answer (fixed text).
UDP_CLIENT = ("import socket, sys\n"
              "for _ in range(int(sys.argv[4]) if len(sys.argv) > 4 else 1):\n"
              "    s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)\n"
              "    s.settimeout(float(sys.argv[3]))\n"
              "    s.sendto(b'probe', (sys.argv[1], int(sys.argv[2])))\n"
              "    print(s.recv(512).decode().strip())\n")
HAIRPIN_TRIES = 20  # random balancing: a pod meets itself among 2 endpoints with 1 - 2**-20


def _identities(service: dict) -> list:
    """Who may answer for a service: the node/pod of each pod endpoint (the lab's servers say so)."""
    return [f"{e['node']}/{e['pod']}" for e in service.get("endpoints") or [] if e.get("node") and e.get("pod")]


def _endpoints(service: dict, everyone: dict | None, key: str = "ip") -> list | None:
    """A service's endpoints as flow targets {ip, port, identity?, node?}; `everyone` is {worker: [{name, ip, ip6?}]}
    (None: no flows); `key` the family's address of the pods, an {ip} endpoint counting for its own family."""
    if everyone is None:
        return None
    addresses = {(worker, pod["name"]): pod.get(key) for worker, pods in everyone.items() for pod in pods or []}
    default = service.get("target_port") or service["port"]
    targets = []
    for endpoint in service.get("endpoints") or []:
        port = int(endpoint.get("port") or default)
        if endpoint.get("node") and (endpoint["node"], endpoint.get("pod")) in addresses:
            targets.append({"ip": addresses[endpoint["node"], endpoint["pod"]], "port": port, "node": endpoint["node"],
                            "identity": f"{endpoint['node']}/{endpoint['pod']}"})
        elif endpoint.get("ip") and (":" in endpoint["ip"]) == (key == "ip6"):
            targets.append({"ip": endpoint["ip"], "port": port})
    return targets


def _service_flow(service: dict, sources: list, targets: list | None) -> dict:
    return {"flow": _flow(service.get("protocol") or "tcp", sources, targets)} if targets is not None else {}


def _from_outside(service: dict, targets: list | None, source_ip: str | None, nodes: dict, via: list) -> list | None:
    """Targets of traffic from outside entering by one of the `via` workers: an endpoint on the node it entered
    sees the client, one on another node sees the node that masqueraded it (externalTrafficPolicy Cluster);
    Local keeps the client and only this node's endpoints."""
    if targets is None or source_ip is None:
        return None
    local = (service.get("external_traffic_policy") or "Cluster") == "Local"
    out = []
    for target in targets:
        if local and target.get("node") not in via:
            continue
        sources = [source_ip] if local else \
            [source_ip] * (target.get("node") in via) + [nodes[w] for w in via if w != target.get("node")]
        out.append(dict(target, sources=sources))
    return out


def _request(service: dict, target: str, port, prefix: list, tries: int = 1) -> list:
    """argv asking the service at target:port once (or `tries` times), run after `prefix`."""
    if (service.get("protocol") or "tcp") == "udp":
        return prefix + ["python3", "-c", UDP_CLIENT, target, str(port), "3"] + ([str(tries)] if tries > 1 else [])
    return prefix + ["curl", "-sS", "--max-time", "3"] + [f"http://{_host_port(target, port)}/"] * tries


def _host_port(address: str, port) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _sides(services: list, dual_stack: bool) -> list:
    """(the service's entry of each family it has on the cluster, its pods' address key, its cell marker)."""
    out = []
    for index, service in enumerate(services or []):
        try:
            sides = service_families.families(service, dual_stack, f"podnet_services[{index}]")
        except ValueError as err:
            raise AnsibleFilterError(str(err)) from None
        out += [(service_families.entry(service, version, ip), "ip6" if version == 6 else "ip",
                 {"family": 6} if version == 6 else {}) for version, ip in sides]
    return out


def quick(argv: list, seconds: int = 1) -> list:
    """A request of _request waiting `seconds` at most for each answer instead of 3 (a probe asking many times
    where some tries get no answer by design)."""
    out = list(argv)
    for index, token in enumerate(out[:-1]):
        if token == "--max-time" or token == UDP_CLIENT:
            at = index + 1 if token == "--max-time" else index + 3  # UDP client: target, port, timeout
            out[at] = str(seconds)
    return out


def _answered(kind: str, source: str, service: dict, target: str, argv: list, **expect) -> dict:
    return {"kind": kind, "from": source, "to": f"{service['name']} {target}", "argv": argv, **expect}


def service_probes(services: list, node: str, node_ip: str, pods: list, everyone: dict | None = None,
                   dual_stack: bool = False, node_ip6: str | None = None) -> list:
    """Probes of every service from one worker (seed 004 labs 4 and 5): the cluster IP from a pod that is
    not one of its endpoints and from the node (kinds clusterip, udp), the node port on the node's own
    address (nodeport), and every endpoint pod of this node reaching itself through its service (hairpin).
    `everyone` ({worker: pods}) gives each probe its flow for the policy judge. A service's IPv6 side (dual stack)
    is probed the same way over IPv6 (cells marked family 6), its node port on the node's `node_ip6`."""
    probes = []
    for service, key, family in _sides(services, dual_stack):
        node_address = node_ip if key == "ip" else node_ip6
        addresses = {pod["name"]: pod.get(key) for pod in pods or []}
        identities = _identities(service)
        targets = _endpoints(service, everyone, key)
        expect = {"expect_one_of": identities, **family} if identities else dict(family)
        kind = "udp" if (service.get("protocol") or "tcp") == "udp" else "clusterip"
        cluster = _host_port(service["cluster_ip"], service["port"])
        mine = [e["pod"] for e in service.get("endpoints") or [] if e.get("node") == node]
        client = next((pod["name"] for pod in pods or [] if pod["name"] not in mine), None)
        if client:
            probes.append(_answered(kind, f"{node}/{client}", service, cluster, _request(
                service, service["cluster_ip"], service["port"], ["ip", "netns", "exec", client]), **expect,
                **_service_flow(service, [addresses[client]], targets)))
        if node_address:
            probes.append(_answered(kind, node, service, cluster,
                                    _request(service, service["cluster_ip"], service["port"], []), **expect,
                                    **_service_flow(service, [node_address], targets)))
        if service.get("node_port") and _services.answers_outside(service, node) and node_address:
            local = _from_outside(service, targets, node_address, {node: node_address}, [node])
            probes.append(_answered("nodeport", node, service, _host_port(node_address, service["node_port"]),
                                    _request(service, node_address, service["node_port"], []), **expect,
                                    **_service_flow(service, [node_address], local)))
        if kind == "clusterip":
            for pod in mine:
                probes.append(_answered("hairpin", f"{node}/{pod}", service, cluster, _request(
                    service, service["cluster_ip"], service["port"], ["ip", "netns", "exec", pod], HAIRPIN_TRIES),
                    expect_line=f"{node}/{pod}", **family, **_service_flow(service, [addresses[pod]], targets)))
    return probes


def nodeport_probes(services: list, source: str, nodes: dict, everyone: dict | None = None,
                    source_ip: str | None = None, nodes6: dict | None = None, source_ip6: str | None = None) -> list:
    """From a host outside the cluster (address `source_ip`) to every service's node port on every worker
    ({worker: address}); a service's IPv6 side (dual stack: `nodes6` given) on every worker's IPv6 address
    ({worker: podnet_node_ip6}, from `source_ip6`), its cells marked family 6."""
    probes = []
    for service, key, family in _sides(services, nodes6 is not None):
        if not service.get("node_port"):
            continue
        identities = _identities(service)
        targets = _endpoints(service, everyone, key)
        addresses, client = (nodes, source_ip) if key == "ip" else ({w: a for w, a in nodes6.items() if a}, source_ip6)
        if key == "ip6" and not client:
            continue  # the host outside has no IPv6 address
        for worker, address in sorted(addresses.items()):
            if not _services.answers_outside(service, worker):
                continue
            probes.append(_answered("nodeport", source, service, f"{worker} {_host_port(address, service['node_port'])}",
                                    _request(service, address, service["node_port"], []),
                                    **({"expect_one_of": identities} if identities else {}), **family,
                                    **_service_flow(service, [client],
                                                    _from_outside(service, targets, client, addresses, [worker]))))
    return probes


SPREAD_TRIES = 16  # new connections to a service address from outside: by ECMP and at random, 2 nodes miss with 2**-15


def bgp_service_probes(services: list, source: str, service_cidr: str | None = None, everyone: dict | None = None,
                       source_ip: str | None = None, nodes: dict | None = None) -> list:
    """From a host outside the cluster to every service address the nodes announce by BGP (bgp_advertise_services):
    each external IP and load-balancer IP, and the cluster IP when the service CIDR is announced, asked
    SPREAD_TRIES times (a new connection each time). Every answer comes from an endpoint, and from more than one
    node when the endpoints are on several (ECMP at the leaf, then the node's choice)."""
    probes = []
    for service in services or []:
        addresses = [address for _key, address in _services.external_addresses(service)] + \
            ([service["cluster_ip"]] if service_cidr else [])
        identities = _identities(service)
        answering = {identity.split("/")[0] for identity in identities}
        expect = {"expect_one_of": identities, "expect_nodes": min(len(answering), 2)} if identities else {}
        # entering by any worker (ECMP at the leaf)
        flow = _service_flow(service, [source_ip], _from_outside(service, _endpoints(service, everyone), source_ip,
                                                                 nodes or {}, sorted(nodes or {})))
        for address in addresses:
            probes.append(_answered("bgp_service", source, service, f"{address}:{service['port']}",
                                    _request(service, address, service["port"], [], SPREAD_TRIES), **expect, **flow))
    return probes


def ecmp_probes(services: list, leaf: str, workers: dict, service_cidr: str | None = None) -> list:
    """On the leaf: its route to every announced service prefix has one next hop per announcing node
    ({worker: address})."""
    prefixes: dict = {}
    for worker, announced_here in _services.announced(services, list(workers), service_cidr).items():
        for prefix in announced_here:
            prefixes.setdefault(prefix, []).append(workers[worker])
    return [{"kind": "ecmp", "from": leaf, "to": prefix, "argv": ["ip", "-4", "route", "show", "exact", prefix],
             "expect_nexthops": sorted(hops)} for prefix, hops in prefixes.items()]


def _nexthops(output: list) -> list:
    """The gateways of one route as `ip route show` prints it: `via X` on its line, or one `nexthop via X`
    line each (ECMP)."""
    hops = []
    for line in output:
        words = line.split()
        if "via" in words[:-1]:
            hops.append(words[words.index("via") + 1])
    return sorted(hops)


def _expected(probe: dict, output: list) -> tuple:
    """(ok, detail on success) of a probe's expectation on its output lines."""
    if "expect" in probe:
        return output == [probe["expect"]], f"seen as {output[0] if output else ''} ({probe.get('whose', 'node')} address)"
    if "expect_nexthops" in probe:
        hops = _nexthops(output)
        return hops == probe["expect_nexthops"], f"next hops {', '.join(hops) or 'none'}"
    if "expect_one_of" in probe:
        ok = bool(output) and all(line in probe["expect_one_of"] for line in output)
        nodes = {line.split("/")[0] for line in output}
        if len(nodes) < probe.get("expect_nodes", 0):
            return False, f"answered by {len(nodes)} node(s), expected {probe['expect_nodes']}"
        return ok, "answered by " + ", ".join(sorted(set(output)))
    if "expect_line" in probe:
        return probe["expect_line"] in output, f"reached itself ({len(output)} answers)"
    return True, None


def probe_cells(results: list) -> list:
    """Registered loop results of the probes -> cells {kind, from, to, ok, detail}."""
    cells = []
    for result in results:
        probe = result["item"]
        output = (result.get("stdout") or "").strip().splitlines()
        if probe.get("deny"):  # a connection the policies deny: no answer at all (a refusal is an answer)
            ok = result.get("rc") != 0 and "refused" not in (result.get("stderr") or "")
            reason = probe.get("detail") or "denied by policy"
            cells.append({"kind": probe["kind"], "family": probe.get("family", 4), "from": probe["from"],
                          "to": probe["to"], "ok": ok,
                          "detail": f"no answer ({reason})" if ok else f"{reason}, but answered: {' '.join(output[-1:])}"})
            continue
        expected, shown = _expected(probe, output)
        ok = result.get("rc") == 0 and expected
        if shown and ok:
            probe = dict(probe, detail=shown)
        rtt = RTT.search(output[-1]) if output else None
        detail = probe.get("detail") or (f"rtt {rtt.group(1)} ms" if rtt else "")
        if not ok:
            detail = " ".join(filter(None, [probe.get("detail"), shown if result.get("rc") == 0 else None,
                                            (result.get("stderr") or "").strip(), output[-1] if output else "no reply"]))
        cells.append({"kind": probe["kind"], "family": probe.get("family", 4), "from": probe["from"], "to": probe["to"],
                      "ok": ok, "detail": detail})
    return cells


def verify_table(cells: list) -> str:
    """A readable table of the matrix, one line per cell, each marked by its address family."""
    header = ("", "KIND", "IP", "FROM", "TO", "DETAIL")
    rows = [("ok" if c["ok"] else "FAIL", c["kind"], f"v{c.get('family', 4)}", c["from"], c["to"], c["detail"])
            for c in cells]
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(5)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r[:5], widths)) + "  " + r[5] for r in [header] + rows]
    passed = sum(c["ok"] for c in cells)
    lines.append(f"{passed}/{len(cells)} cells passed")
    return "\n".join(lines)


RTT = re.compile(r"= [\d.]+/([\d.]+)/")


class FilterModule:
    def filters(self):
        return {
            "same_node_probes": same_node_probes,
            "egress_probes": egress_probes,
            "service_probes": service_probes,
            "nodeport_probes": nodeport_probes,
            "bgp_service_probes": bgp_service_probes,
            "ecmp_probes": ecmp_probes,
            "cross_node_probes": cross_node_probes,
            "probe_cells": probe_cells,
            "verify_table": verify_table,
        }
