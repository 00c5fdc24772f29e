# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole-inventory check site.yml runs first, before any node is touched: a thin wrapper of
module_utils/_inventory.py, fed with the roles' own argument specs."""
from __future__ import annotations

import functools
from pathlib import Path

import yaml

from ansible_collections.handcni.podnet.plugins.module_utils._lazy import lazy

inventory = lazy("ansible_collections.handcni.podnet.plugins.module_utils._inventory")  # read once a play
ROLES = Path(__file__).resolve().parents[2] / "roles"


@functools.lru_cache(maxsize=None)
def role_options() -> dict:
    """Every option of every entry point of every role (meta/argument_specs.yml), by name."""
    options: dict = {}
    for path in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        for entry in (yaml.safe_load(path.read_text()).get("argument_specs") or {}).values():
            options.update(entry.get("options") or {})
    return options


def podnet_problems(hostvars: dict, groups: dict) -> list:
    """Every problem of the inventory, one line each, naming the host, the field and the value."""
    return inventory.problems(hostvars, groups, role_options())


class FilterModule:
    def filters(self):
        return {"podnet_problems": podnet_problems}
