# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network policies of the inventory (podnet_network_policies) turned into what the network_policy module
enforces on a node, and into verify.yml's truth table (the policy cells, and what every other cell of the
matrix should see under the policies)."""
from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.handcni.podnet.plugins.module_utils._lazy import lazy

verify = lazy("ansible_collections.handcni.podnet.plugins.filter.verify")
model = lazy("ansible_collections.handcni.podnet.plugins.module_utils._policy")

PROBE_PORT = 80  # every lab pod's server listens here too: a port no policy has to name
MAX_PROBE_PORTS = 4


def _pods(hostvars: dict, workers: list, addressed: dict | None = None) -> list:
    """Every worker's pods as model.Pod, with the address the pod holds (`addressed`, {worker: [{name, ip}]}, else
    pod_network's allocation in this run, else the inventory's) and its namespace and labels."""
    pods = []
    for node in workers:
        hv = hostvars[node]
        held = {p["name"]: p["ip"] for p in (addressed or {}).get(node) or hv.get("pod_network_assigned") or []
                if isinstance(p, dict) and p.get("ip")}
        for index, pod in enumerate(hv.get("podnet_pods") or []):
            field = f"podnet_pods[{index}]"
            if not isinstance(pod, dict) or not pod.get("name"):
                raise AnsibleFilterError(f"{node}: {field}: each pod needs a 'name', got {pod!r}")
            ip = held.get(pod["name"]) or pod.get("ip")
            if not ip:
                raise AnsibleFilterError(f"{node}: {field}: pod {pod['name']} has no address yet (give its ip, or run "
                                         "the pod_network role first)")
            labels = _checked(model.labels_of, pod.get("labels"), f"{node}: {field}.labels")
            pods.append(model.Pod(node, pod["name"], str(pod.get("namespace") or model.DEFAULT_NAMESPACE), labels,
                                  str(ip)))
    return pods


def _checked(check, *args):
    """A check of the model, its ValueError as the one line of an AnsibleFilterError naming the field."""
    try:
        return check(*args)
    except ValueError as err:
        raise AnsibleFilterError(str(err)) from None


def _view(policies, hostvars: dict, workers: list, namespaces, addressed: dict | None = None) -> tuple:
    """(policies, pods, namespace labels) from the inventory; AnsibleFilterError names the field."""
    pods = _pods(hostvars, workers, addressed)
    return _checked(model.normalise_policies, policies), pods, _checked(model.namespace_labels, namespaces, pods)


def network_policy_rules(policies, hostvars: dict, workers: list, node: str, namespaces=None) -> list:
    """The network_policy module's `pods` on `node`: each of its pods that a policy isolates, with its allow
    lists ([] without policies)."""
    if not policies:
        return []
    return model.node_rules(*_view(policies, hostvars, workers, namespaces), node)


def policy_sysctls(policies, mode: str = "bridge") -> dict:
    """What enforcing policies needs of the node: in bridge mode, bridged pod traffic through the IPv4 forward
    hook (br_netfilter), where the rules are."""
    return {"net.bridge.bridge-nf-call-iptables": 1} if policies and mode == "bridge" else {}


def policy_ports(policies) -> list:
    """The TCP ports verify.yml probes every pod on: those the policies name (a range by its ends), and 80."""
    ports = {PROBE_PORT}
    for policy in _checked(model.normalise_policies, policies) if policies else []:
        for rules in (policy.ingress or ()) + (policy.egress or ()):
            for port in rules.ports or ():
                if port.protocol == "tcp" and port.port:
                    ports.update(p for p in (port.port, port.end_port) if p)
    return sorted(ports)[:MAX_PROBE_PORTS]


def policy_servers(pods: list, node: str, ports: list) -> list:
    """The lab's servers for the policy cells: every pod of the node answers HTTP on every probed port with
    its node/pod name (the same servers as the services', see service_servers). `pods`: [{name, ip}]."""
    return [{"pod": pod["name"], "kind": "http", "ip": pod["ip"], "port": int(port),
             "identity": f"{node}/{pod['name']}"} for pod in pods or [] for port in ports]


DENY_TIMEOUT = 2  # seconds without an answer: denied
ASKED_MANY = ("hairpin", "bgp_service")  # probes that ask their service many times already
MIXED_TRIES = 12  # asking a service whose endpoints the policies allow in part (1 s a try): one of two missed with 2**-12


def _connect(pod: str, ip: str, port: int) -> list:
    return ["ip", "netns", "exec", pod, "curl", "-sS", "--connect-timeout", str(DENY_TIMEOUT),
            "--max-time", str(DENY_TIMEOUT + 1), f"http://{ip}:{port}/"]


def policy_probes(policies, hostvars: dict, workers: list, node: str, ports: list, namespaces=None,
                  nodes: dict | None = None, addressed: dict | None = None) -> list:
    """The policy cells from this node's pods: a new TCP connection to every other pod of every worker on every
    probed port, to be answered (by that pod) or not at all, as the policies say."""
    if not policies:
        return []
    policies, pods, labels = _view(policies, hostvars, workers, namespaces, addressed)
    probes = []
    for src in (pod for pod in pods if pod.node == node):
        for dst in pods:
            if dst is src:
                continue
            for port in ports:
                ok = model.allowed(policies, pods, labels, src.ip, dst.ip, "tcp", int(port), nodes)
                probe = {"kind": "policy", "from": f"{node}/{src.name}", "to": f"{dst.node}/{dst.name} {dst.ip}:{port}",
                         "argv": _connect(src.name, dst.ip, port)}
                probes.append(dict(probe, expect_one_of=[f"{dst.node}/{dst.name}"]) if ok else dict(probe, deny=True))
    return probes


def _verdicts(flow: dict, judge) -> list:
    """For each target of a flow: True (every possible source allowed), False (none) or None (it depends)."""
    out = []
    for target in flow["targets"]:
        seen = {judge(source, target["ip"], target.get("port")) for source in target.get("sources") or flow["sources"]}
        out.append(seen.pop() if len(seen) == 1 else None)
    return out


def policy_judged(probes: list, policies, hostvars: dict, workers: list, namespaces=None,
                  nodes: dict | None = None, addressed: dict | None = None) -> list:
    """verify.yml's other cells under the policies: a probe whose every target the policies deny must get no
    answer; where only some endpoints of a service are allowed, only they may answer (asked several times,
    a refused try is no failure). A probe without a `flow` (or without policies) stays as it is."""
    if not policies:
        return probes
    policies, pods, labels = _view(policies, hostvars, workers, namespaces, addressed)
    out = []
    for probe in probes:
        flow = probe.get("flow")
        if not flow:
            out.append(probe)
            continue
        verdicts = _verdicts(flow, lambda source, ip, port: model.allowed(
            policies, pods, labels, source, ip, flow["protocol"], port, nodes))
        if all(verdicts):
            out.append(probe)
        elif not any(v is not False for v in verdicts):
            denied = {k: v for k, v in probe.items() if not k.startswith("expect")}
            out.append(dict(denied, deny=True, detail="denied by policy"))
        else:  # some endpoints answer, others must not: ask several times, a try with no answer is no failure
            allowed = [t.get("identity") for t, v in zip(flow["targets"], verdicts) if v is not False]
            tolerant = {k: v for k, v in probe.items() if k not in ("expect_nodes", "expect_one_of")}
            if "expect_line" in probe and probe["expect_line"] in allowed:
                pass
            elif "expect_one_of" in probe and all(allowed):
                tolerant["expect_one_of"] = allowed
            else:
                raise AnsibleFilterError(f"verify: {probe['kind']} from {probe['from']} to {probe['to']}: the policies "
                                         "allow only some of its endpoints, which this probe cannot tell apart")
            tries = 1 if probe["kind"] in ASKED_MANY else MIXED_TRIES
            loop = f'for try in $(seq {tries}); do "$@"; done; true'
            out.append(dict(tolerant, argv=["sh", "-c", loop, "sh"] + verify.quick(probe["argv"]),
                            detail="only the endpoints the policies allow answer"))
    return out


class FilterModule:
    def filters(self):
        return {"network_policy_rules": network_policy_rules, "policy_ports": policy_ports,
                "policy_sysctls": policy_sysctls,
                "policy_servers": policy_servers, "policy_probes": policy_probes, "policy_judged": policy_judged}
