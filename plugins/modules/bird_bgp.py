#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: bird_bgp
short_description: Run BIRD 2 as a node's BGP speaker, from a validated configuration
version_added: 0.1.0
description:
  - Renders a complete BIRD 2 configuration (seed 004 lab 9, C(/etc/bird/bird.conf)) with the router id, the
    C(device) and C(kernel) protocols (routes learned by BGP go into the kernel, nothing else does),
    optionally C(direct) on some interfaces, the O(networks) this node originates, and one C(bgp) protocol
    per neighbour with its AS, source address, MD5 password, timers, graceful restart, prefix limit and
    import and export prefix filters.
  - The new text is checked with C(bird -p -c FILE) before it is installed, so a configuration that does
    not parse never replaces a working one; if applying it fails, the previous file is put back.
  - When BIRD answers on O(socket) it is told to re-read the file (C(birdc -s SOCKET configure "FILE")), only
    when the text changed; BIRD then restarts only the protocols whose options changed, so an unchanged
    session is never reset. When it does not answer, BIRD is started (C(bird -c FILE -s SOCKET -P PIDFILE)),
    detached, and the module waits for its socket.
  - Returns the state of every protocol (parsed from C(birdc show protocols all)) and, per neighbour, the
    BGP session. With O(wait_established) it waits for every session and fails naming each neighbour
    that did not come up, with its BGP state and BIRD's last error.
  - O(state=absent) stops the BIRD named by O(pid_file) (SIGTERM, so it says goodbye to its peers and
    they withdraw its routes at once) and removes O(config_file) if this module wrote it. A file found there
    before the first run (such as the distribution's C(bird.conf)) is kept as C(FILE.handcni-saved) and put back.
  - Passwords never appear in the output, the diff (masked, marked when changed) or the actions.
  - Commands run with argument lists; inside O(netns) through C(nsenter --net). No shell is involved.
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.bgp
  - handcni.podnet.common.attributes
options:
  netns:
    description:
      - Named network namespace to run BIRD in (through C(nsenter --net)). Give it its own O(config_file),
        O(socket) and O(pid_file) when several BIRDs share a file system.
      - Omit to run in the namespace the module runs in (the node itself, or a lab node).
    type: str
  state:
    description:
      - V(present) installs the configuration and makes BIRD run it.
      - V(absent) stops BIRD (by O(pid_file)) and removes O(config_file) if this module wrote it.
    type: str
    choices: [present, absent]
    default: present
  direct_interfaces:
    description: Interfaces whose connected networks BIRD learns (C(protocol direct)), such as the pod bridge.
    type: list
    elements: str
    default: []
  kernel_export:
    description: Install the routes learned by BGP in the kernel's main table (BIRD's C(proto bird)).
    type: bool
    default: true
  scan_time:
    description: Seconds between BIRD's scans of the interfaces and the kernel table.
    type: int
    default: 10
  config_file:
    description: BIRD's configuration file; written with mode C(0600), or C(0640) to O(group).
    type: path
    default: /etc/bird/bird.conf
  socket:
    description: BIRD's control socket (C(bird -s), C(birdc -s)).
    type: path
    default: /run/bird/bird.ctl
  pid_file:
    description: BIRD's PID file (C(bird -P)); O(state=absent) stops the process it names, nothing else.
    type: path
    default: /run/bird/bird.pid
  user:
    description: User BIRD drops to after starting (C(bird -u)); it keeps the capabilities it needs.
    type: str
  group:
    description: Group BIRD drops to (C(bird -g)); the configuration is then readable by it (C(0640)).
    type: str
notes:
  - BIRD 2 (Debian's C(bird2)). A neighbour's family is its address's - an IPv6 neighbour gets an C(ipv6) channel, and
    IPv6 routes learned go into the kernel through a second kernel protocol (C(handcni_kernel6)); IPv6
    O(networks) are originated by C(handcni_networks6). Of an IPv6 route's next hops the global one is
    installed (C(next hop prefer global)), not the sender's link-local one.
  - "How BIRD runs: on a node booted with systemd (and without O(netns)) it is Debian's C(bird.service)
    with a drop-in C(/etc/systemd/system/bird.service.d/handcni-podnet.conf) naming O(config_file) and
    O(socket), enabled at boot, so it comes back after a reboot; it runs as user C(bird), and reads the
    configuration through group C(bird) unless O(group) says otherwise; O(user) and O(pid_file) are not used.
    Elsewhere (the namespace lab) it is a process of ours known by O(pid_file)."
  - The originated O(networks) are C(unreachable) routes inside BIRD; they are never put in the kernel,
    where the pod bridge or the pods' host routes already route them.
  - A neighbour on the same AS (iBGP) without O(neighbors[].multihop) is taken as directly connected
    (BIRD's C(direct), so its next hops need no IGP).
  - Stopping BIRD with SIGKILL, or losing the node, leaves its routes at peers that do graceful restart
    until their restart timer runs out; a clean stop withdraws them at once.
seealso:
  - module: handcni.podnet.frr_bgp
  - name: BIRD 2 user's guide
    description: The configuration language rendered here.
    link: https://bird.network.cz/?get_doc&v=20&f=bird.html
"""

EXAMPLES = r"""
- name: Seed lab 9 on worker2 - announce the pod CIDR to the leaf, learn the others
  handcni.podnet.bird_bgp:
    router_id: 192.168.210.22
    local_as: 65002
    networks: [192.168.20.0/24]
    neighbors:
      - name: leaf03
        address: 192.168.210.254
        remote_as: 65000
        source_address: 192.168.210.22
        password: "{{ vault_bgp_password }}"
        hold_time: 9
        keepalive_time: 3
        import_prefixes:
          - {prefix: 192.168.20.0/24, action: deny}   # our own, never learned back
          - {prefix: 192.168.0.0/16, ge: 24, le: 24}  # other nodes' pod CIDRs
        export_prefixes:
          - 192.168.20.0/24
        import_limit: 100
    wait_established: true
    wait_timeout: 60

- name: Stop BIRD and remove its configuration
  handcni.podnet.bird_bgp:
    state: absent
"""

RETURN = r"""
actions:
  description: What was done, or in check mode what would be.
  returned: always
  type: list
  elements: str
  sample: ["write /etc/bird/bird.conf (checked with bird -p)", "birdc configure"]
config_file:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/bird/bird.conf
running:
  description: Whether BIRD answers on its socket after the run (in check mode, before it).
  returned: always
  type: bool
  sample: true
pid:
  description: The PID of the BIRD named by O(pid_file), if it runs.
  returned: always
  type: int
  sample: 4242
protocols:
  description: Every protocol of the running BIRD, from C(birdc show protocols all).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: leaf03, proto: BGP, table: "---", state: up, since: "2024-05-01 12:00:03", info: Established,
       bgp_state: Established, neighbor_address: 192.168.210.254, neighbor_as: 65000}
sessions:
  description: The BGP session of each listed neighbour, by name.
  returned: always
  type: dict
  sample:
    leaf03: {name: leaf03, address: 192.168.210.254, remote_as: 65000, state: Established,
             since: "2024-05-01 12:00:03", info: "", established: true, established_count: null}
neighbors:
  description: The neighbours as configured, normalised; C(password) only says whether one is set.
  returned: always
  type: list
  elements: dict
supervisor:
  description: What runs BIRD on the node.
  returned: always
  type: str
  sample: systemd unit bird.service
diff:
  description: The configuration text before and after, passwords masked.
  returned: when diff mode is on
  type: dict
"""

import grp
import os
import shutil

from ansible_collections.handcni.podnet.plugins.module_utils import _bgp as bgp
from ansible_collections.handcni.podnet.plugins.module_utils import _bird as bird
from ansible_collections.handcni.podnet.plugins.module_utils import _daemon
from ansible_collections.handcni.podnet.plugins.module_utils import _validate as validate
from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._state import read_text, write_text
from ansible_collections.handcni.podnet.plugins.module_utils._netlink import netns_path


UNIT = "bird.service"


class Bird:
    """BIRD on this node (or in a netns): its commands, as argument lists."""

    def __init__(self, module: PodnetModule):
        self.module = module
        self.params = module.params
        self.process = _daemon.Process("bird", self.params["pid_file"])
        self.unit = None
        if _daemon.uses_systemd(self.params["netns"]):
            self.unit = _daemon.Systemd(module.run_command, module.get_bin_path("systemctl", required=True), UNIT)

    @property
    def supervisor(self) -> str:
        return "systemd unit " + UNIT if self.unit else "process"

    def pid(self) -> int | None:
        return self.unit.pid() if self.unit else self.process.pid()

    def dropin(self) -> str:
        """Debian's bird.service run with our configuration and socket (its own ExecStart reads the default)."""
        bird_path, birdc_path = self.argv("bird")[-1], self.argv("birdc")[-1]
        config, socket = self.params["config_file"], self.params["socket"]
        return (f"# Written by handcni.podnet (bird_bgp): Debian's unit with this collection's configuration.\n"
                f"[Service]\nExecStartPre=\nExecStartPre=/usr/lib/bird/prepare-environment\n"
                f"ExecStartPre={bird_path} -p -c {config}\n"
                f"ExecStart=\nExecStart={bird_path} -f -u $BIRD_RUN_USER -g $BIRD_RUN_GROUP -c {config} -s {socket}\n"
                f"ExecReload=\nExecReload={birdc_path} -s {socket} configure\n")

    def argv(self, tool: str, *args: str) -> list:
        path = self.module.get_bin_path(tool)
        if not path:
            raise ValueError(f"{tool} is not installed on the node (Debian package bird2)")
        prefix = []
        if self.params["netns"]:
            nsenter = self.module.get_bin_path("nsenter", required=True)
            prefix = [nsenter, f"--net={netns_path(self.params['netns'])}", "--"]
        return prefix + [path, *args]

    def birdc(self, *args: str) -> tuple:
        return self.module.run_command(self.argv("birdc", "-s", self.params["socket"], *args),
                                       environ_update={"LC_ALL": "C"})

    def answers(self) -> bool:
        if not os.path.exists(self.params["socket"]) or not self.module.get_bin_path("birdc"):
            return False
        return self.birdc("show", "status")[0] == 0

    def check(self, text: str) -> None:
        _daemon.check_config(self.module, text, self.params["config_file"],
                             lambda path: self.argv("bird", "-p", "-c", path), "bird -p")

    def configure(self) -> None:
        rc, out, err = self.birdc("configure", '"%s"' % self.params["config_file"])
        if rc != 0 or "Reconfigur" not in out:
            raise OSError(f"birdc configure failed: {(out + err).strip()}")

    def start(self) -> None:
        if self.unit:
            self.unit.start(self.dropin())
        else:
            self.start_process()
        _daemon.until(self.answers, 15, f"bird started but does not answer on {self.params['socket']}")

    def stop(self) -> bool:
        return self.unit.stop() if self.unit else self.process.stop()

    def start_process(self) -> None:
        for directory in sorted({os.path.dirname(self.params["socket"]), os.path.dirname(self.params["pid_file"])}):
            os.makedirs(directory, mode=0o755, exist_ok=True)
        args = ["-c", self.params["config_file"], "-s", self.params["socket"], "-P", self.params["pid_file"]]
        if self.params["user"]:
            args += ["-u", self.params["user"]]
        if self.params["group"]:
            args += ["-g", self.params["group"]]
        self.process.start(self.argv("bird", *args))

    def protocols(self) -> list:
        rc, out, err = self.birdc("show", "protocols", "all")
        if rc != 0:
            raise OSError(f"birdc show protocols all failed: {(out + err).strip()}")
        return bird.parse_protocols(out)


class ConfigFile:
    """The configuration file: its text, its mode and owner, written atomically, restored on failure."""

    def __init__(self, path: str, group: str | None):
        self.path = path
        self.mode, self.uid, self.gid = 0o600, 0, 0
        if group:
            try:
                self.mode, self.gid = 0o640, grp.getgrnam(group).gr_gid
            except KeyError:
                raise ValueError(f"group: {group!r} does not exist on the node") from None
        self.old = read_text(path)

    def right_mode(self) -> bool:
        return bgp.file_mode(self.path) == (self.mode, self.uid, self.gid)

    @property
    def saved(self) -> str:
        return self.path + ".handcni-saved"

    def write(self, text: str) -> None:
        os.makedirs(os.path.dirname(self.path), mode=0o750, exist_ok=True)
        if self.old is not None and not bird.owned(self.old) and not os.path.exists(self.saved):
            shutil.copy2(self.path, self.saved)  # the file found before us, put back by state=absent
        write_text(self.path, text, self.mode, self.uid, self.gid)

    def restore(self) -> None:
        if self.old is None:
            os.unlink(self.path)
        else:
            self.write(self.old)


def present(module: PodnetModule, daemon: Bird, config: ConfigFile, running: bool) -> dict:
    params = module.params
    speaker = bgp.speaker(params)
    interfaces = tuple(validate.ifname(name, f"direct_interfaces[{i}]")
                       for i, name in enumerate(params["direct_interfaces"]))
    bgp.in_range(params["scan_time"], "scan_time", 1, 3600)
    bgp.in_range(params["wait_timeout"], "wait_timeout", 0, 3600)
    new = bird.render(speaker, interfaces, params["kernel_export"], params["scan_time"])
    changed = bgp.changed_passwords(config.old, new, bird.PASSWORD)
    module.before = bgp.mask_passwords(config.old or "", bird.PASSWORD)
    module.after = bgp.mask_passwords(new, bird.PASSWORD, changed)
    protocols = daemon.protocols() if running else []
    # BIRD runs something else than the file says (started by hand, or reconfigured elsewhere)
    drift = running and set(bird.sessions(protocols)) != {item.name for item in speaker.neighbors}
    actions = []
    if config.old != new:
        daemon.check(new)  # in check mode too: a plan that could not apply fails now
        actions.append(Action(f"write {config.path} (checked with bird -p)", lambda: config.write(new)))
    elif not config.right_mode():
        actions.append(Action(f"set mode {config.mode:04o} on {config.path}", lambda: config.write(new)))
    if running and (config.old != new or drift):
        actions.append(Action("birdc configure", lambda: reconfigure(daemon, config)))
    elif not running and daemon.unit:
        actions.append(Action(f"start bird as {daemon.supervisor} with {config.path}, enabled at boot", daemon.start))
    elif not running:
        actions.append(Action(f"start bird (-c {config.path} -s {params['socket']} -P {params['pid_file']})",
                              daemon.start))
    if running and daemon.unit and not (daemon.unit.dropin_current(daemon.dropin())
                                        and daemon.unit.show("UnitFileState") == "enabled"):
        actions.append(Action(f"run bird as {daemon.supervisor} with {config.path}, enabled at boot", daemon.start))
    module.apply(actions)
    result = dict(neighbors=[item.public() for item in speaker.neighbors], protocols=protocols, sessions={})
    if module.check_mode and not running:
        return result
    if actions:
        protocols = daemon.protocols()
    sessions = bird.sessions(protocols)
    if params["wait_established"] and not module.check_mode:
        sessions = bgp.wait_established(module, lambda: bird.sessions(daemon.protocols()), speaker.neighbors,
                                        params["wait_timeout"],
                                        details=lambda: dict(config_file=config.path, protocols=daemon.protocols()))
        protocols = daemon.protocols()
    result.update(protocols=protocols, sessions={name: s.public() for name, s in sessions.items()})
    return result


def reconfigure(daemon: Bird, config: ConfigFile) -> None:
    """Re-read the file; if BIRD refuses it, put the previous file back so file and daemon agree."""
    try:
        daemon.configure()
    except OSError:
        config.restore()
        raise


def absent(module: PodnetModule, daemon: Bird, config: ConfigFile, running: bool) -> dict:
    params = module.params
    actions = []
    pid = daemon.pid()
    if daemon.unit and (running or os.path.exists(daemon.unit.dropin)):
        actions.append(Action(f"stop and disable {daemon.supervisor}, remove {daemon.unit.dropin}", daemon.stop))
    elif pid is not None:
        actions.append(Action(f"stop bird (PID {pid} from {params['pid_file']})", daemon.stop))
    elif running:
        module.warn(f"BIRD answers on {params['socket']} but {params['pid_file']} names no BIRD process: it was "
                    "not started by this module and is left running")
    if pid is not None or not running or daemon.unit:
        # /run/bird, which start() makes where BIRD never ran: empty once our BIRD is gone
        for directory in bgp.dirs_left_empty([params["socket"], params["pid_file"]]):
            actions.append(Action(f"remove {directory}", lambda d=directory: shutil.rmtree(d, ignore_errors=True)))
    module.before = bgp.mask_passwords(config.old or "", bird.PASSWORD)
    module.after = module.before
    if bird.owned(config.old) and os.path.exists(config.saved):
        actions.append(Action(f"put back {config.path} as found before ({config.saved})",
                              lambda: os.replace(config.saved, config.path)))
        module.after = bgp.mask_passwords(read_text(config.saved) or "", bird.PASSWORD)
    elif bird.owned(config.old):
        actions.append(Action(f"remove {config.path}", lambda: os.unlink(config.path)))
        module.after = ""
    elif config.old is not None:
        module.warn(f"{config.path} was not written by this module (no handcni.podnet header): left in place")
    module.apply(actions)
    return dict(neighbors=[], protocols=[], sessions={})


def main():
    module = PodnetModule(
        argument_spec=dict(
            bgp.SPEAKER_SPEC,
            direct_interfaces=dict(type="list", elements="str", default=[]),
            kernel_export=dict(type="bool", default=True),
            scan_time=dict(type="int", default=10),
            config_file=dict(type="path", default="/etc/bird/bird.conf"),
            socket=dict(type="path", default="/run/bird/bird.ctl"),
            pid_file=dict(type="path", default="/run/bird/bird.pid"),
            user=dict(type="str"),
            group=dict(type="str"),
        ),
        common=("netns", "state"),
    )
    with module.errors():
        daemon = Bird(module)
        # BIRD as Debian's unit runs as user bird: it reads its configuration through the group.
        config = ConfigFile(module.params["config_file"], module.params["group"] or (
            "bird" if daemon.unit and module.params["state"] == "present" else None))
        running = daemon.answers()
        handler = present if module.params["state"] == "present" else absent
        result = handler(module, daemon, config, running)
        if not module.check_mode:
            running = daemon.answers()
    module.finish(config_file=config.path, running=running, pid=daemon.pid(),
                  supervisor=daemon.supervisor, **result)


if __name__ == "__main__":
    main()
