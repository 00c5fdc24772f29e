from __future__ import annotations

import os

from ansible_collections.handcni.podnet.plugins.module_utils import _daemon as daemon


def test_a_daemon_is_only_the_process_its_pid_file_names_with_its_name(tmp_path):
    pid_file = tmp_path / "x.pid"
    with open(f"/proc/{os.getpid()}/comm") as handle:
        comm = handle.read().strip()
    assert daemon.Process(comm, str(pid_file)).pid() is None
    pid_file.write_text(f"{os.getpid()}\n")
    assert daemon.Process(comm, str(pid_file)).pid() == os.getpid()
    assert daemon.Process("bird", str(pid_file)).pid() is None  # a reused PID of another program
    assert not daemon.Process("bird", str(pid_file)).stop()
    pid_file.write_text("garbage")
    assert daemon.Process(comm, str(pid_file)).pid() is None


def test_systemd_only_where_it_booted_the_node_and_we_act_in_the_node_itself():
    assert not daemon.uses_systemd("worker1")
    assert daemon.uses_systemd(None) == os.path.isdir("/run/systemd/system")
