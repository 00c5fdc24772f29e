#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: node_info
short_description: What of handcni.podnet's a node holds now, read in one pass, changing nothing
version_added: 0.1.0
description:
  - Reads, by the marks the other modules put on what they make, which of their objects a node holds (links
    by the module that made them, from their alias; the protocols of the routes in the node's tables; the
    backends holding network policy rules of ours; the node's restore records), which of the given paths exist
    and which of the given files carry our mark.
  - C(site.yml) runs it once per node before the roles, which then skip each call that could only remove
    something of a kind the node does not hold (a mode, method or feature not in use), so an unchanged converge
    runs fewer module processes. A role used without its result runs every call.
author: handcni.podnet team (@handcni)
options:
  objects:
    description: Read the links, route protocols, policy rules and restore records (RV(links), RV(route_protocols),
      RV(network_policy), RV(restore_records)); V(false) answers only O(paths) and O(marked), without loading pyroute2.
    type: bool
    default: true
  paths:
    description: Files or directories of ours whose existence is asked (PID files, records, directories).
    type: list
    elements: path
    default: []
  marked:
    description: Files that are ours only if their first line names C(handcni.podnet) (a configuration a
      distribution may ship under the same name).
    type: list
    elements: path
    default: []
requirements:
  - pyroute2 >= 0.7.2 on the managed node
  - Linux, root (to read the firewall)
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: It only reads; check mode changes nothing either.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
    details: It never changes anything.
seealso:
  - module: handcni.podnet.network_policy
"""

EXAMPLES = r"""
- name: Learn what of ours the node holds
  handcni.podnet.node_info:
    paths: [/etc/bird/bird.conf]
  register: podnet_held

- name: Remove our IPIP tunnels only where some are left
  handcni.podnet.ipip_tunnel:
    tunnels: []
    prune: true
  when: podnet_held | handcni.podnet.holds('links', 'ipip_tunnel')
"""

RETURN = r"""
links:
  description: Our links by the module that made them (V(provisional) for a link a cut-short run left under a
    provisional name, whichever module made it).
  returned: with O(objects)
  type: dict
  sample: {"bridge": ["cni0"], "veth": ["veth1", "veth3"]}
route_protocols:
  description: The protocol numbers of the unicast routes in the node's tables (ours carry the protocol
    their role gives the route module).
  returned: with O(objects)
  type: list
  elements: int
  sample: [2, 201]
network_policy:
  description: The firewall backends holding network policy rules of ours (or that could not be read).
  returned: with O(objects)
  type: list
  elements: str
  sample: [nftables]
restore_records:
  description: The names of the node's restore records (a skipped call must not leave one that re-makes what the
    inventory no longer wants).
  returned: with O(objects)
  type: list
  elements: str
  sample: [10-sysctl, 70-ipip]
paths:
  description: Those of O(paths) that exist, then those of O(marked) whose first line names C(handcni.podnet).
  returned: always
  type: list
  elements: str
  sample: [/run/bird/bird.pid, /etc/bird/bird.conf]
"""

import os

from ansible_collections.handcni.podnet.plugins.module_utils._module import PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._netlink import OWNER


def our_links(links) -> dict:
    """{module: [link names]} of the links (a dump) that carry our mark or a provisional name of ours."""
    from ansible_collections.handcni.podnet.plugins.module_utils._links import PROVISIONAL, owner_alias
    mark = owner_alias("")
    found: dict = {}
    for link in links:
        name, alias = link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_IFALIAS") or ""
        maker = alias[len(mark):] if alias.startswith(mark) else "provisional" if PROVISIONAL.fullmatch(name) else None
        if maker:
            found.setdefault(maker, []).append(name)
    return {maker: sorted(names) for maker, names in sorted(found.items())}


def objects(module) -> dict:
    """What the other modules made, by their marks (imported here: only this needs pyroute2 and the firewall)."""
    from ansible_collections.handcni.podnet.plugins.module_utils import _command as command
    from ansible_collections.handcni.podnet.plugins.module_utils import _firewall as firewall
    from ansible_collections.handcni.podnet.plugins.module_utils import _policy_rules as policy
    from ansible_collections.handcni.podnet.plugins.module_utils import _restore as restore
    from ansible_collections.handcni.podnet.plugins.module_utils import _routes as routes
    from ansible_collections.handcni.podnet.plugins.module_utils._netlink import ReadSession
    with ReadSession(None) as reader:
        links = our_links(reader.link("dump"))
        protocols = sorted({route["proto"] for route in routes.read(reader, names={}).values()})
    backends, names = firewall.backends_in_order(policy.BACKENDS, command.Runner.of(module), "nftables", writes=False)
    records = os.listdir(restore.RECORDS) if os.path.isdir(restore.RECORDS) else []
    return dict(links=links, route_protocols=protocols,
                network_policy=[name for name in names if may_hold(backends[name])],
                restore_records=sorted(name[:-5] for name in records if name.endswith(".json")))


def may_hold(backend) -> bool:
    """Whether a firewall backend holds rules of ours; one whose tool fails here (a kernel without nf_tables
    under an installed nft) is answered yes, so the module that would remove them runs and says why it fails."""
    try:
        return backend.read().detail.holds_ours()
    except OSError:
        return True


def marked(path: str) -> bool:
    try:
        with open(path, errors="replace") as handle:
            return OWNER in handle.readline()
    except OSError:
        return False


def main():
    module = PodnetModule(argument_spec=dict(
        objects=dict(type="bool", default=True),
        paths=dict(type="list", elements="path", default=[]),
        marked=dict(type="list", elements="path", default=[]),
    ), common=())
    params = module.params
    with module.errors():
        found = objects(module) if params["objects"] else {}
    found["paths"] = [path for path in params["paths"] if os.path.lexists(path)] + \
        [path for path in params["marked"] if marked(path)]
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()
