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

from ansible_collections.handcni.podnet.plugins.module_utils import _validate as validate
from ansible_collections.handcni.podnet.plugins.module_utils._links import OwnedLinkPlanner, compared, owner_alias
from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule

ALIAS = owner_alias("bridge")


def normalise(item: dict, field: str, state: str) -> dict:
    name = validate.ifname(item["name"], f"{field}.name")
    if state == "absent":
        return {"name": name}
    return {
        "name": name,
        "mtu": validate.mtu(item["mtu"], f"{field}.mtu") if item.get("mtu") is not None else None,
        "mac": validate.mac(item["mac"], f"{field}.mac") if item.get("mac") else None,
        "addresses": validate.interfaces(item.get("addresses"), f"{field}.addresses"),
        "up": True,
    }


def public(state: dict) -> dict:
    return {k: v for k, v in state.items() if v is not None and k not in ("owned", "kind", "master")}


class BridgePlanner(OwnedLinkPlanner):
    option = "bridges"
    kind = "bridge"
    kind_name = "a bridge"
    alias = ALIAS

    def create(self, want: dict) -> None:
        self.add(want["name"], want)

    def plan_present(self, field: str, want: dict, link, have: dict | None) -> list[Action]:
        name = want["name"]
        self.module.after[name] = public(want)
        if have is None:
            return [self.creation(want)]
        self.module.before[name] = public(dict(compared(have, want), name=name))
        return self.changes(name, have, want)


def main():
    module = PodnetModule(
        argument_spec=dict(
            bridges=dict(
                type="list", elements="dict", required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    mtu=dict(type="int"),
                    mac=dict(type="str"),
                    addresses=dict(type="list", elements="str", default=[]),
                ),
            ),
        ),
    )
    BridgePlanner.run(module, normalise, public)


if __name__ == "__main__":
    main()
