#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: ipam
short_description: Give every pod of a node one stable address from the node's pod CIDR
version_added: 0.1.0
description:
  - Host-local IP address management, as the CNI C(host-local) plugin does it, for the pods of one node.
  - A pod with an O(pods[].ip) gets exactly that address; a pod without one keeps the address
    recorded for it by an earlier run, or gets the lowest free address of O(cidr).
  - The allocation is recorded in O(state_dir) (one JSON file per CIDR, mode 0600, replaced atomically,
    under a lock so two runs against one node cannot corrupt it). Pods no longer listed are forgotten,
    which frees their address; the listed set is the whole set.
  - The whole allocation is computed before anything is written; a range too small for the pods, an
    address outside the range, or two pods on one address fail naming the field, and nothing changes.
  - Because the record is written before the pods are wired, a run that stops half-way is repaired
    by the next one with the same addresses; no address leaks.
author: handcni.podnet team (@handcni)
options:
  cidr:
    description: The node's pod CIDR.
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
  reserved:
    description: Addresses of O(cidr) never given to a pod, such as the pods' gateway.
    type: list
    elements: str
    default: []
  leases_dirs:
    description:
      - Directories where other allocators on the node record the addresses they hand out, one file
        per address named by the address, as the CNI C(host-local) plugin does in
        C(/var/lib/cni/networks/NAME). Those addresses are never given to a pod.
    type: list
    elements: path
    default: []
  state_dir:
    description: Directory of the node's allocation records.
    type: path
    default: /var/lib/handcni/ipam
requirements:
  - Linux
extends_documentation_fragment:
  - handcni.podnet.common.attributes
seealso:
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
"""

RETURN = r"""
pods:
  description: Every listed pod with its address, in the order given.
  returned: always
  type: list
  elements: dict
  sample: [{name: netns1, ip: 192.168.10.1}, {name: web, ip: 192.168.10.2}]
free:
  description: How many addresses of the range are still free.
  returned: always
  type: int
  sample: 251
actions:
  description: The allocation changes.
  returned: always
  type: list
  elements: str
  sample: ["allocate 192.168.10.2 to web", "release 192.168.10.7 of old-pod"]
"""

import ipaddress
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.handcni.podnet.plugins.module_utils import _validate as validate
from ansible_collections.handcni.podnet.plugins.module_utils._state import load_json, locked, save_json


def allocate(cidr: str, pods: list, reserved: list, recorded: dict) -> dict:
    """{pod: ip} for every pod: fixed first, then recorded, then the lowest free. Pure; raises ValueError."""
    network = ipaddress.ip_network(cidr)
    blocked = {network.network_address, network.broadcast_address} if network.version == 4 else {
        network.network_address}
    blocked |= {ipaddress.ip_address(ip) for ip in reserved}
    taken: dict = {}
    result: dict = {}
    for index, pod in enumerate(pods):  # fixed addresses first, so a recorded one never steals them
        if pod.get("ip"):
            ip = ipaddress.ip_address(pod["ip"])
            if ip not in network or ip in blocked:
                raise ValueError(f"pods[{index}].ip: {ip} is not a usable address of {cidr} "
                                 "(outside it, reserved, or leased by another allocator)")
            if ip in taken:
                raise ValueError(f"pods[{index}].ip: {ip} is also given to pod {taken[ip]}")
            taken[ip] = pod["name"]
            result[pod["name"]] = str(ip)
    for pod in pods:
        old = recorded.get(pod["name"])
        if pod["name"] not in result and old and ipaddress.ip_address(old) in network:
            ip = ipaddress.ip_address(old)
            if ip not in taken and ip not in blocked:
                taken[ip] = pod["name"]
                result[pod["name"]] = old
    free = (ip for ip in network if ip not in blocked and ip not in taken)
    for index, pod in enumerate(pods):
        if pod["name"] not in result:
            ip = next(free, None)
            if ip is None:
                raise ValueError(f"pods[{index}]: no free address left in {cidr} for pod {pod['name']} "
                                 f"({len(pods)} pods, {len(reserved)} reserved)")
            taken[ip] = pod["name"]
            result[pod["name"]] = str(ip)
    return result


def leased(directories: list, cidr: str) -> list:
    """Addresses of `cidr` that files in these directories are named after (host-local's leases)."""
    network = ipaddress.ip_network(cidr)
    found = []
    for directory in directories:
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            try:
                ip = ipaddress.ip_address(entry.name)
            except ValueError:
                continue  # host-local's last_reserved_ip.0, lock
            if ip in network:
                found.append(str(ip))
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            cidr=dict(type="str", required=True),
            pods=dict(type="list", elements="dict", required=True,
                      options=dict(name=dict(type="str", required=True), ip=dict(type="str"))),
            reserved=dict(type="list", elements="str", default=[]),
            leases_dirs=dict(type="list", elements="path", default=[]),
            state_dir=dict(type="path", default="/var/lib/handcni/ipam"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        cidr = validate.network(params["cidr"], "cidr")
        for index, pod in enumerate(params["pods"]):
            validate.netns(pod["name"], f"pods[{index}].name")
            if pod.get("ip"):
                validate.address(pod["ip"], f"pods[{index}].ip")
        validate.unique(params["pods"], "name", "pods")
        reserved = [validate.address(ip, f"reserved[{i}]") for i, ip in enumerate(params["reserved"])]
        reserved += leased(params["leases_dirs"], cidr)
        path = os.path.join(params["state_dir"], cidr.replace("/", "_") + ".json")
        with locked(path, create=not module.check_mode):
            recorded = load_json(path).get("pods", {})
            result = allocate(cidr, params["pods"], reserved, recorded)
            actions = [f"release {ip} of {name}" for name, ip in sorted(recorded.items())
                       if result.get(name) != ip]
            actions += [f"allocate {ip} to {name}" for name, ip in sorted(result.items())
                        if recorded.get(name) != ip]
            # A node has one pod CIDR: records of an earlier one hold no pod any more.
            stale = sorted(entry.path for entry in os.scandir(params["state_dir"])
                           if entry.name.endswith(".json") and entry.path != path) if os.path.isdir(
                params["state_dir"]) else []
            actions += [f"forget {os.path.basename(p)} of an earlier pod CIDR" for p in stale]
            if actions and not module.check_mode:
                save_json(path, {"cidr": cidr, "pods": result})
                for old in stale:
                    os.unlink(old)
                    if os.path.exists(f"{old}.lock"):
                        os.unlink(f"{old}.lock")
    except (ValueError, OSError) as err:
        module.fail_json(msg=str(err))
    network = ipaddress.ip_network(cidr)
    usable = network.num_addresses - (2 if network.version == 4 else 1) - len(set(reserved))
    output = dict(
        changed=bool(actions),
        actions=actions,
        pods=[{"name": pod["name"], "ip": result[pod["name"]]} for pod in params["pods"]],
        free=max(usable - len(result), 0),
    )
    if module._diff:
        output["diff"] = {"before": {"pods": recorded}, "after": {"pods": result}}
        if stale:
            output["diff"]["before"]["earlier_records"] = [os.path.basename(p) for p in stale]
    module.exit_json(**output)


if __name__ == "__main__":
    main()
