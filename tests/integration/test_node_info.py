"""handcni.podnet.node_info and node_files through Ansible on a throwaway lab node (worker1). node_info: what it
reports is what the other modules made there (read by their marks), never what someone else made; it changes
nothing, in check mode or not. node_files: each file holds exactly its content and mode, only listed paths go.

One ansible-playbook (the `results` fixture); site.yml's use of it (a removal skipped where nothing of its kind
is held) is proven by the molecule scenarios' mode switches, which must still leave nothing behind.
"""
from __future__ import annotations

import pytest
from conftest import changed, fails_naming, module, ok, raw

RECORD = "/var/lib/handcni/restore/99-node-info-test.json"
FILES = {"ours": "/etc/handcni-ours.conf", "theirs": "/etc/handcni-theirs.conf", "missing": "/etc/handcni-none.conf"}
ASKED = {"paths": ["/run/handcni-test-dir", "/run/handcni-none"], "marked": list(FILES.values())}


def info(name: str, args: dict | None = None, check: bool = False) -> dict:
    return module(name, "handcni.podnet.node_info", args or {}, check)


STEPS = [
    info("bare", ASKED),
    module("bridge", "handcni.podnet.bridge", {"bridges": [{"name": "hb0", "addresses": ["10.77.0.1/24"]}],
                                               "restore": "30-bridge"}),
    module("route", "handcni.podnet.route", {"routes": [{"dst": "10.78.0.0/24", "via": "10.77.0.2"}],
                                             "protocol": 201}),
    module("policy", "handcni.podnet.network_policy",
           {"backend": "nftables", "pods": [{"name": "default/p1", "ip": "10.77.0.5", "ingress": []}]}),
    raw("theirs", "ip link add hb9 type bridge; ip link set hb9 up; ip route add 10.79.0.0/24 dev hb9 proto 203; "
                  "nft add table inet someone-else; ip link add hcni-0123456789 type bridge; "
                  f"mkdir -p /run/handcni-test-dir $(dirname {RECORD}); echo '{{}}' > {RECORD}; "
                  f"printf '# Managed by handcni.podnet (test)\\nx\\n' > {FILES['ours']}; "
                  f"printf 'someone else\\n# handcni.podnet on line 2\\n' > {FILES['theirs']}"),
    info("held", ASKED),
    info("held, check mode", ASKED, check=True),
    info("paths only", dict(ASKED, objects=False)),
    raw("cleanup", f"ip link del hb9; ip link del hcni-0123456789; nft delete table inet someone-else; rm -f {RECORD}"),
    module("policy gone", "handcni.podnet.network_policy", {"backend": "nftables", "state": "absent"}),
    module("route gone", "handcni.podnet.route", {"routes": [], "protocol": 201, "prune": True}),
    module("bridge gone", "handcni.podnet.bridge", {"bridges": [], "prune": True, "restore": "30-bridge"}),
    info("after"),
]


def files(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.node_files", args, check)


TWO = {"files": [{"path": "/etc/handcni-test/a.conf", "content": "a = 1\n"},
                 {"path": "/etc/handcni-test-b.conf", "content": "b\n", "mode": "0600"}]}
FILE_STEPS = [
    raw("foreign", "echo theirs > /etc/handcni-test-theirs.conf"),
    files("planned", TWO, check=True), raw("after planned", "ls /etc/handcni-test 2>&1; true"),
    files("write", TWO),
    raw("written", "cat /etc/handcni-test/a.conf; "
                   "stat -c '%a %n' /etc/handcni-test /etc/handcni-test/a.conf /etc/handcni-test-b.conf"),
    files("again", TWO),
    raw("mode drift", "chmod 0644 /etc/handcni-test-b.conf"), files("mode repaired", TWO),
    files("one gone", {"files": TWO["files"][:1], "absent": ["/etc/handcni-test-b.conf", "/etc/handcni-none"]}),
    raw("left", "ls /etc/handcni-test-b.conf /etc/handcni-test-theirs.conf 2>&1; true"),
    files("relative", {"files": [{"path": "etc/x", "content": ""}]}),
    files("bad mode", {"files": [{"path": "/etc/x", "content": "", "mode": "rw"}]}),
    files("a directory", {"absent": ["/etc/handcni-test"]}),
    files("twice", {"files": TWO["files"][:1], "absent": ["/etc/handcni-test/a.conf"]}),
    files("cleanup", {"absent": ["/etc/handcni-test/a.conf", "/etc/handcni-test-theirs.conf"]}),
]


@pytest.fixture(scope="module")
def results(lab):
    return lab.play(*STEPS, *FILE_STEPS)


def test_a_bare_node_holds_nothing_of_ours(results):
    bare = ok(results["bare"])
    assert not changed(bare)
    assert bare["links"] == {} and bare["network_policy"] == [] and bare["restore_records"] == []
    assert 201 not in bare["route_protocols"] and bare["paths"] == []


def test_it_reports_what_our_modules_made_by_their_marks(results):
    for step in ("bridge", "route", "policy"):
        assert changed(results[step]), step
    held = ok(results["held"])
    # our bridge by its maker; a link under one of our provisional names, whoever made it; not hb9
    assert held["links"] == {"bridge": ["hb0"], "provisional": ["hcni-0123456789"]}
    assert {201, 203} <= set(held["route_protocols"])  # protocols, whoever's: the role asks for its own
    assert held["network_policy"] == ["nftables"]
    assert held["restore_records"] == ["30-bridge", "99-node-info-test"]
    # a path that exists; a file with our mark on its first line, not one with it further down or missing
    assert held["paths"] == ["/run/handcni-test-dir", FILES["ours"]]


def test_it_changes_nothing_and_check_mode_answers_the_same(results):
    assert not changed(results["held"])
    check = ok(results["held, check mode"])
    assert not check["changed"]
    assert {k: check[k] for k in ("links", "route_protocols", "network_policy", "paths")} == \
        {k: results["held"][k] for k in ("links", "route_protocols", "network_policy", "paths")}


def test_without_objects_it_answers_only_the_paths(results):
    paths = ok(results["paths only"])
    assert paths["paths"] == ["/run/handcni-test-dir", FILES["ours"]]
    assert not {"links", "route_protocols", "network_policy", "restore_records"} & set(paths)


def test_once_our_modules_removed_theirs_nothing_is_held(results):
    for step in ("policy gone", "route gone", "bridge gone"):
        assert changed(results[step]), step
    after = ok(results["after"])
    assert after["links"] == {} and after["network_policy"] == [] and 201 not in after["route_protocols"]
    # a run that leaves nothing of its kind keeps no restore record (it would make nothing again)
    assert "remove the restore record /var/lib/handcni/restore/30-bridge.json" in results["bridge gone"]["actions"]
    assert after["restore_records"] == []


def test_node_files_writes_exactly_the_listed_files_and_removes_only_the_listed_paths(results):
    planned, written = results["planned"], results["write"]
    assert changed(planned) and planned["actions"] == written["actions"] == [
        "write /etc/handcni-test/a.conf", "write /etc/handcni-test-b.conf"]
    assert "No such file" in results["after planned"]["stdout"]  # check mode wrote nothing
    assert written["changed_paths"] == ["/etc/handcni-test/a.conf", "/etc/handcni-test-b.conf"]
    assert results["written"]["stdout"].split("\n")[0] == "a = 1"
    assert "755 /etc/handcni-test\n644 /etc/handcni-test/a.conf\n600 /etc/handcni-test-b.conf" in results["written"]["stdout"]
    assert not changed(results["again"]) and results["again"]["changed_paths"] == []
    assert results["mode repaired"]["actions"] == ["write /etc/handcni-test-b.conf"]
    gone = results["one gone"]
    assert gone["actions"] == ["remove /etc/handcni-test-b.conf"]  # a listed path that is not there: nothing
    left = results["left"]["stdout"]
    assert "'/etc/handcni-test-b.conf': No such file" in left and "/etc/handcni-test-theirs.conf" in left.splitlines()


def test_node_files_refuses_bad_input_naming_the_field(results):
    assert fails_naming(results["relative"], "files[0].path: 'etc/x' is not an absolute, normalised path")
    assert fails_naming(results["bad mode"], "files[0].mode: 'rw' is not an octal file mode")
    assert fails_naming(results["a directory"], "absent[0]: /etc/handcni-test is a directory")
    assert fails_naming(results["twice"], "absent: /etc/handcni-test/a.conf is listed twice")
    assert changed(results["cleanup"])
