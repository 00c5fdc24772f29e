#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: vxlan_fdb
short_description: Manage VXLAN devices with static FDB and neighbour entries for their peers
version_added: 0.1.0
description:
  - Manages VXLAN devices in O(netns) and, on each, one static entry set per peer node, as seed 004
    lab 7 does by hand, all in one netlink session
    (C(ip link add vxlan100 type vxlan id 100 dstport 4789 local 192.168.210.22 dev enp0s9 nolearning),
    C(ip link set dev vxlan100 address 00:00:ff:ff:20:04), C(ip addr add 192.168.20.4/32 dev vxlan100),
    C(ip neigh add 192.168.30.4 dev vxlan100 lladdr 00:00:ff:ff:30:04),
    C(bridge fdb add 00:00:ff:ff:30:04 dev vxlan100 dst 192.168.230.23)).
  - A peer is its VTEP's MAC, its underlay address (the FDB entry's C(dst)) and, optionally, its VTEP's
    overlay address (a permanent neighbour entry, the gateway of the routes to that peer's pods, which
    the M(handcni.podnet.route) module adds with C(onlink)).
  - Every device it makes carries the alias C(handcni.podnet vxlan_fdb); a link with a listed name
    that does not carry it is never changed, and the module fails naming it before any change.
    FDB and neighbour entries carry no mark of their own; the permanent ones on a device of ours are
    ours, so O(prune) removes exactly those not listed. Learned (non-permanent) entries and entries
    on any other device are never touched.
  - Changing O(vxlans[].vni), O(vxlans[].port), O(vxlans[].local), O(vxlans[].dev) or
    O(vxlans[].learning) of an existing device replaces the device (the kernel cannot change the first
    two in place); its entries are added again in the same run, but the kernel drops the routes
    through it, so put them back after this module (the C(cross_node) role does).
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.common
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
  - handcni.podnet.common.owned_link
options:
  vxlans:
    description: The VXLAN devices.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Device name (at most 15 bytes).
        type: str
        required: true
      vni:
        description: VXLAN network identifier, 1..16777215; the same on every node. Required with O(state=present).
        type: int
      port:
        description: UDP destination port.
        type: int
        default: 4789
      local:
        description: The node's underlay address, the outer source of every packet.
        type: str
      dev:
        description: Underlay device. Must exist; with it, O(vxlans[].mtu) is checked against its MTU.
        type: str
      learning:
        description: Learn remote MACs from received packets. Off, as in the seed (C(nolearning)); the peers are static.
        type: bool
        default: false
      mtu:
        description: MTU of the device; at most the underlay MTU minus 50 (70 over IPv6).
        type: int
      mac:
        description: MAC address of the device (the node's VTEP MAC, which its peers list).
        type: str
      addresses:
        description: Addresses of the device, as C(ip/prefix). The listed set is exact.
        type: list
        elements: str
        default: []
      peers:
        description: The peer VTEPs reached through this device.
        type: list
        elements: dict
        default: []
        suboptions:
          mac:
            description: The peer's VTEP MAC.
            type: str
            required: true
          dst:
            description: The peer's underlay address (C(bridge fdb add MAC dev DEVICE dst DST)).
            type: str
            required: true
          ip:
            description: The peer's VTEP overlay address (C(ip neigh add IP dev DEVICE lladdr MAC)); omit for no neighbour entry.
            type: str
          ip6:
            description:
              - The peer's IPv6 overlay next hop, a second neighbour entry at the same MAC (dual stack; the
                device carries the pods' IPv6 traffic too, over the same underlay).
            type: str
seealso:
  - module: handcni.podnet.route
  - module: handcni.podnet.ipip_tunnel
notes:
  - The kernel omits an FDB entry's VNI and port when they equal the device's; the module fills them in
    before comparing, so entries it made compare equal.
"""

EXAMPLES = r"""
- name: The VTEP of worker2 and its peer worker3 (seed lab 7)
  handcni.podnet.vxlan_fdb:
    vxlans:
      - name: vxlan100
        vni: 100
        local: 192.168.210.22
        dev: enp0s9
        mtu: 8950
        mac: 0e:00:c0:a8:d2:16
        addresses: [192.168.20.0/32]
        peers:
          - {mac: "0e:00:c0:a8:e6:17", dst: 192.168.230.23, ip: 192.168.30.0}
    prune: true

- name: Pods on worker3 through it
  handcni.podnet.route:
    routes:
      - {dst: 192.168.30.0/24, via: 192.168.30.0, dev: vxlan100, onlink: true}
    protocol: 202

- name: Remove every VXLAN device this collection made, with its entries
  handcni.podnet.vxlan_fdb:
    vxlans: []
    prune: true
"""

RETURN = r"""
actions:
  description: What was changed, or in check mode what would be, one line per kernel change.
  returned: always
  type: list
  elements: str
  sample:
    - "create vxlan vxlan100 (vni 100, port 4789, local 192.168.210.22, dev enp0s9, nolearning)"
    - "add fdb 0e:00:c0:a8:e6:17 dst 192.168.230.23 dev vxlan100"
    - "add neigh 192.168.30.0 lladdr 0e:00:c0:a8:e6:17 dev vxlan100"
vxlans:
  description: The listed devices as requested, their peers as FDB and neighbour entries.
  returned: always
  type: list
  elements: dict
  sample:
    - name: vxlan100
      vni: 100
      port: 4789
      local: 192.168.210.22
      dev: enp0s9
      learning: false
      mtu: 8950
      mac: 0e:00:c0:a8:d2:16
      addresses: [192.168.20.0/32]
      up: true
      fdb: [{mac: "0e:00:c0:a8:e6:17", dst: 192.168.230.23, port: 4789, vni: 100}]
      neighbours: [{ip: 192.168.30.0, mac: "0e:00:c0:a8:e6:17"}]
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _tunnels as tunnels
from ansible_collections.handcni.podnet.plugins.module_utils import _validate as validate
from ansible_collections.handcni.podnet.plugins.module_utils._links import OwnedLinkPlanner, compared, owner_alias
from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._netlink import link_by_name

ALIAS = owner_alias("vxlan_fdb")
KIND = "vxlan"
PARAMS = ("vni", "port", "local", "dev", "learning")


def normalise(item: dict, field: str, state: str) -> dict:
    name = validate.ifname(item["name"], f"{field}.name")
    if state == "absent":
        return {"name": name}
    if item.get("vni") is None:
        raise ValueError(f"{field}.vni: a VNI ({tunnels.VNI_MIN}..{tunnels.VNI_MAX}) is required")
    local = validate.address(item["local"], f"{field}.local") if item.get("local") else None
    want = {
        "name": name,
        "vni": tunnels.vni(item["vni"], f"{field}.vni"),
        "port": tunnels.port(item["port"] if item.get("port") is not None else tunnels.VXLAN_PORT, f"{field}.port"),
        "local": local,
        "dev": validate.ifname(item["dev"], f"{field}.dev") if item.get("dev") else None,
        "learning": bool(item.get("learning")),
        "mtu": validate.mtu(item["mtu"], f"{field}.mtu") if item.get("mtu") is not None else None,
        "mac": validate.mac(item["mac"], f"{field}.mac") if item.get("mac") else None,
        "addresses": validate.interfaces(item.get("addresses"), f"{field}.addresses"),
        "up": True,
    }
    fdb, neighbours, seen = {}, {}, {}
    for index, peer in enumerate(item.get("peers") or []):
        where = f"{field}.peers[{index}]"
        mac = validate.mac(peer.get("mac"), f"{where}.mac")
        dst = validate.address(peer.get("dst"), f"{where}.dst")
        tunnels.same_family(dst, local, f"{where}.dst", f"{field}.local")
        if mac in fdb:
            raise ValueError(f"{where}.mac: {mac} is also peers[{seen[mac]}]'s")
        seen[mac] = index
        fdb[mac] = tunnels.fdb_view(mac, dst, want["port"], want["vni"])
        for key in ("ip", "ip6"):
            if peer.get(key):
                ip = validate.address(peer[key], f"{where}.{key}")
                if key == "ip6" and ":" not in ip:
                    raise ValueError(f"{where}.ip6: {ip} is not an IPv6 address")
                if ip in neighbours:
                    raise ValueError(f"{where}.{key}: {ip} is listed twice")
                neighbours[ip] = mac
    want.update(fdb=fdb, neighbours=neighbours)
    return want


def link_part(want: dict) -> dict:
    return {k: want[k] for k in ("mtu", "mac", "addresses", "up")}


def entries_view(fdb: dict, neighbours: dict) -> dict:
    flat = [e for entries in fdb.values() for e in (entries if isinstance(entries, list) else [entries])]
    return {
        "fdb": sorted(flat, key=lambda e: (e["mac"], str(e["dst"]))),
        "neighbours": [{"ip": ip, "mac": mac} for ip, mac in sorted(neighbours.items(), key=lambda kv: tunnels.ip_order(kv[0]))],
    }


def public(want: dict) -> dict:
    if "vni" not in want:
        return {"name": want["name"]}
    view = {k: want[k] for k in ("name",) + PARAMS if want[k] is not None}
    view.update({k: v for k, v in link_part(want).items() if v is not None})
    view.update(entries_view(want["fdb"], want["neighbours"]))
    return view


def describe_params(want: dict, have: dict | None = None) -> str:
    if have is None:
        parts = [f"vni {want['vni']}", f"port {want['port']}"]
        parts += [f"{k} {want[k]}" for k in ("local", "dev") if want[k]]
        parts.append("learning" if want["learning"] else "nolearning")
        return ", ".join(parts)
    return ", ".join(f"{k} {have[k]} -> {want[k]}" for k in PARAMS if have[k] != want[k])


class VxlanPlanner(OwnedLinkPlanner):
    option = "vxlans"
    kind = KIND
    kind_name = "a vxlan device"
    alias = ALIAS

    def __init__(self, module: PodnetModule, ipr, reader=None):
        super().__init__(module, ipr, reader)
        self.names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in self.reader.link("dump")}

    def index(self, name: str) -> int:
        return tunnels.wait_link(self.ipr, name)

    def check_underlay(self, field: str, want: dict) -> None:
        """The underlay device exists, and the MTU fits it with the VXLAN overhead: fail before any change."""
        if not want["dev"]:
            return
        lower = link_by_name(self.ipr, want["dev"])
        if lower is None:
            raise ValueError(f"{field}.dev: no link named {want['dev']} in {self.module.where}")
        room = lower.get_attr("IFLA_MTU") - tunnels.overhead(KIND, want["local"])
        if want["mtu"] is not None and want["mtu"] > room:
            raise ValueError(f"{field}.mtu: {want['mtu']} does not fit the underlay {want['dev']} "
                             f"(MTU {lower.get_attr('IFLA_MTU')}) with {tunnels.overhead(KIND, want['local'])} "
                             f"bytes of VXLAN; at most {room}")

    def create(self, want: dict) -> None:
        args = dict(vxlan_id=want["vni"], vxlan_port=want["port"], vxlan_learning=int(want["learning"]))
        if want["local"]:
            args["vxlan_local6" if ":" in want["local"] else "vxlan_local"] = want["local"]
        if want["dev"]:
            args["vxlan_link"] = self.index(want["dev"])
        self.add(want["name"], link_part(want), **args)

    def delete(self, name: str) -> None:
        tunnels.delete_link(self.ipr, name)

    def entries(self, want: dict, fdb_have: dict, neigh_have: dict, prune: bool) -> list[Action]:
        name, ipr = want["name"], self.ipr
        fdb_put, fdb_delete = tunnels.plan_fdb(want["fdb"], fdb_have, prune)
        neigh_put, neigh_delete = tunnels.plan_neighbours(want["neighbours"], neigh_have, prune)
        actions = [Action(f"delete neigh {ip} dev {name}",
                          lambda ip=ip: tunnels.delete_neighbour(ipr, self.index(name), ip)) for ip in neigh_delete]
        actions += [Action(f"delete fdb {mac} dev {name}",
                           lambda mac=mac: tunnels.delete_fdb(ipr, self.index(name), mac)) for mac in fdb_delete]
        for entry in fdb_put:
            verb = "replace" if entry["mac"] in fdb_have else "add"
            actions.append(Action(f"{verb} fdb {tunnels.describe_fdb(entry, name)}",
                                  lambda e=entry, r=verb == "replace": tunnels.put_fdb(ipr, self.index(name), e, r)))
        for ip, mac in neigh_put:
            verb = "replace" if ip in neigh_have else "add"
            actions.append(Action(f"{verb} neigh {ip} lladdr {mac} dev {name}",
                                  lambda ip=ip, mac=mac: tunnels.put_neighbour(ipr, self.index(name), ip, mac)))
        return actions

    def plan_present(self, field: str, want: dict, link, have: dict | None) -> list[Action]:
        name, module, prune = want["name"], self.module, self.module.params["prune"]
        self.check_underlay(field, want)
        module.after[name] = public(want)
        if have is None:
            return [self.creation(want, describe_params(want))] + self.entries(want, {}, {}, prune)
        current = tunnels.vxlan_params(link, self.names)
        fdb_have = tunnels.read_fdb(self.ipr, link["index"], current)
        neigh_have = tunnels.read_neighbours(self.ipr, link["index"])
        module.before[name] = {"name": name, **{k: v for k, v in current.items() if v is not None},
                               **{k: v for k, v in compared(have, link_part(want)).items() if v is not None},
                               **entries_view(fdb_have, neigh_have)}
        if any(current[k] != want[k] for k in PARAMS):
            # The new device starts without entries: every listed one is added again.
            return [self.replacement(want, describe_params(want, current))] + self.entries(want, {}, {}, prune)
        actions = self.changes(name, have, link_part(want))
        if not prune:  # entries no longer listed stay, and the diff says so
            kept_fdb = {mac: e for mac, e in fdb_have.items() if mac not in want["fdb"]}
            kept_neigh = {ip: mac for ip, mac in neigh_have.items() if ip not in want["neighbours"]}
            module.after[name].update(entries_view({**want["fdb"], **kept_fdb}, {**want["neighbours"], **kept_neigh}))
        return actions + self.entries(want, fdb_have, neigh_have, prune)


def main():
    module = PodnetModule(
        argument_spec=dict(
            vxlans=dict(
                type="list", elements="dict", required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    vni=dict(type="int"),
                    port=dict(type="int", default=tunnels.VXLAN_PORT),
                    local=dict(type="str"),
                    dev=dict(type="str"),
                    learning=dict(type="bool", default=False),
                    mtu=dict(type="int"),
                    mac=dict(type="str"),
                    addresses=dict(type="list", elements="str", default=[]),
                    peers=dict(
                        type="list", elements="dict", default=[],
                        options=dict(mac=dict(type="str", required=True), dst=dict(type="str", required=True),
                                     ip=dict(type="str"), ip6=dict(type="str")),
                    ),
                ),
            ),
        ),
    )
    VxlanPlanner.run(module, normalise, public)


if __name__ == "__main__":
    main()
