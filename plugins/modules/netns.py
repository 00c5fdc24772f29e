#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: netns
short_description: Manage named network namespaces (pods) with their loopback up
version_added: 0.1.0
description:
  - Creates and removes named network namespaces, like C(ip netns add netns1) followed by
    C(ip netns exec netns1 ip link set lo up) (seed lab 1).
  - A namespace this module made is marked by the alias C(handcni.podnet netns) on its loopback.
    A listed namespace that exists without that mark was made by someone else; the module fails
    naming it before any change, and never removes it.
author: handcni.podnet team (@handcni)
options:
  names:
    description: Names of the namespaces, as in C(ip netns list).
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) makes the namespaces exist with their loopback up.
      - V(absent) removes them, with every link inside (a pod's veth goes with it).
    type: str
    choices: [present, absent]
    default: present
  prune:
    description: With O(state=present), also remove namespaces this module made earlier that are not listed.
    type: bool
    default: false
requirements:
  - pyroute2 >= 0.9 on the managed node
  - Linux, root (CAP_SYS_ADMIN)
extends_documentation_fragment:
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
seealso:
  - module: handcni.podnet.veth
"""

EXAMPLES = r"""
- name: Two pods on a node (seed lab 1)
  handcni.podnet.netns:
    names: [netns1, netns3]
    prune: true

- name: Remove a pod
  handcni.podnet.netns:
    names: [netns3]
    state: absent
"""

RETURN = r"""
actions:
  description: What was changed, or in check mode what would be.
  returned: always
  type: list
  elements: str
  sample: ["create netns netns1", "delete netns netns3"]
names:
  description: The listed names.
  returned: always
  type: list
  elements: str
  sample: [netns1, netns3]
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _validate as validate
from ansible_collections.handcni.podnet.plugins.module_utils._links import NETNS_ALIAS, netns_is_ours
from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._netlink import (
    Sessions,
    create_netns,
    list_netns,
    netns_exists,
    netns_path,
    netns_unpinned,
    open_session,
    remove_netns,
)


def mark_here() -> None:
    """Bring up the loopback of the namespace this thread is in and mark it as ours, before the
    namespace is pinned: a pinned namespace is a marked one."""
    with open_session(None) as ipr:
        ipr.link("set", index=1, state="up", ifalias=NETNS_ALIAS)


def main():
    module = PodnetModule(
        argument_spec=dict(names=dict(type="list", elements="str", required=True)),
        common=("state", "prune", "restore"),  # namespaces always live in the node's /run/netns
    )
    params = module.params
    with module.errors():
        names = [validate.netns(name, f"names[{i}]") for i, name in enumerate(params["names"])]
        validate.unique(names, None, "names")
        with Sessions() as sessions:
            actions = []
            for index, name in enumerate(names):
                exists = netns_exists(name)
                if exists and not netns_is_ours(sessions[name]):
                    raise ValueError(f"names[{index}]: netns {name} exists and was not made by handcni.podnet; "
                                     "it is left alone")
                present = params["state"] == "present"
                module.before[name] = {"name": name, "present": exists}
                module.after[name] = {"name": name, "present": present}
                debris = " (an empty file left by a create cut short)" if netns_unpinned(name) else ""
                if present and not exists:
                    actions.append(Action(f"create netns {name}{debris}",
                                          lambda n=name: create_netns(n, setup=mark_here)))
                elif not present and (exists or debris):
                    actions.append(Action(f"delete netns {name}{debris}", lambda n=name: remove_netns(n)))
            if params["prune"] and params["state"] == "present":
                for name in sorted(set(list_netns()) - set(names)):
                    if netns_is_ours(sessions[name]):
                        module.forget(name)
                        actions.append(Action(f"delete netns {name}", lambda n=name: remove_netns(n)))
            module.apply(actions)
    module.canary["files"] = [netns_path(name) for name in names]
    module.finish(names=names)


if __name__ == "__main__":
    main()
