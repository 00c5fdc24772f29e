#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: ipam
short_description: Give every pod of a node one stable address from the node's pod CIDR (and one of its IPv6 prefix)
version_added: 0.1.0
description:
  - Host-local IP address management, as the CNI C(host-local) plugin does it, for the pods of one node.
  - A pod with an O(pods[].ip) gets exactly that address; a pod without one keeps the address
    recorded for it by an earlier run, or gets the lowest free address of O(cidr).
  - With O(cidr6) (dual stack) every pod also gets one IPv6 address of it the same way (O(pods[].ip6),
    else the recorded one, else the lowest free). Without it the module is IPv4 only (or single-family).
  - The allocation is recorded in O(state_dir) (one JSON file per CIDR, mode 0600, replaced atomically,
    under a lock so two runs against one node cannot corrupt it). Pods no longer listed are forgotten,
    which frees their addresses; the listed set is the whole set. Records of any CIDR other than O(cidr)
    and O(cidr6) are an earlier pod CIDR's and are removed, so dropping O(cidr6) forgets the IPv6 record.
  - The whole allocation, both families, is computed before anything is written; a range too small for
    the pods, an address outside the range, or two pods on one address fail naming the field, and nothing changes.
  - Because the record is written before the pods are wired, a run that stops half-way is repaired
    by the next one with the same addresses; no address leaks.
author: handcni.podnet team (@handcni)
options:
  cidr:
    description: The node's pod CIDR; the IPv4 one when O(cidr6) is given.
    type: str
    required: true
  pods:
    description: The node's pods.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Pod name (its network namespace).
        type: str
        required: true
      ip:
        description: A fixed address for this pod, inside O(cidr).
        type: str
      ip6:
        description: A fixed IPv6 address for this pod, inside O(cidr6) (which it requires).
        type: str
  reserved:
    description: Addresses of O(cidr) never given to a pod, such as the pods' gateway.
    type: list
    elements: str
    default: []
  reserved6:
    description: Addresses of O(cidr6) never given to a pod, such as the pods' IPv6 gateway.
    type: list
    elements: str
    default: []
requirements:
  - Linux
extends_documentation_fragment:
  - handcni.podnet.ipam
  - handcni.podnet.common.attributes
seealso:
  - module: handcni.podnet.pods
  - module: handcni.podnet.veth
"""

EXAMPLES = r"""
- name: Allocate the pods' addresses
  handcni.podnet.ipam:
    cidr: 192.168.10.0/24
    reserved: [192.168.10.254]
    pods:
      - {name: netns1, ip: 192.168.10.1}
      - {name: web}
  register: allocation

- name: Show them
  ansible.builtin.debug:
    msg: "{{ allocation.pods }}"

- name: Allocate an IPv4 and an IPv6 address to every pod (dual stack)
  handcni.podnet.ipam:
    cidr: 10.244.1.0/24
    reserved: [10.244.1.1]
    cidr6: fd00:10:244:1::/64
    reserved6: ["fd00:10:244:1::1"]
    pods:
      - {name: netns1, ip: 10.244.1.10, ip6: "fd00:10:244:1::10"}
      - {name: web}
  register: allocation
  # allocation.pods: [{name: netns1, ip: 10.244.1.10, ip6: "fd00:10:244:1::10"},
  #                   {name: web, ip: 10.244.1.2, ip6: "fd00:10:244:1::2"}]
"""

RETURN = r"""
pods:
  description: Every listed pod with its address (and its IPv6 address as C(ip6), only with O(cidr6)), in the order given.
  returned: always
  type: list
  elements: dict
  sample: [{name: netns1, ip: 192.168.10.1}, {name: web, ip: 192.168.10.2, ip6: "fd00:10:244:1::2"}]
free:
  description: How many addresses of O(cidr) are still free.
  returned: always
  type: int
  sample: 251
free6:
  description: How many addresses of O(cidr6) are still free.
  returned: when O(cidr6) is given
  type: int
  sample: 18446744073709551613
actions:
  description: The allocation changes.
  returned: always
  type: list
  elements: str
  sample: ["allocate 192.168.10.2 to web", "allocate fd00:10:244:1::2 to web", "release 192.168.10.7 of old-pod"]
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _ipam as body
from ansible_collections.handcni.podnet.plugins.module_utils._module import run_alone


def main():
    run_alone(body)


if __name__ == "__main__":
    main()
