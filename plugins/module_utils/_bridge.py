# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bridge module's body (the node bridge holding the pods' gateway), run alone or as a part of pod_network."""
from __future__ import annotations

from . import _validate as validate
from ._links import OwnedLinkPlanner, compared, owner_alias
from ._module import COMMON_OPTIONS, Action

ALIAS = owner_alias("bridge")
COMMON = tuple(COMMON_OPTIONS)
OPTIONS = dict(
    bridges=dict(
        type="list", elements="dict", required=True,
        options=dict(
            name=dict(type="str", required=True),
            mtu=dict(type="int"),
            mac=dict(type="str"),
            addresses=dict(type="list", elements="str", default=[]),
        ),
    ),
)


def normalise(item: dict, field: str, state: str) -> dict:
    name = validate.ifname(item["name"], f"{field}.name")
    if state == "absent":
        return {"name": name}
    return {
        "name": name,
        "mtu": validate.mtu(item["mtu"], f"{field}.mtu") if item.get("mtu") is not None else None,
        "mac": validate.mac(item["mac"], f"{field}.mac") if item.get("mac") else None,
        "addresses": validate.interfaces(item.get("addresses"), f"{field}.addresses"),
        "up": True,
    }


def public(state: dict) -> dict:
    return {k: v for k, v in state.items() if v is not None and k not in ("owned", "kind", "master")}


class BridgePlanner(OwnedLinkPlanner):
    option = "bridges"
    kind = "bridge"
    kind_name = "a bridge"
    alias = ALIAS

    def create(self, want: dict) -> None:
        self.add(want["name"], want)

    def plan_present(self, field: str, want: dict, link, have: dict | None) -> list[Action]:
        name = want["name"]
        self.module.after[name] = public(want)
        if have is None:
            return [self.creation(want)]
        self.module.before[name] = public(dict(compared(have, want), name=name))
        return self.changes(name, have, want)


def want(module) -> list:
    return BridgePlanner.want(module, normalise)


def run(module, wanted: list) -> None:
    BridgePlanner.run_wanted(module, wanted, public)
