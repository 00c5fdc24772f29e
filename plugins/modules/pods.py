#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: pods
short_description: Wire a node's pods in one run, as the sysctl, netns, bridge, veth and route modules would
version_added: 0.1.0
description:
  - Runs, in one process and in this order, what the M(handcni.podnet.sysctl), M(handcni.podnet.netns),
    M(handcni.podnet.bridge), M(handcni.podnet.veth) and M(handcni.podnet.route) modules do with the same
    options (seed labs 1-3). It is the same code, so the checks, actions, diff and results are the same.
  - With O(state=absent) the parts run the other way round (routes first, sysctls last).
  - Every option of every part is checked before anything changes. A namespace or bridge that an earlier part
    makes counts as there when a later part's options are checked.
  - One module process instead of five is what the pod_network role runs on every node (Ansible's cost per
    task and host is most of an unchanged converge).
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.pods.sysctl
  - handcni.podnet.pods.netns
  - handcni.podnet.pods.bridge
  - handcni.podnet.pods.veth
  - handcni.podnet.pods.route
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
options:
  state:
    description:
      - V(present) makes every part as listed; V(absent) removes the listed objects of every part (and puts the
        listed sysctls back). Only objects this collection made are removed.
    type: str
    choices: [present, absent]
    default: present
  prune:
    description:
      - With O(state=present), each part also removes the objects of its kind this collection made earlier and
        that are not listed now (and puts back the sysctls no longer listed).
    type: bool
    default: false
requirements:
  - pyroute2 >= 0.9 on the managed node
  - Linux, root (CAP_NET_ADMIN, CAP_SYS_ADMIN)
seealso:
  - module: handcni.podnet.sysctl
  - module: handcni.podnet.netns
  - module: handcni.podnet.bridge
  - module: handcni.podnet.veth
  - module: handcni.podnet.route
notes:
  - One restore record (O(restore)) holds the whole run, and the restore unit re-runs all of it.
"""

EXAMPLES = r"""
- name: Two pods on br0 (seed labs 1 and 3), everything else of ours on the node removed
  handcni.podnet.pods:
    sysctls: {net.ipv4.ip_forward: 1}
    names: [netns1, netns3]
    bridges: [{name: br0, addresses: [192.168.10.254/24]}]
    veths:
      - {name: veth1, peer_netns: netns1, master: br0, peer_addresses: [192.168.10.1/24],
         peer_routes: [{dst: default, via: 192.168.10.254}]}
      - {name: veth3, peer_netns: netns3, master: br0, peer_addresses: [192.168.10.3/24],
         peer_routes: [{dst: default, via: 192.168.10.254}]}
    routes: []
    prune: true
"""

RETURN = r"""
actions:
  description: What was changed, or in check mode what would be, one line per change, part after part.
  returned: always
  type: list
  elements: str
  sample: ["set net.ipv4.ip_forward 0 -> 1", "create netns netns1", "create bridge br0",
           "create veth veth1 <-> netns1/eth0"]
sysctls:
  description: As M(handcni.podnet.sysctl) returns it.
  returned: always
  type: dict
names:
  description: As M(handcni.podnet.netns) returns it.
  returned: always
  type: list
  elements: str
bridges:
  description: As M(handcni.podnet.bridge) returns it.
  returned: always
  type: list
  elements: dict
veths:
  description: As M(handcni.podnet.veth) returns it.
  returned: always
  type: list
  elements: dict
routes:
  description: As M(handcni.podnet.route) returns it.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _bridge as bridge
from ansible_collections.handcni.podnet.plugins.module_utils import _netns as netns
from ansible_collections.handcni.podnet.plugins.module_utils import _route as route
from ansible_collections.handcni.podnet.plugins.module_utils import _sysctl as sysctl
from ansible_collections.handcni.podnet.plugins.module_utils import _veth as veth
from ansible_collections.handcni.podnet.plugins.module_utils._module import Part, PodnetModule

# In the order they run: a pod's namespace before its veth, the bridge before its ports, a veth before its route
# (state=absent: the other way round).
BODIES = {"sysctl": sysctl, "netns": netns, "bridge": bridge, "veth": veth, "route": route}


def main():
    module = PodnetModule({option: spec for body in BODIES.values() for option, spec in body.OPTIONS.items()},
                          common=("state", "prune", "restore"))
    params = module.params

    def part(name: str, check_mode: bool) -> Part:
        body = BODIES[name]
        args = {option: params[option] for option in body.OPTIONS}
        return Part(module, name, dict(args, netns=None, state=params["state"], prune=params["prune"]), check_mode)

    # Every part's options first, before any change; what an earlier part makes counts as there (as in check mode).
    for name, body in BODIES.items():
        checked = part(name, True)
        with checked.errors():
            body.want(checked)
    results = {}
    for name, body in (BODIES.items() if params["state"] == "present" else reversed(BODIES.items())):
        run = part(name, module.check_mode)
        with run.errors():
            wanted = body.want(run)
        body.run(run, wanted)
        results.update(run.result)
        module.before[name], module.after[name] = run.before, run.after
        for key, value in run.canary.items():
            if isinstance(value, dict):
                module.canary[key].update(value)
            else:
                module.canary[key] += value
    module.finish(**results)


if __name__ == "__main__":
    main()
