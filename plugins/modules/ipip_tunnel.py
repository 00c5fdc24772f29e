#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: ipip_tunnel
short_description: Manage IPIP tunnel devices that carry pod traffic between nodes
version_added: 0.1.0
description:
  - Manages IPIP (IPv4 in IPv4) tunnel devices in O(netns), like
    C(ip link add dev ipip0 type ipip local 192.168.210.22) (seed 004 lab 6), with their MTU, addresses
    and link state, all in one netlink session.
  - A device without O(tunnels[].remote) (remote C(any), as in the seed and in Calico's C(tunl0))
    sends each packet to the gateway of the route that chose it, so one device serves every peer
    node through routes like C(192.168.30.0/24 via 192.168.230.23 dev ipip0 onlink); the M(handcni.podnet.route)
    module adds those.
  - Every device it makes carries the alias C(handcni.podnet ipip_tunnel); a link with a listed name
    that does not carry it is never changed, and the module fails naming it before any change.
  - Changing O(tunnels[].local), O(tunnels[].remote) or O(tunnels[].ttl) of an existing device
    replaces the device; the kernel then drops the routes through it, so put them back after
    this module (the C(cross_node) role does).
  - The kernel needs the C(ipip) module; without it, creating a device fails naming the device.
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.common
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
  - handcni.podnet.common.owned_link
options:
  tunnels:
    description: The tunnel devices.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Device name (at most 15 bytes). C(tunl0) is the kernel's own fallback device and is never ours.
        type: str
        required: true
      local:
        description: The node's underlay IPv4 address, the outer source of every packet. Required with O(state=present).
        type: str
      remote:
        description: A fixed outer destination. Omit (remote C(any)) to send to each route's gateway.
        type: str
      ttl:
        description: TTL of the outer header; V(0) copies the inner packet's TTL (C(ttl inherit)).
        type: int
        default: 0
      mtu:
        description: MTU of the device; the underlay MTU minus 20 carries full-size packets unfragmented.
        type: int
      addresses:
        description: Addresses of the device, as C(ip/prefix). The listed set is exact.
        type: list
        elements: str
        default: []
seealso:
  - module: handcni.podnet.route
  - module: handcni.podnet.vxlan_fdb
notes:
  - Path MTU discovery stays on (the kernel default), so packets too big for the path are refused
    with an ICMP error rather than fragmented.
"""

EXAMPLES = r"""
- name: The tunnel of worker2 (seed lab 6)
  handcni.podnet.ipip_tunnel:
    tunnels:
      - name: ipip0
        local: 192.168.210.22
        mtu: 8980
        addresses: [192.168.20.0/32]
    prune: true

- name: Pods on worker3 through the tunnel, worker1 directly (seed lab 6, cross-subnet)
  handcni.podnet.route:
    routes:
      - {dst: 192.168.30.0/24, via: 192.168.230.23, dev: ipip0, onlink: true}
      - {dst: 192.168.10.0/24, via: 192.168.210.21}
    protocol: 202
    prune: true

- name: Remove every tunnel this collection made
  handcni.podnet.ipip_tunnel:
    tunnels: []
    prune: true
"""

RETURN = r"""
actions:
  description: What was changed, or in check mode what would be, one line per kernel change.
  returned: always
  type: list
  elements: str
  sample: ["create ipip ipip0 (local 192.168.210.22)", "set ipip0 addresses +192.168.20.0/32"]
tunnels:
  description: The listed tunnels as requested.
  returned: always
  type: list
  elements: dict
  sample: [{name: ipip0, local: 192.168.210.22, ttl: 0, mtu: 8980, addresses: [192.168.20.0/32], up: true}]
"""

import errno

from ansible_collections.handcni.podnet.plugins.module_utils import _tunnels as tunnels
from ansible_collections.handcni.podnet.plugins.module_utils import _validate as validate
from ansible_collections.handcni.podnet.plugins.module_utils._links import OwnedLinkPlanner, compared, owner_alias
from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._netlink import is_errno, kernel_errors

ALIAS = owner_alias("ipip_tunnel")
KIND = "ipip"
PARAMS = ("local", "remote", "ttl")
FALLBACK = "tunl0"  # made by the kernel in every namespace once ipip is loaded


def normalise(item: dict, field: str, state: str) -> dict:
    name = validate.ifname(item["name"], f"{field}.name")
    if name == FALLBACK:
        raise ValueError(f"{field}.name: {FALLBACK} is the kernel's fallback tunnel; choose another name")
    if state == "absent":
        return {"name": name}
    if not item.get("local"):
        raise ValueError(f"{field}.local: the node's underlay IPv4 address is required")
    return {
        "name": name,
        "local": tunnels.ipv4(item["local"], f"{field}.local"),
        "remote": tunnels.ipv4(item["remote"], f"{field}.remote") if item.get("remote") else None,
        "ttl": tunnels.ttl(item.get("ttl") or 0, f"{field}.ttl"),
        "mtu": validate.mtu(item["mtu"], f"{field}.mtu") if item.get("mtu") is not None else None,
        "addresses": validate.interfaces(item.get("addresses"), f"{field}.addresses"),
        "up": True,
    }


def link_part(want: dict) -> dict:
    return {k: want[k] for k in ("mtu", "addresses", "up")}


def public(state: dict) -> dict:
    return {k: v for k, v in state.items() if v is not None and k not in ("owned", "kind", "master", "mac")}


def shown(param: str, value) -> str:
    """A parameter as `ip -d link` shows it."""
    if param == "ttl":
        return str(value) if value else "inherit"
    return value or "any"


def describe_params(want: dict, have: dict | None = None) -> str:
    if have is None:
        parts = [f"local {want['local']}"] + ([f"remote {want['remote']}"] if want["remote"] else []) \
            + ([f"ttl {want['ttl']}"] if want["ttl"] else [])
    else:
        parts = [f"{k} {shown(k, have[k])} -> {shown(k, want[k])}" for k in PARAMS if have[k] != want[k]]
    return ", ".join(parts)


class IpipPlanner(OwnedLinkPlanner):
    option = "tunnels"
    kind = KIND
    kind_name = "an ipip tunnel"
    alias = ALIAS

    def delete(self, name: str) -> None:
        tunnels.delete_link(self.ipr, name)

    def create(self, want: dict) -> None:
        args = dict(ipip_local=want["local"], ipip_ttl=want["ttl"], ipip_pmtudisc=1)
        if want["remote"]:
            args["ipip_remote"] = want["remote"]
        try:
            self.add(want["name"], link_part(want), **args)
        except kernel_errors() as err:
            if is_errno(err, errno.EOPNOTSUPP):
                raise OSError(errno.EOPNOTSUPP,
                              "this kernel cannot make ipip devices (no ipip module: modprobe ipip)") from None
            raise

    def plan_present(self, field: str, want: dict, link, have: dict | None) -> list[Action]:
        name = want["name"]
        self.module.after[name] = public(want)
        if have is None:
            return [self.creation(want, describe_params(want))]
        current = tunnels.ipip_params(link)
        self.module.before[name] = public(dict(compared(have, link_part(want)), name=name, **current))
        if any(current[k] != want[k] for k in PARAMS):
            return [self.replacement(want, describe_params(want, current))]
        return self.changes(name, have, link_part(want))


def main():
    module = PodnetModule(
        argument_spec=dict(
            tunnels=dict(
                type="list", elements="dict", required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    local=dict(type="str"),
                    remote=dict(type="str"),
                    ttl=dict(type="int", default=0),
                    mtu=dict(type="int"),
                    addresses=dict(type="list", elements="str", default=[]),
                ),
            ),
        ),
    )
    IpipPlanner.run(module, normalise, public)


if __name__ == "__main__":
    main()
