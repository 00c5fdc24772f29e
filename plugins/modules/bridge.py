#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: bridge
short_description: Manage the node bridges pods are attached to
version_added: 0.1.0
description:
  - Manages Linux bridges in O(netns), like C(ip link add br0 type bridge), with their MTU,
    MAC, addresses (the pods' gateway, seed lab 3) and link state, all in one netlink session.
  - Every bridge it makes carries the alias C(handcni.podnet bridge); a link with a listed name
    that does not carry it is never changed, and the module fails naming it before any change.
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.common
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
  - handcni.podnet.common.owned_link
options:
  bridges:
    description: The bridges.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Bridge name (at most 15 bytes).
        type: str
        required: true
      mtu:
        description: MTU of the bridge.
        type: int
      mac:
        description: MAC address of the bridge.
        type: str
      addresses:
        description: Addresses of the bridge, as C(ip/prefix). The listed set is exact.
        type: list
        elements: str
        default: []
seealso:
  - module: handcni.podnet.veth
notes:
  - Removing a bridge detaches its ports; the ports themselves stay.
"""

EXAMPLES = r"""
- name: The node bridge with the pods' gateway address (seed lab 1 and 3)
  handcni.podnet.bridge:
    bridges:
      - name: br0
        mtu: 9150
        addresses: [192.168.10.254/24]

- name: Remove it
  handcni.podnet.bridge:
    bridges: [{name: br0}]
    state: absent
"""

RETURN = r"""
actions:
  description: What was changed, or in check mode what would be, one line per kernel change.
  returned: always
  type: list
  elements: str
  sample: ["create bridge br0", "set br0 addresses +192.168.10.254/24"]
bridges:
  description: The listed bridges as requested.
  returned: always
  type: list
  elements: dict
  sample: [{name: br0, mtu: 9150, addresses: [192.168.10.254/24], up: true}]
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _bridge as body
from ansible_collections.handcni.podnet.plugins.module_utils._module import run_alone


def main():
    run_alone(body)


if __name__ == "__main__":
    main()
