# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The netns module's body (named network namespaces, the pods), run alone or as a part of pod_network."""
from __future__ import annotations

from . import _validate as validate
from ._links import NETNS_ALIAS, netns_is_ours
from ._module import Action
from ._netlink import create_netns, list_netns, netns_exists, netns_path, netns_unpinned, open_session, remove_netns

COMMON = ("state", "prune", "restore")  # namespaces always live in the node's /run/netns
OPTIONS = dict(names=dict(type="list", elements="str", required=True))


def mark_here() -> None:
    """Bring up the loopback of the namespace this thread is in and mark it as ours, before the
    namespace is pinned: a pinned namespace is a marked one."""
    with open_session(None) as ipr:
        ipr.link("set", index=1, state="up", ifalias=NETNS_ALIAS)


def want(module) -> list:
    names = [validate.netns(name, f"names[{i}]") for i, name in enumerate(module.params["names"])]
    validate.unique(names, None, "names")
    return names


def run(module, names: list) -> None:
    params = module.params
    with module.errors(), module.sessions() as sessions:
        actions = []
        for index, name in enumerate(names):
            exists = netns_exists(name)
            if exists and not netns_is_ours(sessions.reader(name)):
                raise ValueError(f"names[{index}]: netns {name} exists and was not made by handcni.podnet; "
                                 "it is left alone")
            present = params["state"] == "present"
            module.before[name] = {"name": name, "present": exists}
            module.after[name] = {"name": name, "present": present}
            debris = " (an empty file left by a create cut short)" if netns_unpinned(name) else ""
            if present and not exists:
                actions.append(Action(f"create netns {name}{debris}", lambda n=name: create_netns(n, setup=mark_here)))
            elif not present and (exists or debris):
                actions.append(Action(f"delete netns {name}{debris}", lambda n=name: remove_netns(n)))
        if params["prune"] and params["state"] == "present":
            for name in sorted(set(list_netns()) - set(names)):
                if netns_is_ours(sessions.reader(name)):
                    module.forget(name)
                    actions.append(Action(f"delete netns {name}", lambda n=name: remove_netns(n)))
        module.apply(actions)
    module.canary["files"] = [netns_path(name) for name in names]
    module.finish(names=names)
