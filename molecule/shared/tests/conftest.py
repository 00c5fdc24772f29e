"""What every scenario's testinfra tests share: the lab, its inventory as molecule sees it, traffic."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[3]
HOST = testinfra.get_host("local://")


def inventory() -> dict:
    """Host variables as the scenario's plays see them: the lab inventory plus molecule's overrides."""
    sources = ["-i", str(ROOT / "inventories/lab")]
    if os.environ.get("MOLECULE_INVENTORY_FILE"):
        sources += ["-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    listing = subprocess.run([str(ROOT / ".venv/bin/ansible-inventory"), *sources, "--list"],
                             check=True, capture_output=True, text=True).stdout
    return json.loads(listing)


INVENTORY = inventory()
HOSTVARS = INVENTORY["_meta"]["hostvars"]
WORKERS = INVENTORY["workers"]["hosts"]


class Node:
    """A lab node: run commands in it, send traffic from its pods."""

    def __init__(self, name: str):
        self.name = name
        self.vars = HOSTVARS[name]

    def run(self, *argv: str):
        return HOST.run(" ".join([str(ROOT / "bin/lab"), "exec", self.name, "--", *argv]))

    def in_pod(self, pod: str, *argv: str):
        return self.run("ip", "netns", "exec", pod, *argv)

    def ping(self, pod: str, target: str, size: int | None = None):
        extra = ["-M", "do", "-s", str(size)] if size is not None else []
        return self.in_pod(pod, "ping", "-c1", "-W2", "-n", *extra, target)

    @property
    def mode(self) -> str:
        return self.vars.get("pod_network_mode", "bridge")

    @property
    def style(self) -> str:
        return self.vars.get("pod_network_gateway_style", "host_ip")

    @property
    def mtu(self) -> int:
        return int(self.vars.get("pod_network_mtu", self.vars.get("podnet_node_mtu", 1500)))

    @property
    def pods(self) -> list:
        return self.vars["podnet_pods"]

    @property
    def gateway(self) -> str:
        return self.vars["podnet_pod_cidr"].rsplit(".", 1)[0] + ".254"


def playbook(name: str, *args: str) -> subprocess.CompletedProcess:
    sources = ["-i", str(ROOT / "inventories/lab")]
    if os.environ.get("MOLECULE_INVENTORY_FILE"):
        sources += ["-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    return subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), *sources, str(ROOT / "playbooks" / name), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.fixture(params=WORKERS)
def node(request) -> Node:
    return Node(request.param)
