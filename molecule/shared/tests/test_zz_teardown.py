"""Last: teardown.yml removes everything the collection made, from whatever mode the scenario is
in, and nothing else; the nodes are back to what `bin/lab up` made. Running it twice is fine."""
import pytest

from lab import LEAF, WORKERS, Node, playbook, run_in


@pytest.fixture(scope="module")
def torn_down():
    first = playbook("teardown.yml")
    assert first.returncode == 0, first.stdout[-3000:]
    second = playbook("teardown.yml")
    assert second.returncode == 0, second.stdout[-3000:]
    return second.stdout


def test_teardown_twice_changes_nothing_the_second_time(torn_down):
    recap = [line for line in torn_down.splitlines() if line.startswith("worker")]
    assert recap and all("changed=0" in line and "failed=0" in line for line in recap), recap


@pytest.mark.parametrize("name", WORKERS)
def test_the_node_is_as_the_lab_made_it(torn_down, name):
    node = Node(name)
    links = node.run("sh", "-c", "ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1").stdout.split()
    assert links == ["lo", node.vars.get("podnet_node_interface", "eth0")]
    assert node.run("ip", "netns", "list").stdout.strip() == ""
    routes = node.run("ip", "route", "show", "table", "all").stdout
    assert "proto 201" not in routes and "proto 202" not in routes
    assert "handcni" not in node.run("iptables-save").stdout.lower()
    assert "handcni" not in node.run("nft", "list", "ruleset").stdout
    assert node.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    assert node.run("test", "-e", "/var/lib/handcni").rc != 0
    assert node.run("test", "-e", "/etc/cni/net.d/10-handcni.conflist").rc != 0
    assert node.run("test", "-e", "/run/handcni-verify").rc != 0


def test_the_leaf_has_no_route_of_ours_left(torn_down):
    assert "proto 202" not in run_in(LEAF, "ip", "route", "show", "table", "all").stdout
