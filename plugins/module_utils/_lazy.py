# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Modules loaded on first use, for the filter plugins. Ansible loads every filter file of a collection in each
worker process that templates one of its filters (each task on each host), and compiles our module_utils anew
there; a filter file takes through `lazy` what only some of its filters need, so the others cost nothing."""
from __future__ import annotations

import importlib.util
import sys


def lazy(name: str):
    """The module `name`, executed when one of its attributes is first read (importlib's LazyLoader)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
