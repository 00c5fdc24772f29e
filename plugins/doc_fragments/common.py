# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  netns:
    description:
      - Named network namespace (as in C(ip netns list)) to act in.
      - Omit to act in the namespace the module runs in (the node itself).
      - The namespace must exist; it is never created as a side effect.
    type: str
  state:
    description:
      - V(present) makes the listed objects exist with exactly the given attributes.
      - V(absent) removes the listed objects. Only objects this collection made are removed.
    type: str
    choices: [present, absent]
    default: present
  prune:
    description:
      - With O(state=present), also remove objects of this kind that this collection made
        earlier in this namespace and that are not listed now.
      - Objects made by anyone else are never touched.
    type: bool
    default: false
requirements:
  - pyroute2 >= 0.9 on the managed node
  - Linux, root (CAP_NET_ADMIN)
"""

    # The behaviour every module of the collection has.
    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Check mode plans exactly the actions a real run would apply and returns them in RV(actions).
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: The diff shows the normalised attributes of every listed object before and after.
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
    details: A second run with the same arguments reports no change.
"""

    # The restore record (the modules that change the kernel's state of a node).
    RESTORE = r"""
options:
  restore:
    description:
      - Keep this run as the node's restore record of this name, in C(/var/lib/handcni/restore), with the
        payload the module ran from and a cheap check that what it made is intact. The unit
        C(handcni-podnet-restore.service) (installed by the node_prep role) re-runs every record, in name
        order, when a check fails (a reboot, a manager that flushed routes or firewall rules), with no
        controller and no Ansible.
      - With O(state=absent), or a run that leaves nothing of its kind (an empty list), the record is removed.
        Check mode writes nothing.
      - Omit on nodes without the restore unit (the namespace lab).
    type: str
"""

    # The modules that make single links (bridge, ipip_tunnel, vxlan_fdb).
    OWNED_LINK = r"""
options: {}
notes:
  - A link is made under a provisional name, C(hcni-) and 10 hex digits, marked as ours, then given its
    name, so a run killed half-way never leaves an unmarked link under a listed name. The next run deletes
    a link of this kind still under such a name, and listing such a name is an error.
"""
