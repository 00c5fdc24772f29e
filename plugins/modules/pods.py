#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: pods
short_description: A node's pods, addressed and wired in one run (seed labs 1-3)
version_added: 0.1.0
description:
  - Gives every pod its addresses and wires it to the node, in one process, as the M(handcni.podnet.ipam),
    M(handcni.podnet.sysctl), M(handcni.podnet.netns), M(handcni.podnet.bridge), M(handcni.podnet.veth) and
    M(handcni.podnet.route) modules would one after the other, with their code (the same checks, actions, diff
    and results).
  - Each pod gets a stable address from O(cidr) (and one from O(cidr6)), its own network namespace and a veth
    pair to the node. In O(mode=bridge) the node's side of every veth is a port of the bridge O(bridge), which
    holds the pods' gateway (the first address of the CIDR). In O(mode=routed) the node routes each pod's address
    to its veth, and the pod's gateway is answered as O(gateway_style) says.
  - Every option is checked, and every pod's address worked out, before anything changes.
  - It returns the pods' addresses and the sysctls; what each part made is in RV(actions), and in the diff.
  - The pod_network role runs it once per node; one module process rather than six is most of what an unchanged
    converge costs less (Ansible's cost per task and host is most of that converge).
author: handcni.podnet team (@handcni)
options:
  pods:
    description: The node's pods.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The pod's network namespace.
        type: str
        required: true
      ip:
        description: A fixed address from O(cidr); omit to have one allocated and kept.
        type: str
      ip6:
        description: A fixed address from O(cidr6); omit to have one allocated and kept.
        type: str
      veth:
        description: The node's side of the pod's veth; omit for C(veth) and 11 hex digits of a hash of the name.
        type: str
  cidr:
    description: The node's pod CIDR. Its first address is the pods' gateway and never given to a pod.
    type: str
    required: true
  reserved:
    description: Addresses of O(cidr) never given to a pod, besides the gateway.
    type: list
    elements: str
    default: []
  reserved6:
    description: Addresses of O(cidr6) never given to a pod, besides the gateway.
    type: list
    elements: str
    default: []
  mode:
    description: The pods on a bridge (seed labs 1 and 3), or routed to each pod's veth (seed lab 2).
    type: str
    choices: [bridge, routed]
    default: bridge
  gateway_style:
    description:
      - With O(mode=routed), who answers for the pod's gateway (seed lab 2) -
        V(host_ip), the gateway address on the node's side of every veth;
        V(proxy_arp), V(169.254.1.1) (and V(fe80::1)) held by nobody and answered by proxy ARP (NDP), as Calico;
        V(veth_gateway), the gateway on a veth pair of its own in the node, as Cilium's C(cilium_host).
    type: str
    choices: [host_ip, proxy_arp, veth_gateway]
    default: host_ip
  bridge:
    description: The bridge's name (O(mode=bridge)).
    type: str
    default: br0
  mtu:
    description: The MTU of the bridge and of both sides of every veth.
    type: int
    default: 1500
  hairpin:
    description: Hairpin mode on every bridge port, so a pod reaches itself through a service (O(mode=bridge)).
    type: bool
    default: true
  sysctls:
    description:
      - "Sysctls of the node, as M(handcni.podnet.sysctl) takes them, for example C(net.ipv4.ip_forward: 1)."
    type: dict
    default: {}
  state_file:
    description: Where the sysctls' values found before our changes are recorded.
    type: path
    default: /var/lib/handcni/sysctl.json
  prune:
    description:
      - Also remove what this collection made of each kind and is not listed now - pods (their namespace, veth and
        route, and their addresses are released), the bridge (in routed mode), the pod routes (in bridge mode) - and
        put back the sysctls no longer listed. Objects made by anyone else are never touched.
    type: bool
    default: false
  restore:
    description:
      - Keep this run as the node's restore record of this name, as the other modules do (see
        M(handcni.podnet.veth)); the unit C(handcni-podnet-restore.service) re-runs the whole run when its check
        fails (a pod's namespace, a veth, the bridge, a route or a sysctl gone). Check mode writes nothing.
      - Omit on nodes without the restore unit (the namespace lab).
    type: str
extends_documentation_fragment:
  - handcni.podnet.ipam
  - handcni.podnet.common.attributes
requirements:
  - pyroute2 >= 0.9 on the managed node
  - Linux, root (CAP_NET_ADMIN, CAP_SYS_ADMIN)
seealso:
  - module: handcni.podnet.ipam
  - module: handcni.podnet.netns
  - module: handcni.podnet.bridge
  - module: handcni.podnet.veth
  - module: handcni.podnet.route
notes:
  - The pods' host routes carry route protocol 201, as M(handcni.podnet.route) marks them for the pod_network role.
"""

EXAMPLES = r"""
- name: Two pods on br0 (seed labs 1 and 3), whatever else of ours was on the node removed
  handcni.podnet.pods:
    pods:
      - {name: netns1, ip: 192.168.10.1, veth: veth1}
      - {name: netns3, ip: 192.168.10.3, veth: veth3}
    cidr: 192.168.10.0/24
    sysctls: {net.ipv4.ip_forward: 1}
    prune: true

- name: The same pods routed, Calico's way (seed lab 2)
  handcni.podnet.pods:
    pods: [{name: netns1, ip: 192.168.10.1}, {name: netns3, ip: 192.168.10.3}]
    cidr: 192.168.10.0/24
    mode: routed
    gateway_style: proxy_arp
    sysctls: {net.ipv4.ip_forward: 1}
    prune: true
"""

RETURN = r"""
pods:
  description: Every pod with its addresses, as M(handcni.podnet.ipam) returns them.
  returned: always
  type: list
  elements: dict
  sample: [{name: netns1, ip: 192.168.10.1}]
free:
  description: Addresses of O(cidr) left for more pods.
  returned: always
  type: int
free6:
  description: Addresses of O(cidr6) left (counted, never listed).
  returned: with O(cidr6)
  type: int
sysctls:
  description: The listed sysctls and their values after the run.
  returned: always
  type: dict
actions:
  description: What was changed, or in check mode what would be, one line per change, in the order of the parts.
  returned: always
  type: list
  elements: str
  sample: ["allocate 192.168.10.1 to netns1", "set net.ipv4.ip_forward 0 -> 1", "create netns netns1",
           "create bridge br0", "create veth veth1 <-> netns1/eth0"]
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _bridge as bridge
from ansible_collections.handcni.podnet.plugins.module_utils import _ipam as ipam
from ansible_collections.handcni.podnet.plugins.module_utils import _netns as netns
from ansible_collections.handcni.podnet.plugins.module_utils import _route as route
from ansible_collections.handcni.podnet.plugins.module_utils import _sysctl as sysctl
from ansible_collections.handcni.podnet.plugins.module_utils import _validate as validate
from ansible_collections.handcni.podnet.plugins.module_utils import _veth as veth
from ansible_collections.handcni.podnet.plugins.module_utils._module import Part, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._netlink import Sessions
from ansible_collections.handcni.podnet.plugins.module_utils._topology import pod_gateway
from ansible_collections.handcni.podnet.plugins.module_utils._wiring import GATEWAY_STYLES, MODES, pod_wiring

POD_ROUTES = 201  # the route protocol of the pods' host routes (the cross_node role's are 202)
ADDRESSES = ("cidr", "cidr6", "reserved", "reserved6", "leases_dirs", "state_dir")
WIRING = dict(
    mode=dict(type="str", default="bridge", choices=list(MODES)),
    gateway_style=dict(type="str", default="host_ip", choices=list(GATEWAY_STYLES)),
    bridge=dict(type="str", default="br0"),
    mtu=dict(type="int", default=1500),
    hairpin=dict(type="bool", default=True),
)
SPEC = dict(
    pods=dict(type="list", elements="dict", required=True,
              options=dict(name=dict(type="str", required=True), ip=dict(type="str"), ip6=dict(type="str"),
                           veth=dict(type="str"))),
    **{option: ipam.OPTIONS[option] for option in ADDRESSES},
    **WIRING,
    sysctls=dict(type="dict", default={}),
    state_file=sysctl.OPTIONS["state_file"],
)
# The parts after the addresses, in the order they run: a pod's namespace before its veth, the bridge before its
# ports, a veth before its route.
BODIES = {"sysctl": sysctl, "netns": netns, "bridge": bridge, "veth": veth, "route": route}
# The parts whose results the module returns: the wiring is the pods' (with --diff, the diff shows it), and at 300
# pods a node returning every veth costs the controller more than the module's run.
RETURNED = ("ipam", "sysctl")


def addresses(params: dict) -> dict:
    """The ipam part's options: the pods, the CIDRs, and their gateways reserved besides the listed addresses."""
    args = {option: params[option] for option in ADDRESSES}
    args["pods"] = [{key: pod[key] for key in ("name", "ip", "ip6")} for pod in params["pods"]]
    with_gateway = [("reserved", params["cidr"])] + ([("reserved6", params["cidr6"])] if params["cidr6"] else [])
    for key, cidr in with_gateway:
        args[key] = [pod_gateway(cidr)] + args[key]
    return args


def options(params: dict, allocation: list) -> dict:
    """Every other part's options, from the pods, their addresses and the wiring options."""
    wiring = pod_wiring(params["pods"], allocation, params["cidr"], params["mode"], params["gateway_style"],
                        params["bridge"], params["mtu"], params["hairpin"], params["cidr6"] or "",
                        fields={"mode": "mode", "gateway_style": "gateway_style", "pods": "pods"})
    return {"sysctl": {"sysctls": params["sysctls"], "state_file": params["state_file"]},
            "netns": {"names": [pod["name"] for pod in params["pods"]]},
            "bridge": {"bridges": wiring["bridges"]}, "veth": {"veths": wiring["veths"]},
            "route": {"routes": wiring["routes"], "protocol": POD_ROUTES}}


def main():
    module = PodnetModule(SPEC, common=("prune", "restore"))
    params = module.params

    def run(check_mode: bool, actions: list, dry: bool = False) -> list:
        """Every part in order, each with the addresses the first one gave, all in one netlink session per
        namespace; `dry`: the addresses in check mode and only the others' options checked."""
        with module.errors(), Sessions() as sessions:
            done = [Part(module, "ipam", addresses(params), check_mode, actions)]
            ipam.run(done[0], ipam.want(done[0]))
            for name, args in options(params, done[0].result["pods"]).items():
                done.append(Part(module, name, dict(args, netns=None, state="present", prune=params["prune"]),
                                 check_mode, actions, sessions))
                wanted = BODIES[name].want(done[-1])
                if not dry:
                    BODIES[name].run(done[-1], wanted)
        return done

    with module.errors():  # the options the parts get only in another form (the gateways, the links' names and MTU)
        ipam.checked_cidr6(params["cidr6"], validate.network(params["cidr"], "cidr"))
        validate.ifname(params["bridge"], "bridge")
        validate.mtu(params["mtu"], "mtu")
    if not module.check_mode:  # every option checked and every address worked out before anything changes
        run(True, [], dry=True)  # (in check mode the run below is itself that pass)
    results = {}
    for done in run(module.check_mode, module.actions):
        if done.name in RETURNED:
            results.update(done.result)
        module.before[done.name], module.after[done.name] = done.before, done.after
        for key, value in done.canary.items():
            if isinstance(value, dict):
                module.canary[key].update(value)
            else:
                module.canary[key] += value
    module.finish(**results)


if __name__ == "__main__":
    main()
