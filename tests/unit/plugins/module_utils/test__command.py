"""Unit tests for plugins/module_utils/_command.py: how a tool's command is composed and its failure told."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _command as command


class Node:
    """A node's tools as AnsibleModule sees them: get_bin_path finds what is installed, run_command
    records each call (argv, stdin, environment) and gives every one the same answer."""

    def __init__(self, installed=("nsenter", "nft", "iptables-save", "iptables-restore"), answer=(0, "out\n", "")):
        self.installed, self.answer, self.calls = set(installed), answer, []

    def get_bin_path(self, tool):
        return f"/usr/sbin/{tool}" if tool in self.installed else None

    def run_command(self, argv, environ_update=None, data=None, binary_data=False):
        self.calls.append((argv, data, environ_update))
        return self.answer


def test_enters_the_netns_with_an_argument_list_and_stdin():
    node = Node()
    assert command.Runner.of(node, "worker1").check(["nft", "-f", "-"], "add table ip handcni\n") == "out\n"
    assert node.calls == [(["/usr/sbin/nsenter", "--net=/run/netns/worker1", "--", "/usr/sbin/nft", "-f", "-"],
                           "add table ip handcni\n", {"LC_ALL": "C"})]


def test_without_netns_runs_here():
    node = Node()
    command.Runner.of(node).check(["iptables-save", "-t", "nat"])
    assert node.calls == [(["/usr/sbin/iptables-save", "-t", "nat"], None, {"LC_ALL": "C"})]


def test_failure_names_the_command():
    node = Node(answer=(1, "", "iptables-restore: line 3 failed\n"))
    runner = command.Runner.of(node)
    assert runner.run(["iptables-restore", "--noflush"], "")[0] == 1  # run: a failure is the caller's to judge
    with pytest.raises(command.CommandError, match=r"^iptables-restore --noflush failed \(exit 1\): .*line 3 failed$"):
        runner.check(["iptables-restore", "--noflush"], "")


def test_missing_tools():
    runner = command.Runner.of(Node(installed={"nsenter"}), packages={"birdc": "bird2"})
    assert not runner.available("nft") and runner.available("nsenter")
    with pytest.raises(command.CommandError, match=r"^nft is not installed$"):
        runner.check(["nft", "-f", "-"])
    with pytest.raises(command.CommandError, match=r"^birdc is not installed \(Debian package bird2\)$"):
        runner.argv(["birdc", "show", "status"])
    with pytest.raises(command.CommandError, match=r"^nsenter \(util-linux\) is not installed"):
        command.Runner.of(Node(installed={"nft"}), "worker1").argv(["nft", "-f", "-"])


def test_run_process_answers_as_run_command():
    """What PodnetModule.run_command runs: stdin (a newline added unless binary), the environment, rc and both
    outputs as text."""
    assert command.run_process(["cat"], "in") == (0, "in\n", "")
    assert command.run_process(["cat"], "in", binary_data=True) == (0, "in", "")
    assert command.run_process(["sh", "-c", 'echo "$LC_ALL"; echo oops >&2; exit 3'],
                               environ_update={"LC_ALL": "C"}) == (3, "C\n", "oops\n")
