# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a tool on the node, inside a named network namespace if given. Private to this collection.

The one place that composes a command: the tool's path, `nsenter --net=/run/netns/NAME --` in front
when a namespace is named, the C locale (so the tools' messages are in the words the callers look for),
the input on stdin. Argument lists only; no shell is involved. The firewall backends run their tools
through it; the daemons' control tools can too.
"""
from __future__ import annotations

import os
import subprocess
from typing import Callable

from ._netlink import netns_path


class CommandError(OSError):
    """A tool is missing or failed; the message says which and why."""


class Runner:
    """Runs tools with argument lists and stdin, inside a named netns if given.

    `run_command(argv, data=...)` returns (rc, stdout, stderr), as AnsibleModule.run_command;
    `which(tool)` returns the tool's path or None, as AnsibleModule.get_bin_path. `packages` names the
    Debian package of a tool, for the message when it is missing."""

    def __init__(self, run_command: Callable, which: Callable, netns: str | None = None,
                 packages: dict | None = None):
        self._run_command = run_command
        self._which = which
        self.netns = netns
        self.packages = packages or {}

    @classmethod
    def of(cls, module, netns: str | None = None, packages: dict | None = None) -> "Runner":
        """The runner of an AnsibleModule."""
        return cls(module.run_command, module.get_bin_path, netns, packages)

    def available(self, *tools: str) -> bool:
        return all(self._which(tool) for tool in tools)

    def argv(self, argv: list) -> list:
        """The full command: the tool's path, behind nsenter when a netns is named."""
        path = self._which(argv[0])
        if not path:
            package = self.packages.get(argv[0])
            raise CommandError(f"{argv[0]} is not installed" + (f" (Debian package {package})" if package else ""))
        argv = [path] + list(argv[1:])
        if self.netns is None:
            return argv
        nsenter = self._which("nsenter")
        if not nsenter:
            raise CommandError("nsenter (util-linux) is not installed; it is needed to act in a netns")
        return [nsenter, f"--net={netns_path(self.netns)}", "--"] + argv

    def run(self, argv: list, data: str | None = None) -> tuple:
        """(rc, stdout, stderr); a failing tool is no error here."""
        kwargs = {"data": data, "binary_data": True} if data is not None else {}
        return self._run_command(self.argv(argv), environ_update={"LC_ALL": "C"}, **kwargs)

    def check(self, argv: list, data: str | None = None) -> str:
        """stdout; CommandError naming the command if it fails."""
        rc, out, err = self.run(argv, data)
        if rc != 0:
            raise failure(argv, rc, out, err)
        return out


def run_process(argv: list, data: str | None = None, binary_data: bool = False,
                environ_update: dict | None = None) -> tuple:
    """(rc, stdout, stderr) of an argument list, as AnsibleModule.run_command answers, without its read loop:
    that loop can sleep a whole second on no pipes at all when the tool exits between two of its checks
    (ansible-core 2.19: one tool run in ten at 10,000 services)."""
    if data is not None and not binary_data:
        data += "\n"
    done = subprocess.run(argv, input=data, capture_output=True, encoding="utf-8", errors="surrogateescape",
                          env=dict(os.environ, **(environ_update or {})), check=False)
    return done.returncode, done.stdout, done.stderr


def failure(argv: list, rc: int, out: str, err: str) -> CommandError:
    return CommandError(f"{' '.join(argv)} failed (exit {rc}): {(err or out or '').strip()}")
