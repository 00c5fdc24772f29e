# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The declared network as a Graphviz picture: the leaf, its subnets, the nodes, their pods,
and how pod traffic crosses nodes (direct, tunnelled, or learnt by BGP)."""
from __future__ import annotations

import ipaddress
import itertools

from ansible_collections.handcni.podnet.plugins.module_utils import _topology as topology


def _quote(text: str) -> str:
    """A DOT string; line breaks become DOT's centred line breaks."""
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _crossing(a: dict, b: dict, method: str, encapsulation: str) -> str | None:
    """How pod traffic between two workers travels, or None when it is not set up."""
    if method in ("ipip", "vxlan"):
        if encapsulation == "cross_subnet" and a["subnet"] == b["subnet"]:
            return "direct"
        return method
    return None


def topology_dot(hostvars: dict, groups: dict) -> str:
    """Graphviz DOT of the inventory, from the same variables the roles use."""
    leaves = groups.get("leaf", [])
    leaf = leaves[0] if leaves else None
    subnets = [(s["name"], ipaddress.ip_interface(s["address"]))
               for s in (hostvars[leaf].get("podnet_leaf_subnets", []) if leaf else [])]
    workers = set(groups.get("workers", []))
    nodes = []
    for name in sorted(h for h in hostvars if h != leaf and "podnet_node_ip" in hostvars[h]):
        hv = hostvars[name]
        ip = ipaddress.ip_address(hv["podnet_node_ip"])
        subnet = next((n for n, iface in subnets if ip in iface.network), "unattached")
        nodes.append({"name": name, "ip": str(ip), "subnet": subnet, "worker": name in workers, "vars": hv})
    try:
        cidrs = topology.worker_pod_cidrs(hostvars, groups.get("workers", []))
    except ValueError:
        cidrs = {}  # site.yml names the problem; the picture shows what it can
    some = nodes[0]["vars"] if nodes else {}
    method = some.get("cross_node_method", "none")
    encapsulation = some.get("cross_node_encapsulation", "always")
    mode = some.get("pod_network_mode", "bridge")

    lines = [
        "graph podnet {",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, labelloc=t, '
        f'label={_quote(f"handcni.podnet: pods {mode}, cross-node {method}" + (f" ({encapsulation})" if method in ("ipip", "vxlan") else ""))}];',
        '  node [fontname="Helvetica", fontsize=10, shape=box, style="rounded,filled", fillcolor="#ffffff"];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    if leaf:
        label = "\n".join([leaf] + [f"{n} {iface}" for n, iface in subnets])
        lines.append(f'  {_quote(leaf)} [label={_quote(label)}, shape=box3d, fillcolor="#dbe8f7"];')
    for index, node in enumerate(nodes):
        hv = node["vars"]
        label = f"{node['name']}\n{hv.get('podnet_node_interface', 'eth0')} {node['ip']}"
        if node["name"] in cidrs:
            label += f"\npods {cidrs[node['name']]}"
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append('    style="rounded"; color="#9aa5b1";')
        lines.append("    label=\"\";")
        fill = "#e6f4ea" if node["worker"] else "#fdf2e0"
        lines.append(f"    {_quote(node['name'])} [label={_quote(label)}, fillcolor={_quote(fill)}];")
        for pod in hv.get("podnet_pods", []) if node["worker"] else []:
            pod_id = f"{node['name']}/{pod['name']}"
            pod_label = f"{pod['name']}\n{pod.get('ip', 'allocated')}"
            lines.append(f"    {_quote(pod_id)} [label={_quote(pod_label)}, shape=ellipse, fillcolor=\"#f1f3f4\"];")
            lines.append(f"    {_quote(node['name'])} -- {_quote(pod_id)} "
                         f"[label={_quote('br0' if mode == 'bridge' else pod.get('veth', 'veth'))}];")
        lines.append("  }")
        if leaf:
            lines.append(f"  {_quote(leaf)} -- {_quote(node['name'])} [label={_quote(node['subnet'])}];")
    crossers = [n for n in nodes if n["worker"]]
    if method == "bgp":
        for node in crossers:
            lines.append(f"  {_quote(node['name'])} -- {_quote(leaf)} [style=dotted, color=\"#8e24aa\", "
                         "label=\"BGP\", constraint=false];")
    for a, b in itertools.combinations(crossers, 2):
        how = _crossing(a, b, method, encapsulation)
        if how:
            style = "dashed" if how != "direct" else "solid"
            color = {"ipip": "#d93025", "vxlan": "#1a73e8", "direct": "#188038"}[how]
            lines.append(f"  {_quote(a['name'])} -- {_quote(b['name'])} [style={style}, color={_quote(color)}, "
                         f"label={_quote(how)}, constraint=false];")
    lines.append("}")
    return "\n".join(lines) + "\n"


class FilterModule:
    def filters(self):
        return {"topology_dot": topology_dot}
