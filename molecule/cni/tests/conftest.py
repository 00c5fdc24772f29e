"""The cni scenario's lab: its inventory as molecule sees it, commands in a node, the CNI protocol."""
import ipaddress
import json
import os
import subprocess
from pathlib import Path

import testinfra

ROOT = Path(__file__).resolve().parents[3]
HOST = testinfra.get_host("local://")
CONFLIST = "/etc/cni/net.d/10-handcni.conflist"
CNI_PATH = "/usr/lib/cni"  # Debian's containernetworking-plugins


def sources() -> list:
    """The lab inventory plus molecule's overrides, as the scenario's plays see them."""
    argv = ["-i", str(ROOT / "inventories/lab")]
    if os.environ.get("MOLECULE_INVENTORY_FILE"):
        argv += ["-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    return argv


INVENTORY = json.loads(subprocess.run([str(ROOT / ".venv/bin/ansible-inventory"), *sources(), "--list"],
                                      check=True, capture_output=True, text=True).stdout)
HOSTVARS = INVENTORY["_meta"]["hostvars"]
WORKERS = INVENTORY["workers"]["hosts"]


class Node:
    """A lab node (bin/lab exec, in the scenario's lab through HANDCNI_LAB_STATE)."""

    def __init__(self, name: str):
        self.name = name
        self.vars = HOSTVARS[name]
        self.network = ipaddress.ip_network(self.vars["podnet_pod_cidr"])
        self.gateway = str(self.network.broadcast_address - 1)
        self.pods = self.vars["podnet_pods"]
        self.mtu = int(self.vars.get("pod_network_mtu", self.vars.get("podnet_node_mtu", 1500)))

    def run(self, *argv: str):
        return HOST.run(" ".join([str(ROOT / "bin/lab"), "exec", self.name, "--", *argv]))

    def ping(self, netns: str, target: str, size: int | None = None):
        extra = ["-M", "do", "-s", str(size)] if size is not None else []
        return self.run("ip", "netns", "exec", netns, "ping", "-c1", "-W2", "-n", *extra, target)

    def stdin(self, argv: list, data: str) -> subprocess.CompletedProcess:
        """Run argv in the node with data on its stdin, as a runtime feeds a CNI plugin."""
        return subprocess.run([str(ROOT / "bin/lab"), "exec", self.name, "--", *argv],
                              input=data, capture_output=True, text=True)

    def conflist(self) -> dict:
        return json.loads(self.run("cat", CONFLIST).stdout)

    def cni(self, command: str, conflist: dict, container: str, netns: str, ifname: str = "eth0",
            add_result: dict | None = None) -> dict:
        """Run a conflist as libcni does: plugin by plugin (DEL in reverse), each one fed its own
        config from the list with the list's name and cniVersion (and prevResult) added."""
        plugins = conflist["plugins"] if command == "ADD" else list(reversed(conflist["plugins"]))
        result = add_result
        for plugin in plugins:
            config = dict(plugin, name=conflist["name"], cniVersion=conflist["cniVersion"])
            if result is not None:
                config["prevResult"] = result
            env = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"CNI_COMMAND={command}",
                   f"CNI_CONTAINERID={container}", f"CNI_NETNS={netns}", f"CNI_IFNAME={ifname}",
                   f"CNI_PATH={CNI_PATH}"]
            run = self.stdin([*env, f"{CNI_PATH}/{plugin['type']}"], json.dumps(config))
            assert run.returncode == 0, f"{plugin['type']} {command} on {self.name}: {run.stdout}{run.stderr}"
            if command == "ADD":
                result = json.loads(run.stdout)
        return result


def playbook(name: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    return subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), *sources(), str(ROOT / "playbooks" / name)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
