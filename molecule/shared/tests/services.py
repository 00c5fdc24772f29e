"""Service traffic for the services tests (seed 004 labs 4 and 5): who answers a request or a datagram, and our NAT rules."""
from lab import HOSTVARS, OUTSIDE, WORKERS, playbook, recap, run_in  # noqa: F401  (re-exported for the tests)

UDP_ASK = ("import socket, sys\n"
           "six = ':' in sys.argv[1]\n"
           "s = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM)\n"
           "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
           "s.bind(('::' if six else '0.0.0.0', int(sys.argv[3])))\n"
           "s.settimeout(5)\n"
           "s.sendto(b'hi', (sys.argv[1], int(sys.argv[2])))\n"
           "print(s.recv(100).decode().strip())\n")


def services() -> dict:
    """The inventory's services by name."""
    return {s["name"]: s for s in HOSTVARS[WORKERS[0]]["podnet_services"]}


def first(protocol: str) -> dict:
    """The inventory's first service of a protocol, with two endpoint pods (the tests remove one)."""
    return next(s for s in services().values() if (s.get("protocol") or "tcp") == protocol
                and len([e for e in s["endpoints"] if e.get("pod")]) == 2)


def client() -> tuple:
    """(node, pod) of the first pod that is no service's endpoint: the seed's client pod worker1/netns1."""
    endpoints = {(e.get("node"), e.get("pod")) for s in services().values() for e in s["endpoints"]}
    return next((node, pod["name"]) for node in WORKERS for pod in HOSTVARS[node]["podnet_pods"]
                if (node, pod["name"]) not in endpoints)


def identities(service: dict) -> set:
    """Who answers for a service: the node/pod of each endpoint (the lab's servers say so)."""
    return {f"{e['node']}/{e['pod']}" for e in service["endpoints"]}


def node_ip(node: str) -> str:
    return HOSTVARS[node]["podnet_node_ip"]


def cluster_ip6(service: dict) -> str | None:
    """A dual-stack service's IPv6 cluster IP on a dual-stack lab (None: the service or the lab has no IPv6 side)."""
    if not HOSTVARS[WORKERS[0]].get("podnet_dual_stack") or "IPv6" not in (service.get("ip_families") or []):
        return None
    return next((ip for ip in service.get("cluster_ips") or [] if ":" in ip), None)


def http(node: str, url: str, times: int = 1, pod: str | None = None) -> list:
    """The answers of `times` requests (a connection each) from a node, or from one of its pods."""
    prefix = ["ip", "netns", "exec", pod] if pod else []
    return run_in(node, *prefix, "curl", "-sS", "--max-time", "5", *[url] * times).stdout.split()


def udp(node: str, target: str, port: int, source_port: int, pod: str | None = None) -> str:
    """The answer to one datagram sent from a fixed source port (so it belongs to one UDP flow)."""
    prefix = ["ip", "netns", "exec", pod] if pod else []
    return run_in(node, *prefix, "python3", "-c", UDP_ASK, target, str(port), str(source_port)).stdout.strip()


def ours(node: str) -> str:
    """Our NAT rules on a node, both backends, without counters."""
    return run_in(node, "sh", "-c", "iptables-save -t nat | grep HANDCNI; nft list table ip handcni 2>/dev/null"
                                    " | sed -E 's/counter packets [0-9]+ bytes [0-9]+//'").stdout
