"""The scenario's tests: every suite of the collection lives here, and each scenario names the ones
that fit what it converged (HANDCNI_SUITES in its molecule.yml, e.g. "pod_network drift cross_node");
the other suites' tests are deselected, and so is a test marked `suite(NAME)` unless NAME is chosen too
(a costly extra check that one scenario runs for all). The lab itself is in molecule/shared/lab.py; the
teardown suite (test_zz_teardown.py) always runs, last. Suites run in file-name order: each leaves the lab as
the inventory declares it, but services (fewer endpoints, then nftables), which runs after the suites
that converge the inventory again (drift, mode_switch)."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import WORKERS, Node  # noqa: E402

SUITES = set(os.environ.get("HANDCNI_SUITES", "").split()) | {"zz_teardown"}


def suites_of(item) -> set:
    """The suites a test belongs to: its file's, and those of its `suite` marks (all must be chosen)."""
    return {item.path.stem.removeprefix("test_")} | {mark.args[0] for mark in item.iter_markers("suite")}


def pytest_configure(config):
    config.addinivalue_line("markers", "suite(name): run this test only when the scenario names that suite too")


def pytest_collection_modifyitems(config, items):
    chosen = [item for item in items if suites_of(item) <= SUITES]
    unknown = SUITES - set().union(*(suites_of(item) for item in items))
    if unknown:
        raise pytest.UsageError(f"HANDCNI_SUITES names no test file: {' '.join(sorted(unknown))}")
    config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
    items[:] = chosen


@pytest.fixture(params=WORKERS)
def node(request) -> Node:
    return Node(request.param)
