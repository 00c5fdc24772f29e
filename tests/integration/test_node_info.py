"""handcni.podnet.node_info through Ansible on a throwaway lab node (worker1): what it reports is what the other
modules made there (read by their marks), never what someone else made; it changes nothing, in check mode or not.

One ansible-playbook (the `results` fixture); site.yml's use of it (a removal skipped where nothing of its kind
is held) is proven by the molecule scenarios' mode switches, which must still leave nothing behind.
"""
from __future__ import annotations

import pytest
from conftest import changed, module, ok, raw

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


@pytest.fixture(scope="module")
def results(lab):
    return lab.play(*STEPS)


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
