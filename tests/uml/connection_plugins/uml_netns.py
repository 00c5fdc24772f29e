# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only connection: the lab node's namespaces live inside the user-mode Linux guest of
tests/uml/run, so every command of handcni.podnet.netns runs there, through tests/uml/guest.py."""
from __future__ import annotations

DOCUMENTATION = r"""
name: uml_netns
short_description: handcni.podnet.netns, inside the user-mode Linux guest of tests/uml/run
description:
  - Runs each command of a lab node the way C(handcni.podnet.netns) does (nsenter into the node's
    namespaces), but inside the UML guest, through C(tests/uml/guest.py).
author: handcni.podnet team (@handcni)
extends_documentation_fragment: []
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
    description: Directory holding the lab's namespace files, inside the guest.
    type: path
    default: /run/handcni-lab
    env:
      - name: HANDCNI_LAB_STATE
    vars:
      - name: ansible_netns_state_dir
"""

import os
import sys

from ansible.utils.display import Display
from ansible_collections.handcni.podnet.plugins.connection.netns import Connection as NetnsConnection

display = Display()
GUEST = [sys.executable, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "guest.py")]


class Connection(NetnsConnection):
    transport = "uml_netns"

    def _nsenter(self) -> list[str]:
        return GUEST + ["--"] + super()._nsenter()

    def _connect(self):
        # The namespace files are in the guest, not here: the first command shows whether the node is up.
        self._connected = True
        return self
