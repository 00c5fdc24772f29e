#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: node_files
short_description: Write the node's files of ours with their content, and remove those no longer wanted, in one call
version_added: 0.1.0
description:
  - Makes each file of O(files) hold exactly its content and mode (replaced atomically; its directory made,
    C(0755), if missing), and removes each path of O(absent) that exists. Nothing else is read or written.
  - The node_prep role writes every file it keeps on a real node with one call (the kernel modules and sysctls
    for boot, the network managers' exclusions, the restore watcher and its unit) instead of a stat and a copy
    per file, and learns from RV(changed_paths) which manager or unit must read its files again.
author: handcni.podnet team (@handcni)
options:
  files:
    description: The files to hold, each with its content.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file.
        type: path
        required: true
      content:
        description: The whole text of the file.
        type: str
        required: true
      mode:
        description: Its permissions, octal.
        type: str
        default: "0644"
  absent:
    description: Absolute paths of files of ours to remove where they exist (directories are left).
    type: list
    elements: path
    default: []
extends_documentation_fragment:
  - handcni.podnet.common.attributes
seealso:
  - module: handcni.podnet.node_info
"""

EXAMPLES = r"""
- name: Load the bridge module at every boot, and no longer the vxlan one's list
  handcni.podnet.node_files:
    files:
      - path: /etc/modules-load.d/handcni-podnet.conf
        content: "bridge\n"
    absent: [/etc/modules-load.d/handcni-podnet-old.conf]
  register: written
"""

RETURN = r"""
actions:
  description: What was changed, or in check mode what would be.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/sysctl.d/90-handcni-podnet.conf", "remove /etc/NetworkManager/conf.d/90-handcni-podnet.conf"]
changed_paths:
  description: The paths written or removed (in check mode, those that would be).
  returned: always
  type: list
  elements: str
  sample: [/etc/sysctl.d/90-handcni-podnet.conf]
"""

import os
import stat

from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._state import read_text, write_text


def absolute(path, field: str) -> str:
    if not isinstance(path, str) or not os.path.isabs(path) or os.path.normpath(path) != path:
        raise ValueError(f"{field}: {path!r} is not an absolute, normalised path")
    return path


def file_mode(value, field: str) -> int:
    try:
        mode = int(str(value), 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"{field}: {value!r} is not an octal file mode such as 0644")
    return mode


def write(path: str, content: str, mode: int) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    write_text(path, content, mode)


def main():
    module = PodnetModule(argument_spec=dict(
        files=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="path", required=True),
            content=dict(type="str", required=True),
            mode=dict(type="str", default="0644"),
        )),
        absent=dict(type="list", elements="path", default=[]),
    ), common=())
    params = module.params
    actions, changed = [], []
    with module.errors():
        paths = [absolute(item["path"], f"files[{i}].path") for i, item in enumerate(params["files"])]
        gone = [absolute(path, f"absent[{i}]") for i, path in enumerate(params["absent"])]
        for index, path in enumerate(paths + gone):
            if (paths + gone).index(path) != index:
                raise ValueError(f"{'files' if index < len(paths) else 'absent'}: {path} is listed twice")
        for index, item in enumerate(params["files"]):
            path, mode = paths[index], file_mode(item["mode"], f"files[{index}].mode")
            if os.path.isdir(path):
                raise ValueError(f"files[{index}].path: {path} is a directory")
            old = read_text(path)
            module.before[path], module.after[path] = old, item["content"]
            if old != item["content"] or stat.S_IMODE(os.stat(path).st_mode) != mode:
                actions.append(Action(f"write {path}", lambda p=path, t=item["content"], m=mode: write(p, t, m)))
                changed.append(path)
        for index, path in enumerate(gone):
            if os.path.isdir(path) and not os.path.islink(path):
                raise ValueError(f"absent[{index}]: {path} is a directory")
            if os.path.lexists(path):
                module.before[path], module.after[path] = read_text(path), None
                actions.append(Action(f"remove {path}", lambda p=path: os.unlink(p)))
                changed.append(path)
        module.apply(actions)
    module.finish(changed_paths=changed)


if __name__ == "__main__":
    main()
