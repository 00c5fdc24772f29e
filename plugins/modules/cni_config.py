#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: cni_config
short_description: Write or remove the node's CNI network config file, with the directories it needed
version_added: 0.2.0
description:
  - Writes O(config) as JSON to O(path), the file a container runtime (containerd, CRI-O) hands to the
    CNI plugins for every pod it starts (seed 003), replaced atomically, mode 0644; only when its text
    differs.
  - The directories of O(path) that do not exist yet are made (mode 0755) and recorded in O(made_record),
    so that O(state=absent) removes them again, deepest first, when nothing else is in them. A directory
    that existed before is never removed.
  - One module call does what a copy, a directory and a record task did, so a converge runs one module
    process for it per node, not five.
author: handcni.podnet team (@handcni)
options:
  path:
    description: Where the config is written; the runtime uses the first file of its directory in name order.
    type: path
    default: /etc/cni/net.d/10-handcni.conflist
  config:
    description: The network config list (C(cniVersion), C(name), C(plugins)). Required with O(state=present).
    type: dict
  state:
    description: V(present) writes the config; V(absent) removes it and the directories this module made for it.
    type: str
    choices: [present, absent]
    default: present
  made_record:
    description: Where the directories made for O(path) are recorded (JSON, mode 0600).
    type: path
    default: /var/lib/handcni/cni_config_dirs.json
extends_documentation_fragment:
  - handcni.podnet.common.attributes
notes:
  - The file follows the CNI specification's network configuration lists
    (U(https://www.cni.dev/docs/spec/#network-configuration-lists)).
seealso:
  - module: handcni.podnet.bridge
"""

EXAMPLES = r"""
- name: Pods of the container runtime on the node bridge br0, host-local IPAM
  handcni.podnet.cni_config:
    config:
      cniVersion: "1.0.0"
      name: handcni
      plugins:
        - type: bridge
          bridge: br0
          isGateway: true
          ipam: {type: host-local, ranges: [[{subnet: 192.168.10.0/24}]]}

- name: Remove it again, with the directories it needed
  handcni.podnet.cni_config:
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or, in check mode, would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["make directory /etc/cni", "make directory /etc/cni/net.d", "write /etc/cni/net.d/10-handcni.conflist"]
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.handcni.podnet.plugins.module_utils._state import read_text, save_json, write_text


def missing_dirs(path: str) -> list:
    """The directories of `path` that do not exist, outermost first."""
    missing = []
    directory = os.path.dirname(path)
    while directory and not os.path.isdir(directory):
        missing.insert(0, directory)
        directory = os.path.dirname(directory)
    return missing


def recorded_dirs(record: str) -> list:
    """The directories made earlier: {"dirs": [...]}, or the bare list the role once wrote."""
    text = read_text(record)
    try:
        data = json.loads(text) if text is not None else []
    except ValueError:
        raise ValueError(f"made_record: {record} is not valid JSON; fix or remove it") from None
    dirs = data.get("dirs") if isinstance(data, dict) else data
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise ValueError(f"made_record: {record} does not hold a list of directories; fix or remove it")
    return dirs


def file_state(path: str, record: str) -> dict:
    """What the diff shows: the file's text and mode, and the directories recorded as made for it."""
    text = read_text(path)
    return {"content": text, "mode": None if text is None else f"{os.stat(path).st_mode & 0o7777:04o}",
            "made_directories": sorted(recorded_dirs(record))}


def present(module: AnsibleModule, path: str, record: str, actions: list) -> tuple:
    config = module.params["config"]
    if not config:
        raise ValueError("config: required with state=present")
    text = json.dumps(config, indent=2, sort_keys=True, separators=(",", ": "), ensure_ascii=False) + "\n"
    before = file_state(path, record)
    made = missing_dirs(path)
    actions += [f"make directory {d}" for d in made]
    if before["content"] != text:
        actions.append(f"write {path}")
    elif before["mode"] != "0644":
        actions.append(f"set mode 0644 on {path}")
    after = {"content": text, "mode": "0644", "made_directories": sorted(set(before["made_directories"]) | set(made))}
    if module.check_mode or not actions:
        return before, after
    if made:
        save_json(record, {"dirs": after["made_directories"]})
        for directory in made:
            os.mkdir(directory, 0o755)
            os.chmod(directory, 0o755)  # whatever the umask
    if before["content"] != text:
        write_text(path, text, 0o644)
    else:
        os.chmod(path, 0o644)
    return before, after


def absent(module: AnsibleModule, path: str, record: str, actions: list) -> tuple:
    before = file_state(path, record)
    exists = before["content"] is not None
    if exists:
        actions.append(f"remove {path}")
    # Deepest first; a directory holding anything but what goes now stays.
    going = {path} if exists else set()
    removable = []
    for directory in sorted(before["made_directories"], key=len, reverse=True):
        if os.path.isdir(directory) and all(os.path.join(directory, entry) in going
                                            for entry in os.listdir(directory)):
            removable.append(directory)
            going.add(directory)
    actions += [f"remove directory {d}" for d in removable]
    if os.path.exists(record):
        actions.append(f"forget {record}")
    if not module.check_mode:
        if exists:
            os.unlink(path)
        for directory in removable:
            os.rmdir(directory)
        if os.path.exists(record):
            os.unlink(record)
    return before, {"content": None, "mode": None, "made_directories": []}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/cni/net.d/10-handcni.conflist"),
            config=dict(type="dict"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            made_record=dict(type="path", default="/var/lib/handcni/cni_config_dirs.json"),
        ),
        supports_check_mode=True,
    )
    path, record = module.params["path"], module.params["made_record"]
    actions: list = []
    try:
        if not os.path.isabs(path) or path.endswith("/"):
            raise ValueError(f"path: {path!r} is not an absolute file path")
        change = present if module.params["state"] == "present" else absent
        before, after = change(module, path, record, actions)
    except (ValueError, OSError) as err:
        module.fail_json(msg=f"cni_config {path}: {err}", actions=actions)
    result = dict(changed=bool(actions), actions=actions)
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
