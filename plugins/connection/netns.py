# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: netns
short_description: Run a lab node's commands inside that node's namespaces
description:
  - Runs every command of a host inside the network, mount and UTS namespaces of
    a lab node built by C(bin/lab up), as if the node were a separate machine.
  - Each node's namespaces are pinned to files C(STATE_DIR/NODE.net), C(NODE.mnt) and C(NODE.uts).
  - Files are copied in and out through the node's own mount namespace, so a node's
    private C(/run), C(/etc) and C(/var/lib) are honoured.
  - Needs root on the controller, which is also the machine the lab runs on.
author: handcni.podnet team (@handcni)
version_added: 0.1.0
options:
  remote_addr:
    description: The lab node to run in.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_netns_node
  state_dir:
    description: Directory holding the lab's namespace files.
    type: path
    default: /run/handcni-lab
    env:
      - name: HANDCNI_LAB_STATE
    vars:
      - name: ansible_netns_state_dir
"""

import os
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleFileNotFound
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

NAMESPACES = {"net": "net", "mnt": "mount", "uts": "uts"}


class Connection(ConnectionBase):
    """Local execution through nsenter into one lab node."""

    transport = "handcni.podnet.netns"
    has_pipelining = True
    has_tty = False

    def _nsenter(self) -> list[str]:
        node = self.get_option("remote_addr")
        state_dir = self.get_option("state_dir")
        return ["nsenter"] + [
            f"--{option}={os.path.join(state_dir, f'{node}.{suffix}')}"
            for suffix, option in NAMESPACES.items()
        ] + ["--"]

    def _connect(self):
        if not self._connected:
            node = self.get_option("remote_addr")
            pinned = os.path.join(self.get_option("state_dir"), f"{node}.net")
            if not os.path.exists(pinned):
                raise AnsibleConnectionFailure(
                    f"lab node {node} is not up ({pinned} is missing): run bin/lab up"
                )
            display.vvv(f"NETNS CONNECTION to lab node {node}", host=node)
            self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=False):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = self._nsenter() + ["/bin/sh", "-c", cmd]
        display.vvv(f"EXEC {argv}", host=self.get_option("remote_addr"))
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        if not os.path.exists(in_path):
            raise AnsibleFileNotFound(f"file to copy does not exist: {in_path}")
        with open(in_path, "rb") as source:
            proc = subprocess.run(
                self._nsenter() + ["/bin/sh", "-c", 'cat > "$1"', "put_file", out_path],
                stdin=source,
                stderr=subprocess.PIPE,
                check=False,
            )
        if proc.returncode != 0:
            raise AnsibleConnectionFailure(f"could not write {out_path}: {proc.stderr.decode(errors='replace')}")

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        with open(out_path, "wb") as target:
            proc = subprocess.run(
                self._nsenter() + ["cat", "--", in_path],
                stdout=target,
                stderr=subprocess.PIPE,
                check=False,
            )
        if proc.returncode != 0:
            raise AnsibleConnectionFailure(f"could not read {in_path}: {proc.stderr.decode(errors='replace')}")

    def close(self):
        self._connected = False
