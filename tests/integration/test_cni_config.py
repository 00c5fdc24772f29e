"""handcni.podnet.cni_config through Ansible on a throwaway lab node (worker1): every scenario in one play."""
from __future__ import annotations

from conftest import changed, diffs_agree, fails_naming, module, part, raw, same_plan, scenario

PATH = "/etc/cni/net.d/10-handcni.conflist"
RECORD = "/var/lib/handcni/cni_config_dirs.json"
READ = (f"for d in /etc/cni /etc/cni/net.d; do stat -c %A $d 2>/dev/null || echo missing; done; "
        f"cat {PATH} 2>/dev/null || echo missing; cat {RECORD} 2>/dev/null || echo missing")
CONFIG = {"cniVersion": "1.0.0", "name": "handcni", "plugins": [{"type": "bridge", "bridge": "br0", "mtu": 1480}]}
OTHER = dict(CONFIG, plugins=[{"type": "bridge", "bridge": "br0", "mtu": 1450}])


def cni(name: str, args: dict, check: bool = False) -> dict:
    return module(name, "handcni.podnet.cni_config", args, check)


GONE = {"state": "absent"}
LIFECYCLE = scenario(
    "lifecycle",
    raw("start", READ), cni("planned", {"config": CONFIG}, check=True), raw("after planned", READ),
    cni("write", {"config": CONFIG}), raw("written", READ), cni("again", {"config": CONFIG}),
    raw("chmod", f"chmod 0600 {PATH}"), cni("mode", {"config": CONFIG}), raw("mode back", f"stat -c %a {PATH}"),
    cni("change planned", {"config": OTHER}, check=True), cni("change", {"config": OTHER}), raw("changed", READ),
    cni("absent planned", GONE, check=True), raw("after absent planned", READ),
    cni("absent", GONE), raw("gone", READ), cni("absent again", GONE),
)
# Someone else's file in a directory the module made: the directory stays, the file too.
FOREIGN = scenario(
    "foreign",
    cni("write", {"config": CONFIG}), raw("theirs", "echo {} > /etc/cni/net.d/99-theirs.conf"),
    cni("absent", GONE), raw("left", "ls /etc/cni/net.d; ls /etc/cni"),
    raw("cleanup", "rm -r /etc/cni"),
)
# A directory that was there before is never removed.
EXISTING = scenario(
    "existing",
    raw("made by someone", "mkdir -p /etc/cni/net.d"), cni("write", {"config": CONFIG}),
    cni("absent", GONE), raw("left", "ls -d /etc/cni/net.d"), raw("cleanup", "rm -r /etc/cni"),
)
BAD_INPUT = scenario(
    "bad input",
    raw("before", READ),
    cni("no config", {}), cni("relative path", {"path": "net.d/x.conflist", "config": CONFIG}),
    raw("bad record", f"mkdir -p /var/lib/handcni && echo nope > {RECORD}"),
    cni("broken record", {"config": CONFIG}), raw("after", READ), raw("cleanup", f"rm {RECORD}"),
)


def test_cni_config(lab):
    results = lab.play(*LIFECYCLE, *FOREIGN, *EXISTING, *BAD_INPUT)

    r = part(results, "lifecycle")
    assert r["start"]["stdout"] == r["after planned"]["stdout"], "check mode changed the node"
    assert same_plan(r["planned"], r["write"])
    assert r["write"]["actions"] == ["make directory /etc/cni", "make directory /etc/cni/net.d", f"write {PATH}"]
    assert r["written"]["stdout"].splitlines()[:2] == ["drwxr-xr-x", "drwxr-xr-x"]
    assert '"mtu": 1480' in r["written"]["stdout"] and '"dirs": [' in r["written"]["stdout"]
    assert not changed(r["again"])
    assert r["mode"]["actions"] == [f"set mode 0644 on {PATH}"] and r["mode back"]["stdout"].strip() == "644"
    assert same_plan(r["change planned"], r["change"]) and r["change"]["actions"] == [f"write {PATH}"]
    assert '"mtu": 1450' in r["changed"]["stdout"]
    assert r["changed"]["stdout"] == r["after absent planned"]["stdout"]
    assert same_plan(r["absent planned"], r["absent"])
    assert r["absent"]["actions"] == [f"remove {PATH}", "remove directory /etc/cni/net.d", "remove directory /etc/cni",
                                      f"forget {RECORD}"]
    assert r["gone"]["stdout"].split() == ["missing"] * 4
    assert not changed(r["absent again"])
    assert diffs_agree({k: v for k, v in r.items() if k != "mode"}) == []

    r = part(results, "foreign")
    assert r["absent"]["actions"] == [f"remove {PATH}", f"forget {RECORD}"]
    assert r["left"]["stdout"].split() == ["99-theirs.conf", "net.d"]

    r = part(results, "existing")
    assert r["write"]["actions"] == [f"write {PATH}"] and r["absent"]["actions"] == [f"remove {PATH}"]
    assert r["left"]["stdout"].strip() == "/etc/cni/net.d"

    r = part(results, "bad input")
    assert fails_naming(r["no config"], f"cni_config {PATH}: config: required with state=present")
    assert fails_naming(r["relative path"], "cni_config net.d/x.conflist: path: 'net.d/x.conflist' is not an absolute")
    assert fails_naming(r["broken record"], f"cni_config {PATH}: made_record: {RECORD} is not valid JSON")
    assert r["before"]["stdout"].split() == ["missing"] * 4 and r["after"]["stdout"].split() == ["missing"] * 3 + ["nope"]
