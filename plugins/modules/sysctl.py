#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: sysctl
short_description: Set a namespace's net.* sysctls, and put back what was there before
version_added: 0.1.0
description:
  - Sets C(net.*) sysctls of O(netns), such as C(net.ipv4.ip_forward=1) (seed 004, section 5.2),
    like C(sysctl -w) run inside that namespace. Only C(net.*) sysctls are allowed; they are per namespace.
  - The value found before the first change is recorded in O(state_file). O(state=absent), or
    O(prune) for a sysctl no longer listed, writes that recorded value back and forgets it, so teardown
    leaves the node as it was. A sysctl this module never changed is never written.
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.common
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
options:
  sysctls:
    description:
      - "Sysctl names and values, for example C(net.ipv4.ip_forward: 1)."
      - With O(state=absent) only the names matter.
    type: dict
    required: true
  state_file:
    description: Where the values found before our changes are recorded, one file per node.
    type: path
    default: /var/lib/handcni/sysctl.json
seealso:
  - module: handcni.podnet.veth
notes:
  - Values are compared as written by the kernel, with runs of whitespace as one space.
"""

EXAMPLES = r"""
- name: Forward pod traffic on the node
  handcni.podnet.sysctl:
    sysctls:
      net.ipv4.ip_forward: 1

- name: Put it back as it was
  handcni.podnet.sysctl:
    sysctls:
      net.ipv4.ip_forward: 1
    state: absent
"""

RETURN = r"""
actions:
  description: What was changed, or in check mode what would be.
  returned: always
  type: list
  elements: str
  sample: ["set net.ipv4.ip_forward 0 -> 1"]
sysctls:
  description: The listed sysctls and their values after the run.
  returned: always
  type: dict
  sample: {"net.ipv4.ip_forward": "1"}
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _sysctl as body
from ansible_collections.handcni.podnet.plugins.module_utils._module import run_alone


def main():
    run_alone(body)


if __name__ == "__main__":
    main()
