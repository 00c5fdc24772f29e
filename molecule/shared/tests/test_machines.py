"""Real nodes (issue 15), on the machines lab: BIRD runs as Debian's unit with our configuration, enabled
at boot, and the leaf's FRR as the package's pathspace unit (the packages' default units masked); a worker machine rebooted comes back with BIRD's session to the leaf, its kernel modules and
sysctls, and its pods put back by the node-side restore with no Ansible run (issue 24); verify.yml then
passes every cell and site.yml finds nothing to do."""
import subprocess
import time

import pytest

from bgp import CIDRS, LEAF_PROTO, NODE_IP, PATHSPACE, bird_sessions, leaf_sessions, routes, until
from lab import HOSTVARS, LEAF, ROOT, WORKERS, playbook, recap, run_in, verify_every_cell

NODE = WORKERS[0]


def unit(node: str, *query: str, name: str = "bird.service") -> str:
    return run_in(node, "systemctl", *query, name).stdout.strip()


@pytest.mark.parametrize("name", WORKERS)
def test_bird_is_debians_unit_with_our_configuration_enabled_at_boot(name):
    assert unit(name, "is-enabled") == "enabled"
    assert unit(name, "is-active") == "active"
    dropin = run_in(name, "cat", "/etc/systemd/system/bird.service.d/handcni-podnet.conf").stdout
    assert "-c /etc/bird/bird.conf" in dropin
    assert bird_sessions(name)[LEAF][0] == "Established"


def test_the_leafs_frr_is_the_packages_pathspace_unit_enabled_at_boot_and_frr_service_never_ran():
    ours = f"frr@{PATHSPACE}.service"
    assert unit(LEAF, "is-enabled", name=ours) == "enabled"
    assert unit(LEAF, "is-active", name=ours) == "active"
    assert unit(LEAF, "is-enabled", name="frr.service") == "masked"
    assert unit(LEAF, "show", "--value", "--property", "ExecMainStartTimestampMonotonic", name="frr.service") == "0"
    assert {name: state for name, (state, _count) in leaf_sessions().items()} == dict.fromkeys(WORKERS, "Established")


def test_every_cell_passes_over_ssh():
    verify_every_cell()


@pytest.fixture(scope="module")
def rebooted():
    """Reboot one worker machine from inside and wait until its sshd answers again."""
    before = run_in(NODE, "cat", "/proc/sys/kernel/random/boot_id").stdout
    subprocess.run([str(ROOT / "bin/machines"), "exec", NODE, "--", "systemctl", "reboot"], check=False)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        probe = subprocess.run([str(ROOT / "bin/machines"), "ssh", NODE, "--", "cat",
                                "/proc/sys/kernel/random/boot_id"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout and probe.stdout != before:
            return NODE
        time.sleep(1)
    pytest.fail(f"{NODE} did not come back within 120s")


def test_after_a_reboot_bird_returns_and_the_leaf_learns_the_node_again_without_any_run(rebooted):
    sessions = until(lambda: bird_sessions(rebooted), lambda s: s.get(LEAF, ("",))[0] == "Established")
    assert sessions[LEAF][0] == "Established"
    learned = until(lambda: routes(LEAF, LEAF_PROTO), lambda r: r.get(CIDRS[rebooted]) == NODE_IP[rebooted])
    assert learned.get(CIDRS[rebooted]) == NODE_IP[rebooted]


def test_after_a_reboot_the_pods_come_back_without_any_run_and_every_cell_passes(rebooted):
    """The node-side restore (issue 24): within 30 s of sshd answering, with no Ansible run."""
    assert run_in(rebooted, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    modules = run_in(rebooted, "cat", "/etc/modules-load.d/handcni-podnet.conf").stdout.split()
    assert "bridge" in modules
    for name, value in HOSTVARS[rebooted].get("podnet_sysctls", {}).items():  # and the modules they need
        assert run_in(rebooted, "cat", f"/proc/sys/{name.replace('.', '/')}").stdout.strip() == str(value), name
        assert "nf_conntrack" in modules or not name.startswith("net.netfilter.nf_conntrack_")
    said = until(lambda: run_in(rebooted, "journalctl", "-b", "-u", "handcni-podnet-restore", "-o", "cat").stdout,
                 lambda out: "restored in" in out, timeout=30)
    assert "restored in" in said, said
    assert run_in(rebooted, "python3", "/usr/local/lib/handcni-podnet/restore.py", "check").rc == 0
    assert HOSTVARS[rebooted]["podnet_pods"][0]["name"] in run_in(rebooted, "ip", "netns", "list").stdout
    verify_every_cell()


def test_then_site_finds_nothing_to_do(rebooted):
    run = playbook("site.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert all(count == 0 for count in recap(run.stdout).values()), recap(run.stdout)
