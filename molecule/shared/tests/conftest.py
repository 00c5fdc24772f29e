"""Fixtures of the pod network tests; the lab itself is in molecule/shared/lab.py."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab import WORKERS, Node  # noqa: E402


@pytest.fixture(params=WORKERS)
def node(request) -> Node:
    return Node(request.param)
