"""Unit tests for the nat_rule module's conntrack flush: which answers of `conntrack -D` are no error."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _command as command
from ansible_collections.handcni.podnet.plugins.module_utils import _services as services
from ansible_collections.handcni.podnet.plugins.modules import nat_rule

FLUSH = services.Flush(["conntrack", "-D", "-p", "udp", "--orig-dst", "10.96.0.10"], "UDP flows of service dns")


def runner(answer: tuple) -> command.Runner:
    return command.Runner(lambda argv, **_: answer, lambda tool: f"/usr/sbin/{tool}")


@pytest.mark.parametrize("answer", [
    (0, "", "conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n"),
    (1, "", "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n"),
    (1, "", "conntrack v1.4.7 (conntrack-tools): Operation failed: such conntrack doesn't exist\n"),
])
def test_flows_deleted_or_already_gone(answer):
    nat_rule.flush_flows(runner(answer), FLUSH)


def test_any_other_failure_names_the_command():
    answer = (1, "", "conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted\n")
    with pytest.raises(command.CommandError, match=r"^conntrack -D -p udp --orig-dst 10.96.0.10 failed \(exit 1\): "
                                                   r".*Operation not permitted$"):
        nat_rule.flush_flows(runner(answer), FLUSH)
