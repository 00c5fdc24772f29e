#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: frr_bgp
short_description: Run an FRR instance (zebra and bgpd) as a BGP speaker, from a validated configuration
version_added: 0.1.0
description:
  - Renders an integrated C(frr.conf) for an FRR instance of its own, in the pathspace O(pathspace)
    (C(/etc/frr/NAME/), C(/run/frr/NAME/), C(/var/log/frr/NAME/); C(vtysh -N NAME)), so a leaf's own FRR, if
    any, is never touched. The configuration is what a Cumulus or FRR leaf of seed 004 lab 9 holds, C(router
    bgp) with the router id, one neighbour per node with its AS, source address, MD5 password, timers, graceful
    restart and prefix limit, and per-neighbour prefix lists in and out (a neighbour without rules gets a list
    that denies everything, never a missing list, which FRR would take as permitting everything).
  - The new text is checked with C(vtysh -N NAME --dryrun -f FILE) before it is installed, so a configuration
    that does not parse never replaces a working one.
  - When zebra and bgpd run (their PID files name live processes), a changed configuration is applied with
    C(frr-reload.py --reload), which changes only what differs, so unchanged sessions are not reset. Without
    C(frr-reload.py) (Debian package C(frr-pythontools)), or when it cannot apply a change at run time (such
    as graceful restart), the instance is restarted instead. If the running instance does not have the listed
    neighbours (or AS, or router id) it is reloaded too.
  - When they do not run, on a node booted with systemd the pathspace's own unit of the FRR package,
    C(frr@NAME.service) (C(frrinit.sh) and C(watchfrr) reading the C(daemons) file this module writes), is
    enabled at boot and started; elsewhere (a namespace lab node) C(zebra) and C(bgpd) are started as
    O(user), detached, with PID files in C(/run/frr/NAME/) and no vty TCP port, and C(vtysh -N NAME -b) loads
    the configuration (under the unit, C(frrinit.sh) loads it into each daemon as it starts).
  - Returns, per neighbour, the session as C(show bgp summary json) reports it, including how many times
    it was established (so a reset is visible). With O(wait_established) it waits for every session and
    fails naming each neighbour that did not come up, with its state and FRR's last error.
  - O(state=absent) stops bgpd and zebra (by their unit, disabled, or by their PID files; zebra then removes its
    routes) and removes the
    pathspace's configuration, run and log directories, if this module wrote the configuration.
  - Passwords never appear in the output, the diff (masked, marked when changed) or the actions.
  - Commands run with argument lists. No shell is involved.
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.bgp
  - handcni.podnet.common.attributes
options:
  state:
    description:
      - V(present) installs the configuration and makes the instance run it.
      - V(absent) stops the instance (by its PID files) and removes its configuration directory.
    type: str
    choices: [present, absent]
    default: present
  pathspace:
    description: The FRR pathspace (C(-N NAME)) of the instance; it owns C(/etc/frr/NAME) and C(/run/frr/NAME).
    type: str
    default: handcni
  hostname:
    description: The C(hostname) in the configuration; defaults to the node's host name.
    type: str
  user:
    description: User and group the daemons run as, and owner of the configuration (mode C(0640)).
    type: str
    default: frr
  daemon_dir:
    description: Where the FRR daemons and C(frr-reload.py) are.
    type: path
    default: /usr/lib/frr
requirements:
  - FRR 8 (Debian package C(frr)); C(frr-pythontools) for reloads without restart
  - root on the node
notes:
  - A neighbour's family is its address's - an IPv6 neighbour gets C(ipv6 prefix-list)s and is activated in
    C(address-family ipv6 unicast) only (and an IPv4 one in C(address-family ipv4 unicast) only), with the IPv6
    O(networks).
  - A neighbour on the same AS is iBGP; a leaf reflecting routes between nodes of one AS sets
    O(neighbors[].route_reflector_client) and O(neighbors[].next_hop_self) (rendered C(next-hop-self force)).
seealso:
  - module: handcni.podnet.bird_bgp
  - name: FRR BGP documentation
    description: The configuration rendered here.
    link: https://docs.frrouting.org/en/stable-8.4/bgp.html
"""

EXAMPLES = r"""
- name: The leaf of seed lab 9 - one eBGP session per node, each may announce only its pod CIDR
  handcni.podnet.frr_bgp:
    router_id: 192.168.210.254
    local_as: 65000
    neighbors:
      - name: worker2
        address: 192.168.210.22
        remote_as: 65002
        source_address: 192.168.210.254
        import_prefixes: [192.168.20.0/24]
        export_prefixes:
          - {prefix: 192.168.20.0/24, action: deny}
          - {prefix: 192.168.0.0/16, ge: 24, le: 24}
        import_limit: 10
    wait_established: true

- name: Stop the instance and remove its configuration
  handcni.podnet.frr_bgp:
    state: absent
"""

RETURN = r"""
actions:
  description: What was done, or in check mode what would be.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/frr/handcni/frr.conf (checked with vtysh --dryrun)", "frr-reload.py --reload"]
config_file:
  description: The integrated configuration file.
  returned: always
  type: str
  sample: /etc/frr/handcni/frr.conf
running:
  description: Whether zebra and bgpd run after the run (in check mode, before it).
  returned: always
  type: bool
pids:
  description: The PIDs of the instance's daemons that run.
  returned: always
  type: dict
  sample: {zebra: 4242, bgpd: 4250}
sessions:
  description: The BGP session of each neighbour, by name (FRR's address when not listed).
  returned: always
  type: dict
  sample:
    worker2: {name: worker2, address: 192.168.210.22, remote_as: 65002, state: Established,
              since: "1714564803", info: "", established: true, established_count: 1}
neighbors:
  description: The neighbours as configured, normalised; C(password) only says whether one is set.
  returned: always
  type: list
  elements: dict
diff:
  description: The configuration text before and after, passwords masked.
  returned: when diff mode is on
  type: dict
"""

import os
import pwd
import re
import shutil
import socket

from ansible_collections.handcni.podnet.plugins.module_utils import _bgp as bgp
from ansible_collections.handcni.podnet.plugins.module_utils import _daemon
from ansible_collections.handcni.podnet.plugins.module_utils import _frr as frr
from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._state import read_text, write_text

CONFIG_ROOT = "/etc/frr"
RUN_ROOT = "/var/run/frr"
LOG_ROOT = "/var/log/frr"
_PATHSPACE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class Instance:
    """One FRR pathspace instance: its paths, daemons and commands (argument lists)."""

    def __init__(self, module: PodnetModule):
        self.module = module
        name = module.params["pathspace"]
        if not isinstance(name, str) or not _PATHSPACE.fullmatch(name):
            raise ValueError(f"pathspace: {name!r} is not a valid pathspace name (letters, digits, '_', '-', "
                             "at most 32)")
        self.name = name
        self.config_dir = os.path.join(CONFIG_ROOT, name)
        self.config_file = os.path.join(self.config_dir, "frr.conf")
        self.run_dir = os.path.join(RUN_ROOT, name)
        self.log_dir = os.path.join(LOG_ROOT, name)
        self.daemons = {d: _daemon.Process(d, os.path.join(self.run_dir, f"{d}.pid")) for d in frr.DAEMONS}
        # the daemons the configuration needs (and absent stops every one of them)
        self.wanted = frr.daemons(bgp.speaker(module.params)) if module.params["state"] == "present" \
            else ("zebra", "bgpd")
        self.unit = None
        if _daemon.uses_systemd(None):
            self.unit = _daemon.Systemd(module.run_command, module.get_bin_path("systemctl", required=True),
                                        f"frr@{name}.service")

    @property
    def supervisor(self) -> str:
        return f"as systemd unit {self.unit.unit}, enabled at boot" if self.unit else f"as {self.module.params['user']}"

    @property
    def owner(self) -> tuple:
        """(uid, gid) of O(user): only needed to write, so removal works where FRR is not installed."""
        try:
            user = pwd.getpwnam(self.module.params["user"])
        except KeyError:
            raise ValueError(f"user: {self.module.params['user']!r} does not exist on the node "
                             "(is FRR installed?)") from None
        return user.pw_uid, user.pw_gid

    def tool(self, name: str, directory: str | None = None) -> str | None:
        if directory:
            path = os.path.join(directory, name)
            return path if os.access(path, os.X_OK) else None
        return self.module.get_bin_path(name)

    def vtysh_argv(self, *args: str) -> list:
        path = self.tool("vtysh")
        if not path:
            raise ValueError("vtysh is not installed on the node (Debian package frr)")
        return [path, "-N", self.name, *args]

    def vtysh(self, *args: str) -> tuple:
        return self.module.run_command(self.vtysh_argv(*args), environ_update={"LC_ALL": "C"})

    def pids(self) -> dict:
        return {name: pid for name, daemon in self.daemons.items() if (pid := daemon.pid()) is not None}

    def running(self) -> bool:
        return set(self.wanted) <= set(self.pids())

    def check(self, text: str) -> None:
        _daemon.check_config(self.module, text, self.config_file,
                             lambda path: self.vtysh_argv("--dryrun", "-f", path), "vtysh --dryrun")

    def summary(self) -> tuple:
        rc, out, err = self.vtysh("-c", "show bgp summary json")
        if rc != 0:
            raise OSError(f"vtysh -N {self.name} -c 'show bgp summary json' failed: {(err or out).strip()}")
        return out

    def configured(self) -> bool:
        """bgpd runs with a BGP instance of ours (its summary names a router id)."""
        rc, out, _err = self.vtysh("-c", "show bgp summary json")
        try:
            return rc == 0 and frr.parse_summary(out, ())[0] is not None
        except ValueError:
            return False

    def errors(self) -> dict:
        rc, out, _err = self.vtysh("-c", "show bgp neighbors json")
        return frr.neighbor_errors(out) if rc == 0 else {}

    def write_files(self, files: dict) -> None:
        uid, gid = self.owner
        bgp.make_dir(self.config_dir, 0o750, uid, gid)
        for path, text in files.items():
            write_text(path, text, 0o640, uid, gid)

    def start(self) -> None:
        uid, gid = self.owner
        for directory in (self.run_dir, self.log_dir):
            os.makedirs(os.path.dirname(directory), mode=0o755, exist_ok=True)
            bgp.make_dir(directory, 0o750, uid, gid)
        if self.unit:
            if not self.unit.active():
                self.stop_processes()  # started by hand, or before the node had systemd
            self.unit.start()  # watchfrr starts the daemons the `daemons` file lists, and restarts them
        else:
            self.start_processes()
        sockets = [os.path.join(self.run_dir, f"{name}.vty") for name in self.wanted]
        _daemon.until(lambda: all(os.path.exists(path) for path in sockets), 15,
                      f"FRR daemons started but their vty sockets are missing in {self.run_dir}")
        if self.unit:
            # frrinit.sh loads the configuration into each daemon as watchfrr starts it; loading it again
            # would register every BFD session a second time and reset the sessions
            _daemon.until(self.configured, 30, f"bgpd did not load {self.config_file} within 30s")
            return
        rc, out, err = self.vtysh("-b")
        if rc != 0:
            raise OSError(f"vtysh -N {self.name} -b could not load {self.config_file}: {(err or out).strip()}")

    def start_processes(self) -> None:
        self.stop_processes()  # whatever part of the instance still runs
        user = self.module.params["user"]
        log = os.path.join(self.log_dir, "daemons.log")
        for name in self.wanted:
            daemon = self.daemons[name]
            path = self.tool(name, self.module.params["daemon_dir"])
            if not path:
                raise ValueError(f"daemon_dir: {name} is not in {self.module.params['daemon_dir']}")
            argv = [path, "-d", "-N", self.name, "-u", user, "-g", user, "-P", "0", "-i", daemon.pid_file]
            daemon.start(argv + (["-s", "90000000"] if name == "zebra" else []), log=log)

    def stop(self) -> None:
        if self.unit:
            self.unit.stop()
        self.stop_processes()

    def stop_processes(self) -> None:
        for name in reversed(frr.DAEMONS):  # bgpd first, so zebra withdraws the routes it installed
            self.daemons[name].stop()

    def reload(self) -> None:
        script = self.tool("frr-reload.py", self.module.params["daemon_dir"])
        if not script:
            self.start()
            return
        text = read_text(self.config_file)
        rc, out, err = self.module.run_command(
            [script, "--reload", "--stdout", "--pathspace", self.name, "--rundir", self.run_dir,
             self.config_file], environ_update={"LC_ALL": "C"})
        # frr-reload.py ends with `write` for a file outside /etc/frr, replacing ours with FRR's own
        # rendering (and a .sav copy): put ours back, so the next run compares like with like.
        uid, gid = self.owner
        write_text(self.config_file, text, 0o640, uid, gid)
        saved = self.config_file + ".sav"
        if os.path.exists(saved):
            os.unlink(saved)
        if rc != 0:
            lines = [line.strip() for line in (out + err).splitlines() if line.strip()]
            refused = [line for line in lines if re.match(r"^line \d+:", line)] or lines[-1:]
            raise OSError(f"frr-reload.py --reload failed: {'; '.join(refused)}")


def present(module: PodnetModule, inst: Instance, running: bool) -> dict:
    params = module.params
    speaker = bgp.speaker(params)
    bgp.in_range(params["wait_timeout"], "wait_timeout", 0, 3600)
    hostname = params["hostname"] or socket.gethostname()
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", hostname):
        raise ValueError(f"hostname: {hostname!r} is not a valid host name")
    new = frr.render(speaker, hostname, os.path.join(inst.log_dir, "frr.log"))
    old = read_text(inst.config_file)
    files = {inst.config_file: new, os.path.join(inst.config_dir, "daemons"): frr.daemons_file("-P 0", inst.wanted),
             os.path.join(inst.config_dir, "vtysh.conf"): frr.VTYSH_CONF}
    owner = inst.owner
    stale = [path for path, text in files.items()
             if read_text(path) != text or bgp.file_mode(path) != (0o640, *owner)]
    changed = bgp.changed_passwords(old, new, frr.PASSWORD)
    module.before = bgp.mask_passwords(old or "", frr.PASSWORD)
    module.after = bgp.mask_passwords(new, frr.PASSWORD, changed)
    drift = False
    if running:
        router_id, local_as, sessions = frr.parse_summary(inst.summary(), speaker.neighbors)
        drift = (router_id, local_as) != (speaker.router_id, speaker.local_as) or \
            {s.address for s in sessions.values()} != {item.address for item in speaker.neighbors}
    actions = []
    if old != new:
        inst.check(new)  # in check mode too: a plan that could not apply fails now
    if stale:
        what = ", ".join(os.path.basename(path) for path in stale)
        checked = " (checked with vtysh --dryrun)" if inst.config_file in stale else ""
        actions.append(Action(f"write {what} in {inst.config_dir}{checked}", lambda: inst.write_files(files)))
    if running and (old != new or drift):
        reload = "frr-reload.py --reload" if inst.tool("frr-reload.py", params["daemon_dir"]) else \
            "restart zebra and bgpd (frr-reload.py is not installed)"
        actions.append(Action(reload, lambda: reload_or_restart(module, inst)))
    elif not running:
        actions.append(Action(f"start {' and '.join(inst.wanted)} (-N {inst.name}, {inst.supervisor}) and load "
                              f"{inst.config_file}", inst.start))
    if running and inst.unit and inst.unit.show("UnitFileState") != "enabled":
        actions.append(Action(f"run {' and '.join(inst.wanted)} {inst.supervisor}", inst.start))
    module.apply(actions)
    result = dict(neighbors=[item.public() for item in speaker.neighbors], sessions={})
    if module.check_mode and not running:
        return result

    def read() -> dict:
        return frr.parse_summary(inst.summary(), speaker.neighbors)[2]

    sessions = read()
    if params["wait_established"] and not module.check_mode:
        sessions = bgp.wait_established(module, read, speaker.neighbors, params["wait_timeout"],
                                        explain=lambda found: explain(inst, found),
                                        details=lambda: dict(config_file=inst.config_file))
    result["sessions"] = {name: session.public() for name, session in sessions.items()}
    return result


def explain(inst: Instance, sessions: dict) -> dict:
    """The sessions, those down with bgpd's last error where the summary gave none."""
    errors = inst.errors()
    return {name: session._replace(info=errors[session.address])
            if not session.established and not session.info and errors.get(session.address) else session
            for name, session in sessions.items()}


def reload_or_restart(module: PodnetModule, inst: Instance) -> None:
    """Apply the new (already checked) file; what frr-reload.py cannot change at run time (such as
    graceful restart, or `frr defaults`) makes it fail, and a restart then loads the file whole."""
    try:
        inst.reload()
    except OSError as err:
        module.warn(f"{err}; restarting the instance instead")
        module.actions.append("restart zebra and bgpd: frr-reload.py could not apply the change")
        inst.start()


def absent(module: PodnetModule, inst: Instance, running: bool) -> dict:
    old = read_text(inst.config_file)
    module.before = bgp.mask_passwords(old or "", frr.PASSWORD)
    module.after = module.before
    actions = []
    pids = inst.pids()
    if inst.unit and (pids or inst.unit.show("UnitFileState") == "enabled"):
        actions.append(Action(f"stop and disable {inst.unit.unit}", inst.stop))
    elif pids:
        actions.append(Action("stop " + " and ".join(f"{name} (PID {pid})" for name, pid in sorted(pids.items())),
                              inst.stop))
    if frr.owned(old):
        actions.append(Action(f"remove {inst.config_dir}", lambda: shutil.rmtree(inst.config_dir)))
        module.after = ""
    elif old is not None:
        module.warn(f"{inst.config_file} was not written by this module (no handcni.podnet header): left in place")
    for directory in (inst.run_dir, inst.log_dir):
        if os.path.isdir(directory) and (frr.owned(old) or old is None):
            actions.append(Action(f"remove {directory}", lambda d=directory: shutil.rmtree(d)))
    for directory in bgp.dirs_left_empty([inst.run_dir]):  # /run/frr, which start() makes where FRR never ran
        actions.append(Action(f"remove {directory}", lambda d=directory: shutil.rmtree(d, ignore_errors=True)))
    module.apply(actions)
    return dict(neighbors=[], sessions={})


def main():
    module = PodnetModule(
        argument_spec=dict(
            bgp.SPEAKER_SPEC,
            pathspace=dict(type="str", default="handcni"),
            hostname=dict(type="str"),
            user=dict(type="str", default="frr"),
            daemon_dir=dict(type="path", default="/usr/lib/frr"),
        ),
        common=("state",),
    )
    with module.errors():
        inst = Instance(module)
        running = inst.running()
        handler = present if module.params["state"] == "present" else absent
        result = handler(module, inst, running)
        if not module.check_mode:
            running = inst.running()
    module.finish(config_file=inst.config_file, running=running, pids=inst.pids(), **result)


if __name__ == "__main__":
    main()
