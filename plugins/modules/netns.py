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

from ansible_collections.handcni.podnet.plugins.module_utils import _netns as body
from ansible_collections.handcni.podnet.plugins.module_utils._module import run_alone


def main():
    run_alone(body)


if __name__ == "__main__":
    main()
