# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the collection's daemons (BIRD, FRR) run on a node: the two supervisors. Private.

- `Systemd`: on a node booted with systemd, the daemon is the distribution's unit, with a drop-in of
  ours naming our configuration, enabled at boot; started, reloaded and stopped by systemctl.
- `Process`: on a node without systemd (the namespace lab, or a module's `netns`), a self-daemonising
  process known by its PID file, started and stopped by signals, as the lab has always run them.

`uses_systemd(netns)` picks one. Both raise OSError with the command's own words. What every daemon
module does around them is here too: `check_config` (the daemon's own parser on a rendered text before it
is written) and `until` (wait for a daemon to answer). Waiting for BGP sessions is `_bgp.wait_established`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

from typing import Callable

from ._state import read_text


def until(ready: Callable[[], bool], timeout: float, failure: str, interval: float = 0.1) -> None:
    """Poll ready() until it is true; OSError(failure) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise OSError(failure)
        time.sleep(interval)


def check_config(module, text: str, shown_path: str, argv: Callable[[str], list], tool: str) -> None:
    """Run the daemon's own parser, argv(path), on `text` in a private temporary file, before anything
    is written; ValueError with the daemon's words (naming `shown_path`) if it refuses the text."""
    path = os.path.join(module.tmpdir, os.path.basename(shown_path))
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(text)
    try:
        rc, out, err = module.run_command(argv(path), environ_update={"LC_ALL": "C"})
    finally:
        os.unlink(path)
    if rc != 0:
        message = (err + out).strip().replace(path, shown_path)
        raise ValueError(f"the rendered configuration does not parse ({tool}): {message}")


def uses_systemd(netns: str | None) -> bool:
    """systemd manages this node's daemons: it booted the node (sd_booted) and we act in the node itself,
    in its PID 1's network namespace. A lab node (a namespace on a host booted by systemd, reached by the
    netns connection or a module's `netns`) is not that host: its daemons are processes of its own."""
    if netns or not os.path.isdir("/run/systemd/system"):
        return False
    try:
        return os.readlink("/proc/self/ns/net") == os.readlink("/proc/1/ns/net")
    except OSError:
        return False


class Process:
    """A daemon process known by its PID file; we only ever signal the process that file names,
    and only if its command name is the daemon's."""

    def __init__(self, comm: str, pid_file: str):
        self.comm = comm
        self.pid_file = pid_file

    def pid(self) -> int | None:
        text = read_text(self.pid_file)
        try:
            pid = int((text or "").split()[0])
        except (IndexError, ValueError):
            return None
        try:
            with open(f"/proc/{pid}/comm") as handle:
                comm = handle.read().strip()
        except OSError:
            return None
        return pid if comm == self.comm else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: list, log: str | None = None, timeout: float = 15.0) -> None:
        """Run a self-daemonising command detached from our pipes and wait until its PID file names it."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True, close_fds=True, timeout=timeout, check=False)
        finally:
            if log:
                out.close()
        if proc.returncode != 0:
            tail = ""
            if log:
                tail = ": " + ((read_text(log) or "").strip().splitlines() or [""])[-1]
            raise OSError(f"{' '.join(argv)} exited with {proc.returncode}{tail}")
        until(self.running, timeout, f"{self.comm} started but did not write {self.pid_file} within {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM the process of the PID file, then SIGKILL after `timeout`; True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline += timeout
            time.sleep(0.05)
        return True

    def alive(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state not in ("Z", "X")


class Systemd:
    """A distribution's unit run with our configuration: a drop-in of ours, enabled at boot."""

    def __init__(self, run_command, systemctl: str, unit: str):
        self.run_command = run_command
        self.systemctl = systemctl
        self.unit = unit
        self.dropin = f"/etc/systemd/system/{unit}.d/handcni-podnet.conf"

    def call(self, *args: str) -> str:
        rc, out, err = self.run_command([self.systemctl, *args], environ_update={"LC_ALL": "C"})
        if rc != 0:
            raise OSError(f"systemctl {' '.join(args)} failed: {(err or out).strip()}")
        return out

    def show(self, prop: str) -> str:
        rc, out, _err = self.run_command([self.systemctl, "show", "--value", "--property", prop, self.unit])
        return out.strip() if rc == 0 else ""

    def active(self) -> bool:
        return self.show("ActiveState") in ("active", "reloading", "activating")

    def pid(self) -> int | None:
        pid = self.show("MainPID")
        return int(pid) if pid.isdigit() and int(pid) > 0 else None

    def dropin_current(self, text: str) -> bool:
        return read_text(self.dropin) == text

    def start(self, dropin: str | None = None) -> None:
        """Write our drop-in (if the unit needs one), unmask (node_prep masks the packages' own units until we
        configure them), enable at boot, (re)start."""
        if dropin is not None and not self.dropin_current(dropin):
            os.makedirs(os.path.dirname(self.dropin), mode=0o755, exist_ok=True)
            with open(self.dropin, "w") as out:
                out.write(dropin)
            self.call("daemon-reload")
        if self.show("LoadState") == "masked":
            self.call("unmask", self.unit)
        self.call("enable", self.unit)
        self.call("restart", self.unit)

    def reload(self) -> None:
        self.call("reload", self.unit)

    def stop(self) -> bool:
        """Stop and disable the unit and remove our drop-in; True if it was running."""
        was = self.active()
        if self.show("LoadState") == "loaded":
            self.call("disable", "--now", self.unit)
        if os.path.exists(self.dropin):
            os.unlink(self.dropin)
            try:
                os.rmdir(os.path.dirname(self.dropin))
            except OSError:
                pass
            self.call("daemon-reload")
        return was
