"""The default scenario, proven by traffic: pods on every worker's bridge."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[3]
HOST = testinfra.get_host("local://")
INVENTORY = json.loads(subprocess.run(
    [str(ROOT / ".venv/bin/ansible-inventory"), "-i", str(ROOT / "inventories/lab"), "--list"],
    check=True, capture_output=True, text=True).stdout)
HOSTVARS = INVENTORY["_meta"]["hostvars"]
WORKERS = INVENTORY["workers"]["hosts"]


def in_node(node, *argv):
    return HOST.run(" ".join([str(ROOT / "bin/lab"), "exec", node, "--", *argv]))


def pod_pairs():
    for node in WORKERS:
        pods = HOSTVARS[node]["podnet_pods"]
        for src in pods:
            for dst in pods:
                if src is not dst:
                    yield node, src, dst


@pytest.mark.parametrize("node,src,dst", list(pod_pairs()), ids=lambda v: v if isinstance(v, str) else v["name"])
def test_pods_on_one_node_ping_each_other(node, src, dst):
    result = in_node(node, "ip", "netns", "exec", src["name"], "ping", "-c2", "-W2", dst["ip"])
    assert result.rc == 0, result.stdout + result.stderr


@pytest.mark.parametrize("node", WORKERS)
def test_full_mtu_passes_without_fragmenting(node):
    pods = HOSTVARS[node]["podnet_pods"]
    size = HOSTVARS[node]["podnet_node_mtu"] - 28
    ok = in_node(node, "ip", "netns", "exec", pods[0]["name"], "ping", "-c1", "-W2", "-M", "do",
                 "-s", str(size), pods[1]["ip"])
    assert ok.rc == 0, ok.stdout + ok.stderr
    too_big = in_node(node, "ip", "netns", "exec", pods[0]["name"], "ping", "-c1", "-W2", "-M", "do",
                      "-s", str(size + 1), pods[1]["ip"])
    assert too_big.rc != 0, "a packet over the pod MTU must not pass with DF set"


@pytest.mark.parametrize("node", WORKERS)
def test_pods_reach_their_gateway_and_node(node):
    hv = HOSTVARS[node]
    for pod in hv["podnet_pods"]:
        for target in (hv["podnet_pod_cidr"].rsplit(".", 1)[0] + ".254", hv["podnet_node_ip"]):
            result = in_node(node, "ip", "netns", "exec", pod["name"], "ping", "-c1", "-W2", target)
            assert result.rc == 0, f"{pod['name']} -> {target}: {result.stdout}{result.stderr}"


@pytest.mark.parametrize("node", WORKERS)
def test_bridge_ports_hairpin_and_ownership(node):
    for pod in HOSTVARS[node]["podnet_pods"]:
        link = in_node(node, "ip", "-d", "link", "show", pod["veth"]).stdout
        assert "master br0" in link and "hairpin on" in link and "alias handcni.podnet veth" in link


def test_verify_playbook_matrix_is_green():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    run = subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), str(ROOT / "playbooks/verify.yml")],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
    cells = json.loads((ROOT / "build/verify.json").read_text())
    assert cells and all(cell["ok"] for cell in cells)
    assert {cell["kind"] for cell in cells} >= {"same_node", "mtu"}
