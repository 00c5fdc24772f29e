"""site.yml on bad inventories, on a real lab: each run stops in its first play with one line naming the host,
the field and the value, no traceback, and no node is touched (each node's snapshot is the same before and after).
The full table of bad inventories is tests/unit/plugins/module_utils/test__inventory.py; these few prove the
playbook stops before any node."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from conftest import LEAF_IP, NODE, NODE_IP, ROOT, SNAPSHOT

POD_CIDR = "192.168.10.0/24"
GOOD = {
    "all": {
        "vars": {"ansible_connection": "handcni.podnet.netns", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                 "podnet_node_mtu": 1500,
                 "podnet_services": [{"name": "web", "cluster_ip": "10.96.0.10", "port": 80, "node_port": 30080,
                                      "endpoints": [{"node": NODE, "pod": "web"}]}]},
        "children": {
            "workers": {"hosts": {NODE: {"podnet_node_ip": NODE_IP, "podnet_pod_cidr": POD_CIDR,
                                         "podnet_pods": [{"name": "web"}, {"name": "db", "ip": "192.168.10.7"}]}}},
            "leaf": {"hosts": {"leaf03": {"podnet_leaf_subnets": [{"name": "vlan210", "address": f"{LEAF_IP}/24"}]}}},
        },
    },
}
NODES = (NODE, "leaf03")
# Everything site.yml would make on a node, read in one go: links, addresses, routes, namespaces, firewall, our files.
STATE = SNAPSHOT + "\niptables-save | grep -v '^[#:]'; nft list ruleset; ls -R /var/lib/handcni /etc/cni 2>&1; sysctl net.ipv4.ip_forward\n"


def web(**fields) -> list:
    """The services with the web service's fields changed."""
    return [dict(GOOD["all"]["vars"]["podnet_services"][0], **fields)]


def bad(path: str, value) -> dict:
    """GOOD with one variable changed: path 'all.NAME' (every host) or 'HOST.NAME'."""
    inventory = json.loads(json.dumps(GOOD))
    where, name = path.split(".", 1)
    if where == "all":
        inventory["all"]["vars"][name] = value
    else:
        group = "workers" if where == NODE else "leaf"
        inventory["all"]["children"][group]["hosts"][where][name] = value
    return inventory


CASES = [
    ("the issue's MTU", bad("all.podnet_node_mtu", "abc"),
     f"{NODE}, leaf03: podnet_node_mtu: 'abc' is not a whole number"),
    ("a typo", bad(f"{NODE}.podnet_pod", [{"name": "web"}]), f"{NODE}: podnet_pod: unknown variable (did you mean podnet_pods?)"),
    ("a ClusterIP in the pod CIDR", bad("all.podnet_services", web(cluster_ip="192.168.10.50")),
     f"podnet_services[0].cluster_ip: 192.168.10.50 is inside {NODE}'s pod CIDR {POD_CIDR}"),
    ("a NodePort out of range", bad("all.podnet_services", web(node_port=8080)),
     "podnet_services[0].node_port: 8080 is outside the node-port range 30000-32767 (podnet_service_node_port_range)"),
    ("a pod outside its CIDR", bad(f"{NODE}.podnet_pods", [{"name": "web", "ip": "192.168.11.1"}]),
     f"{NODE}: podnet_pods[0].ip: 192.168.11.1 is not a usable pod address of {NODE}'s pod CIDR {POD_CIDR}"),
    ("an endpoint naming no pod", bad("all.podnet_services", web(endpoints=[{"node": NODE, "pod": "gone"}])),
     f"podnet_services[0].endpoints[0].pod: 'gone' is not a pod of {NODE}"),
]


def site(lab, inventory: dict, name: str) -> subprocess.CompletedProcess:
    path = lab.workdir / f"{name.replace(' ', '-')}.yml"
    path.write_text(yaml.safe_dump(inventory))
    env = dict(lab.env, ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    return subprocess.run([str(ROOT / ".venv/bin/ansible-playbook"), "-i", str(path), str(ROOT / "playbooks/site.yml")],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def runs(lab):
    """Every bad inventory through site.yml, with each node's state before and after all of them."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    before = {node: lab.sh("sh", "-c", STATE, node=node, check=False).stdout for node in NODES}
    done = {case[0]: site(lab, case[1], case[0]) for case in CASES}
    after = {node: lab.sh("sh", "-c", STATE, node=node, check=False).stdout for node in NODES}
    return before, done, after


@pytest.mark.parametrize("name, line", [(case[0], case[2]) for case in CASES])
def test_site_stops_naming_the_field(runs, name, line):
    run = runs[1][name]
    assert run.returncode != 0, run.stdout[-2000:]
    assert f'"{line}"' in run.stdout, run.stdout[-2000:]
    assert "Traceback" not in run.stdout + run.stderr
    recap = run.stdout.rpartition("PLAY RECAP")[2]
    assert NODE not in recap and "leaf03" not in recap, "a node was reached"


def test_no_node_changed(runs):
    before, after = runs[0], runs[2]
    assert before == after
