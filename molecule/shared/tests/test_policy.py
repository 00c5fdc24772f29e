"""Network policy (issue 19) on the scenario's lab, in the order they run: the inventory's example policies
(inventories/NAME-policies.yml beside the inventory directory) converged; the whole matrix under them by traffic, with its policy cells
(every pod to every other on the probed ports, answered or not at all as the policies say); a second run
changes nothing; our rules deleted by hand let a denied connection through until the next run puts them
back; the policies taken away again leave nothing of ours."""
import json
import os
import re
from pathlib import Path

import pytest
from lab import ROOT, WORKERS, Node, failures, playbook, recap

POLICIES = Path(f"{ROOT / os.environ.get('HANDCNI_INVENTORY', 'inventories/lab')}-policies.yml")
WITH = ["-e", f"@{POLICIES}"]
# Our rules on a node, gone by hand: the iptables chain HANDCNI-POLICY (entered from FORWARD) or the
# nftables base chain `forward` of table inet handcni-policy, flushed; and whether anything of ours is left.
FLUSH = ("iptables -F HANDCNI-POLICY 2>/dev/null; "
         "nft flush chain inet handcni-policy forward 2>/dev/null; true")
OURS = ("{ iptables-save -t filter 2>/dev/null | grep HANDCNI; "
        "nft list table inet handcni-policy 2>/dev/null; } | head -3")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> list:
    """Converge with the policies, then verify.yml: its cells."""
    run = playbook("site.yml", *WITH)
    assert run.returncode == 0, failures(run.stdout)
    path = tmp_path_factory.mktemp("policy") / "verify.json"
    run = playbook("verify.yml", *WITH, "-e", f"verify_json={path}")
    cells = json.loads(path.read_text()) if path.exists() else []
    assert run.returncode == 0, failures(run.stdout) + "\n" + "\n".join(
        f"{c['kind']} {c['from']} -> {c['to']}: {c['detail']}" for c in cells if not c["ok"])
    return cells


def test_every_cell_as_the_policies_say(matrix):
    policy = [cell for cell in matrix if cell["kind"] == "policy"]
    denied = [cell for cell in policy if cell["detail"].startswith("no answer")]
    assert policy and all(cell["ok"] for cell in matrix)
    assert 0 < len(denied) < len(policy), "the example policies both allow and deny"
    # the other kinds are judged by the same policies: some of them are denials too
    assert [cell for cell in matrix if cell["kind"] != "policy" and cell["detail"].startswith("no answer")]


def test_a_second_run_changes_nothing(matrix):
    run = playbook("site.yml", *WITH, "--tags", "network_policy")
    assert run.returncode == 0, failures(run.stdout)
    assert set(recap(run.stdout)[w] for w in WORKERS) == {0}, run.stdout[-3000:]


def _denied_cross_node(matrix) -> tuple:
    """A policy cell denied between pods of two workers: (source node, pod, destination node, url)."""
    for cell in matrix:
        if cell["kind"] == "policy" and cell["detail"].startswith("no answer"):
            source, pod = cell["from"].split("/")
            target, address = cell["to"].split()
            if target.split("/")[0] != source:
                return source, pod, target.split("/")[0], f"http://{address}/"
    pytest.fail("no denied policy cell between two workers")


def _answered(node: str, pod: str, url: str) -> bool:
    got = Node(node).in_pod(pod, "curl", "-sS", "--connect-timeout", "2", "--max-time", "3", url)
    return got.rc == 0 and bool(got.stdout.strip())


def test_rules_deleted_by_hand_are_put_back(matrix):
    source, pod, target, url = _denied_cross_node(matrix)
    assert not _answered(source, pod, url)
    for node in {source, target}:
        assert Node(node).run("sh", "-c", FLUSH).rc == 0
    assert _answered(source, pod, url), "without our rules the connection goes through"
    run = playbook("site.yml", *WITH, "--tags", "network_policy")
    assert run.returncode == 0, failures(run.stdout)
    changed = recap(run.stdout)
    assert {w for w in WORKERS if changed[w]} == {source, target}, changed
    assert not _answered(source, pod, url), "denied again"


def test_without_policies_nothing_of_ours_is_left(matrix):
    source, pod, target, url = _denied_cross_node(matrix)
    run = playbook("site.yml", "--tags", "pod_network,network_policy")
    assert run.returncode == 0, failures(run.stdout)
    for node in WORKERS:
        left = Node(node).run("sh", "-c", OURS).stdout.strip()
        assert not left, f"{node}: {left}"
    assert _answered(source, pod, url)
    assert re.search(r"changed=[1-9]", run.stdout)
