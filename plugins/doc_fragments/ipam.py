# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """The options of the address allocation that the ipam and pods modules share."""

    DOCUMENTATION = r"""
options:
  cidr6:
    description:
      - The node's IPv6 pod prefix, such as V(fd00:10:244:1::/64); every pod gets one address of it too.
      - Omitted or empty, the pods get addresses of O(cidr) only, and a record of an earlier O(cidr6) is forgotten.
      - Large prefixes cost nothing extra; the free addresses are searched lazily and counted arithmetically.
    type: str
  leases_dirs:
    description:
      - Directories where other allocators on the node record the addresses they hand out, one file
        per address named by the address, as the CNI C(host-local) plugin does in
        C(/var/lib/cni/networks/NAME). Those addresses, of O(cidr) and of O(cidr6), are never given to a pod.
    type: list
    elements: path
    default: []
  state_dir:
    description:
      - Directory of the node's allocation records, one per CIDR named after it with C(/) and C(:)
        as C(_) (V(10.244.1.0_24.json), V(fd00_10_244_1___64.json)).
    type: path
    default: /var/lib/handcni/ipam
"""
