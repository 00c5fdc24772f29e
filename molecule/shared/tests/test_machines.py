"""Real nodes (issue 15), on the machines lab: BIRD runs as Debian's unit with our configuration, enabled
at boot, and the leaf's FRR as the package's pathspace unit (the packages' default units masked); a worker machine rebooted comes back with BIRD's session to the leaf, its kernel modules and
sysctls, and no pods (a new kernel network state) until one site.yml restores them; verify.yml then
passes every cell."""
import subprocess
import time

import pytest

from bgp import CIDRS, LEAF_PROTO, NODE_IP, PATHSPACE, bird_sessions, leaf_sessions, routes, until
from lab import HOSTVARS, LEAF, ROOT, WORKERS, playbook, recap, run_in

NODE = WORKERS[0]


def unit(node: str, *query: str, name: str = "bird.service") -> str:
    return run_in(node, "systemctl", *query, name).stdout.strip()


def verify_every_cell():
    run = playbook("verify.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "cells passed" in run.stdout


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


def test_after_a_reboot_sysctls_and_module_list_are_in_place_and_the_pods_are_gone(rebooted):
    assert run_in(rebooted, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert "bridge" in run_in(rebooted, "cat", "/etc/modules-load.d/handcni-podnet.conf").stdout.split()
    # a new kernel network state: nothing of the pods survived, so the test below restores for real
    assert run_in(rebooted, "ip", "netns", "list").stdout.strip() == ""


def test_one_site_run_restores_the_pods_and_every_cell_passes(rebooted):
    run = playbook("site.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run.stdout)[rebooted] > 0 and all(
        count == 0 for host, count in recap(run.stdout).items() if host != rebooted), recap(run.stdout)
    verify_every_cell()
    assert HOSTVARS[rebooted]["podnet_pods"][0]["name"] in run_in(rebooted, "ip", "netns", "list").stdout
