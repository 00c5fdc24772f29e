"""teardown.yml removes the CNI config with the rest; site.yml puts it back (so verify can run again).

Runs after test_cni.py (files run in name order), once its runtime pod is gone.
"""
from conftest import CONFLIST, WORKERS, CniNode as Node, playbook


def test_teardown_removes_the_config_and_site_restores_it():
    nodes = [Node(name) for name in WORKERS]
    try:
        for attempt in ("first", "second"):  # teardown is safe to run twice
            run = playbook("teardown.yml")
            assert run.returncode == 0, f"{attempt} teardown: {run.stdout[-3000:]}{run.stderr[-2000:]}"
            for node in nodes:
                assert node.run("test", "-e", CONFLIST).rc != 0, f"{node.name}: {CONFLIST} survived teardown"
    finally:
        converge = playbook("site.yml")
    assert converge.returncode == 0, converge.stdout[-3000:]
    for node in nodes:
        assert node.run("test", "-s", CONFLIST).rc == 0, f"{node.name}: site.yml did not write {CONFLIST} again"
