from __future__ import annotations

import json
import os
import sys
import zipfile

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _restore as restore


@pytest.fixture
def records(tmp_path, monkeypatch):
    monkeypatch.setattr(restore, "RECORDS", str(tmp_path / "restore"))
    monkeypatch.setattr(restore, "LIB", str(tmp_path / "restore" / "lib"))
    monkeypatch.setattr(restore, "LOCK", str(tmp_path / "restore.lock"))
    return tmp_path


def payload(path, code: str, author: str) -> str:
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("ansible_collections/x.py", code)
        out.writestr(restore.AUTHOR, author)  # AnsiballZ's per-run member
    return str(path)


def test_a_record_is_saved_once_and_its_payload_only_when_the_code_differs(records):
    first = payload(records / "a.zip", "code 1", "run 1")
    args = {"names": ["pod1"], "state": "present"}
    changed = restore.save("20-netns", "ansible_collections.h.p.plugins.modules.netns", first, args, {}, False)
    assert len(changed) == 2
    record = json.loads((records / "restore" / "20-netns.json").read_text())
    assert record["ANSIBLE_MODULE_ARGS"] == dict(args, _ansible_no_log=True) and record["lib"].endswith("lib/netns.zip")
    with zipfile.ZipFile(record["lib"]) as kept:
        assert kept.namelist() == ["ansible_collections/x.py"]
    # the same code zipped by another run (another sitecustomize) and the same arguments: nothing to do
    again = payload(records / "b.zip", "code 1", "run 2")
    assert restore.save("20-netns", "ansible_collections.h.p.plugins.modules.netns", again, args, {}, False) == []
    newer = payload(records / "c.zip", "code 2", "run 3")
    assert restore.save("20-netns", "ansible_collections.h.p.plugins.modules.netns", newer, args, {}, True) == [
        f"save the restore payload {record['lib']}"]  # check mode says it and writes nothing
    assert restore.save("20-netns", "ansible_collections.h.p.plugins.modules.netns", again, args, {}, False) == []
    assert restore.drop("20-netns", True) and (records / "restore" / "20-netns.json").exists()
    assert restore.drop("20-netns", False) and restore.drop("20-netns", False) == []


def test_the_canary_says_what_is_missing(records, tmp_path):
    there = tmp_path / "there"
    there.write_text("1\n")
    canary = {"files": [str(there), str(tmp_path / "gone")], "values": {str(there): "1", str(tmp_path / "v"): "0"},
              "routes": ["10.0.0.0/8", "192.168.10.0/24"], "commands": [["true"], ["false"]]}
    assert restore.missing(canary, {"192.168.10.0/24"}) == [
        str(tmp_path / "gone"), f"{tmp_path / 'v'} = 0 (is None)", "route 10.0.0.0/8", "false fails"]
    assert restore.missing(restore.empty_canary(), set()) == []


def test_a_process_canary_holds_while_the_pid_file_names_a_process_running_its_command(tmp_path):
    me, sleeper = tmp_path / "me.pid", tmp_path / "old.pid"
    me.write_text(f"{os.getpid()}\n")
    own = open(f"/proc/{os.getpid()}/cmdline", "rb").read().split(b"\0")[:-1]
    sleeper.write_text(f"{os.getpid()}\n")  # the same PID, reused by another command
    canary = {"processes": {str(me): [part.decode() for part in own], str(sleeper): ["sleep", "60"],
                            str(tmp_path / "gone.pid"): ["x"]}}
    assert restore.missing(canary, set()) == ["process sleep 60", "process x"]


def test_the_main_table_is_read_from_proc_net_route():
    # every IPv4 main-table destination, as CIDR; this host has at least its default or a connected route
    routes = restore.main_routes()
    assert routes and all("/" in route for route in routes)


def test_a_record_is_rerun_with_its_argv_and_input(records):
    record = {"argv": [sys.executable, "-c", "import json,sys; print(json.dumps({'started': [sys.stdin.read()]}))"],
              "input": {"servers": []}}
    assert restore.rerun("65-servers", record) == (False, '65-servers: {"servers": []}')
    failing = {"argv": [sys.executable, "-c", "import sys; sys.exit('no pod netns1')"], "input": {}}
    assert restore.rerun("65-servers", failing) == (True, "65-servers: failed: no pod netns1")
