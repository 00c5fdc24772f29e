# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module side every handcni.podnet module shares. Private to this collection.

Each module validates its input into `want`, reads `have` from the kernel once,
plans a list of Actions, then `apply()` runs them (or, in check mode, only
records them), so check mode predicts exactly what a real run does.
"""
from __future__ import annotations

import copy
import sys
from contextlib import ExitStack, contextmanager
from types import SimpleNamespace
from typing import Callable, NamedTuple

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from . import _command as command
from . import _restore as restore
from . import _validate as validate
from ._netlink import PYROUTE2_IMPORT_ERROR, Sessions, describe_error, kernel_errors, netns_exists

COMMON_OPTIONS = dict(
    netns=dict(type="str"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    prune=dict(type="bool", default=False),
    restore=dict(type="str"),
)


LONG_LIST = 20  # a list argument longer than this is logged and echoed back as its length


def brief(params: dict) -> dict:
    """The arguments as a run logs them and echoes them back (`invocation`): a long list by its length, since
    10,000 services would otherwise write megabytes to the node's journal and to the result on every run."""
    return {key: f"[{len(value)} items]" if isinstance(value, list) and len(value) > LONG_LIST else value
            for key, value in params.items()}


@contextmanager
def bulk_not_copied(names: tuple):
    """While the arguments load, ansible-core (2.19) keeps a deep copy of them all, read only for one top-level
    key (`_ansible_tracebacks_for`): 10,000 services cost 60 ms there. That copy leaves out the bulk lists
    (a module without any is left to Ansible as it is)."""
    if not names:
        yield
        return

    def deepcopy(value, memo=None):
        if isinstance(value, dict):
            value = {key: item for key, item in value.items() if key not in names}
        return copy.deepcopy(value, memo)
    basic.copy = SimpleNamespace(deepcopy=deepcopy)
    try:
        yield
    finally:
        basic.copy = copy


class Action(NamedTuple):
    description: str
    run: Callable[[], object]


class Run:
    """What a module's body works with: its arguments, its diff (`before`, `after`), the restore canary, the one
    error boundary and the actions. A module run alone is a PodnetModule; inside the pods module each
    part (netns, bridge, veth, ...) is a Part of it, so one body serves both."""

    params: dict
    actions: list
    check_mode: bool
    shared_sessions: Sessions | None = None  # a Part's: its module's sessions (Run.sessions)
    open_sessions: Sessions | None = None  # those of Run.sessions, told of every change (their reads kept go stale)

    def fail_json(self, **kwargs):
        raise NotImplementedError

    def _start(self) -> None:
        self.before: dict = {}
        self.after: dict = {}
        # What a restore record of this run checks (_restore.missing); filled by the body.
        self.canary = restore.empty_canary()
        # Set by a body whose run leaves nothing of its kind (an empty list): no record is kept, since
        # re-running it would make nothing, and site.yml then skips the call where nothing is held (node_info).
        self.leaves_nothing = False
        netns = self.params.get("netns")
        with self.errors():
            if netns is not None and not netns_exists(validate.netns(netns, "netns")):
                raise ValueError(f"netns: network namespace {netns!r} does not exist")
            if self.params.get("restore") is not None:
                validate.name(self.params["restore"], "restore")

    @property
    def where(self) -> str:
        netns = self.params.get("netns")
        return f"netns {netns}" if netns else "the host namespace"

    @property
    def applied(self) -> bool:
        """Whether this run has changed the node so far (an earlier part's actions too, in the pods module)."""
        return bool(self.actions) and not self.check_mode

    @contextmanager
    def errors(self):
        """The one error boundary: bad input and kernel errors become a clear failure."""
        try:
            yield
        except ValueError as err:
            self.fail_json(msg=str(err), actions=self.actions, changed=self.applied)
        except kernel_errors() as err:
            self.fail_json(msg=f"{self.where}: {describe_error(err)}", actions=self.actions, changed=self.applied)

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            self.actions.append(action.description)
            if self.check_mode:
                continue
            try:
                action.run()
                if self.open_sessions is not None:
                    self.open_sessions.changed()
            except kernel_errors() as err:
                self.fail_json(  # the actions before this one were applied: say so
                    msg=f"{action.description} in {self.where}: {describe_error(err)}",
                    actions=self.actions, changed=len(self.actions) > 1,
                )

    @contextmanager
    def sessions(self):
        """The netlink sessions of this run (_netlink.Sessions), one per namespace: a Part shares its module's,
        so the parts of one pods run enter each pod's namespace once."""
        if self.shared_sessions is not None:
            self.open_sessions = self.shared_sessions
            yield self.shared_sessions
            return
        with Sessions() as sessions:
            self.open_sessions = sessions
            yield sessions

    def forget(self, name: str) -> None:
        """Record in the diff that `name` goes away."""
        self.before[name] = {"name": name, "present": True}
        self.after[name] = {"name": name, "present": False}


class PodnetModule(AnsibleModule, Run):
    """`bulk`: list options the module checks itself, item by item, kept out of Ansible's own check, which
    deep-copies every argument (10,000 services: a tenth of a second, on every run)."""

    def __init__(self, argument_spec: dict, common: tuple = tuple(COMMON_OPTIONS), bulk: tuple = (), netlink: bool = True,
                 **kwargs):
        spec = {name: COMMON_OPTIONS[name] for name in common}
        spec.update(argument_spec)
        self._bulk_names, self._bulk = bulk, {}
        super().__init__(argument_spec=spec, supports_check_mode=True, **kwargs)
        for name, value in self._bulk.items():
            if value is not None and not isinstance(value, list):
                self.fail_json(msg=f"{name}: {value!r} is not a list")
        self.params.update(self._bulk)
        if netlink and PYROUTE2_IMPORT_ERROR:
            self.fail_json(msg=missing_required_lib("pyroute2"), exception=PYROUTE2_IMPORT_ERROR)
        self.actions: list[str] = []
        self._start()
        self._held = ExitStack()
        if self.params.get("restore") is not None and not self.check_mode:
            self._held.enter_context(restore.locked())  # no restore re-runs a record while this run changes the node

    def _load_params(self):
        with bulk_not_copied(self._bulk_names):
            super()._load_params()
        self._bulk = {name: self.params.pop(name) for name in self._bulk_names if name in self.params}

    def _brief(self) -> dict:
        """The arguments as logged and echoed (`brief`), the bulk ones too while they are kept apart."""
        return brief(dict(self.params, **self._bulk))

    def _log_invocation(self):
        params, self.params = self.params, self._brief()
        try:
            super()._log_invocation()
        finally:
            self.params = params

    def _return_formatted(self, kwargs):
        kwargs.setdefault("invocation", {"module_args": self._brief()})
        super()._return_formatted(kwargs)

    def run_command(self, args, data=None, binary_data=False, environ_update=None, **kwargs):
        """An argument list runs without AnsibleModule's read loop (command.run_process says why)."""
        if kwargs or isinstance(args, (str, bytes)):
            return super().run_command(args, data=data, binary_data=binary_data, environ_update=environ_update, **kwargs)
        return command.run_process(args, data, binary_data, environ_update)

    def save_restore(self) -> None:
        """Keep this run as the restore record named by `restore` (dropped with state=absent, or when the run
        leaves nothing of its kind)."""
        name = self.params.get("restore")
        if name is None:
            return
        main = sys.modules["__main__"]  # AnsiballZ gives the module its name and payload as globals
        args = {key: value for key, value in self.params.items() if key != "restore"}
        with self.errors():
            if self.params.get("state", "present") == "absent" or self.leaves_nothing:
                self.actions += restore.drop(name, self.check_mode)
            else:
                self.actions += restore.save(name, main._module_fqn, main._modlib_path, args, self.canary,
                                             self.check_mode)

    def finish(self, **result) -> None:
        self.save_restore()
        result.update(changed=bool(self.actions), actions=self.actions)
        if self._diff:
            result["diff"] = {"before": self.before, "after": self.after}
        self.exit_json(**result)


class Part(Run):
    """One body's run inside another module's process (the pods module): its own arguments, diff, canary and
    result; that module's failure, and the actions and check mode it is given (its own, or a dry pass's)."""

    def __init__(self, module: PodnetModule, name: str, params: dict, check_mode: bool, actions: list,
                 sessions: Sessions | None = None):
        self.module, self.name, self.params = module, name, params
        self.actions, self.check_mode, self.shared_sessions = actions, check_mode, sessions
        self.result: dict = {}
        self._start()

    def fail_json(self, **kwargs):
        self.module.fail_json(**kwargs)

    def finish(self, **result) -> None:
        self.result = result


def run_alone(body) -> None:
    """A module whose body lives in module_utils, so that the pods module can run it too: check the
    arguments into what is wanted, then read, plan, apply and finish."""
    module = PodnetModule(body.OPTIONS, common=body.COMMON, netlink=getattr(body, "NETLINK", True))
    with module.errors():
        wanted = body.want(module)
    body.run(module, wanted)
