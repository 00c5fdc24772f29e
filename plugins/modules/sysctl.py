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

import os
import re

from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._netlink import read_sysctl, sysctl_path, write_sysctl
from ansible_collections.handcni.podnet.plugins.module_utils._state import load_json, locked, save_json

_NAME = re.compile(r"net(\.[A-Za-z0-9_@:+-]+(\.[A-Za-z0-9_@:+-]+)*)+")


def normalise(value) -> str:
    if isinstance(value, bool):
        value = int(value)
    return " ".join(str(value).split())


def save_record(path: str, record: dict, netns: str, values: dict) -> None:
    record = {k: v for k, v in record.items() if k != netns}
    if values:
        record[netns] = values
    save_json(path, record)


def main():
    module = PodnetModule(
        argument_spec=dict(
            sysctls=dict(type="dict", required=True),
            state_file=dict(type="path", default="/var/lib/handcni/sysctl.json"),
        ),
    )
    params = module.params
    netns = params["netns"] or ""  # the record is keyed by namespace; "" is the node itself
    # a lock file (and its directory) only where something may be recorded: not for nothing to set and no record
    writes = params["state"] == "present" and (params["sysctls"] or os.path.exists(params["state_file"]))
    with module.errors(), locked(params["state_file"], create=bool(writes) and not module.check_mode):
        wanted = {}
        for name, value in params["sysctls"].items():
            if not _NAME.fullmatch(name) or ".." in name or "/" in name:
                raise ValueError(f"sysctls: {name!r} is not a net.* sysctl name")
            wanted[name] = normalise(value)
        record = load_json(params["state_file"])
        saved = record.get(netns, {})
        current = {}
        for name in set(wanted) | set(saved):
            try:
                current[name] = normalise(read_sysctl(params["netns"], name))
            except FileNotFoundError:
                if name in wanted:
                    raise ValueError(f"sysctls: {name} does not exist in {module.where}") from None
        if params["state"] == "present":
            target = dict(wanted)
            restore = set(saved) - set(wanted) if params["prune"] else set()
            # The previous value of each one we change (one already as wanted needs no putting back).
            new_saved = {name: saved.get(name, current[name]) for name in wanted
                         if name in saved or current[name] != wanted[name]}
            if not params["prune"]:
                new_saved.update({name: value for name, value in saved.items() if name not in wanted})
        else:
            target = {}
            restore = set(wanted) & set(saved)
            new_saved = {name: value for name, value in saved.items() if name not in wanted}
        target.update({name: saved[name] for name in restore if name in current})
        actions = [
            Action(f"set {name} {current[name]} -> {value}",
                   lambda n=name, v=value: write_sysctl(params["netns"], n, v))
            for name, value in sorted(target.items()) if current.get(name) != value
        ]
        module.before = {name: current.get(name) for name in sorted(target)}
        module.after = dict(sorted(target.items()))
        # Previous values are recorded before the first write (the kernel may refuse a value half-way)
        # and dropped only after the last one put back.
        grown = {**saved, **new_saved}
        if grown != saved:
            actions.insert(0, Action(f"record the previous values in {params['state_file']}",
                                     lambda: save_record(params["state_file"], record, netns, grown)))
        if new_saved != grown:
            actions.append(Action(f"drop the values put back from {params['state_file']}",
                                  lambda: save_record(params["state_file"], record, netns, new_saved)))
        module.apply(actions)
    if params["netns"] is None:
        module.canary["values"] = {sysctl_path(name): value for name, value in wanted.items()}
    module.finish(sysctls={name: target.get(name, current.get(name)) for name in wanted})


if __name__ == "__main__":
    main()
