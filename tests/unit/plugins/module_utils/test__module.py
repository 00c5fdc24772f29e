"""Unit tests for plugins/module_utils/_module.py: how PodnetModule takes a bulk list."""
from __future__ import annotations

import copy
import json

import pytest

from ansible.module_utils import basic

from ansible_collections.handcni.podnet.plugins.module_utils._module import PodnetModule

SPEC = {"services": dict(type="list", elements="dict")}


def arguments(monkeypatch, **args):
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)


def test_a_bulk_list_is_kept_out_of_ansibles_check_and_copy(monkeypatch):
    services = [{"name": f"svc-{index}", "port": "80"} for index in range(3)]
    arguments(monkeypatch, services=services, state="absent")
    module = PodnetModule(SPEC, bulk=("services",))
    assert module.params["services"] == services  # as given: the module checks each item itself
    assert module.params["state"] == "absent" and module.params["prune"] is False
    assert basic.copy is copy
    if getattr(basic, "_PARSED_MODULE_ARGS", None) is not None:  # ansible-core 2.19's copy of the arguments
        assert basic._PARSED_MODULE_ARGS == {"state": "absent"}


def test_a_bulk_option_that_is_not_a_list(monkeypatch, capsys):
    arguments(monkeypatch, services="svc-0")
    with pytest.raises(SystemExit):
        PodnetModule(SPEC, bulk=("services",))
    assert json.loads(capsys.readouterr().out)["msg"] == "services: 'svc-0' is not a list"
