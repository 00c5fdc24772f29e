# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sysctl module's body (net.* sysctls, previous values recorded and put back), run alone or as a part of
pod_network."""
from __future__ import annotations

import os
import re

from ._module import COMMON_OPTIONS, Action
from ._netlink import read_sysctl, sysctl_path, write_sysctl
from ._state import load_json, locked, save_json

COMMON = tuple(COMMON_OPTIONS)
OPTIONS = dict(
    sysctls=dict(type="dict", required=True),
    state_file=dict(type="path", default="/var/lib/handcni/sysctl.json"),
)
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


def want(module) -> dict:
    wanted = {}
    for name, value in module.params["sysctls"].items():
        if not _NAME.fullmatch(name) or ".." in name or "/" in name:
            raise ValueError(f"sysctls: {name!r} is not a net.* sysctl name")
        wanted[name] = normalise(value)
    return wanted


def run(module, wanted: dict) -> None:
    params = module.params
    netns = params["netns"] or ""  # the record is keyed by namespace; "" is the node itself
    # a lock file (and its directory) only where something may be recorded: not for nothing to set and no record
    writes = params["state"] == "present" and (wanted or os.path.exists(params["state_file"]))
    with module.errors(), locked(params["state_file"], create=bool(writes) and not module.check_mode):
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
