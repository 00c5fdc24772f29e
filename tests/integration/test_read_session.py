"""_netlink.ReadSession against pyroute2's IPRoute on a real kernel, inside a throwaway lab node (worker1).

The read session answers the modules' reads on a plain netlink socket (pyroute2's message classes decode
them); what the modules make of its answers must be what they make of IPRoute's, in the node's namespace
and in a pod's, for links of several kinds, addresses of both families and routes of several tables.
"""
from __future__ import annotations

import json
import sys

import pytest
from conftest import ROOT

SETUP = """
set -e
ip netns add rs-pod
ip link add rs-br type bridge
ip link add rs-host type veth peer name eth0 netns rs-pod
ip link set rs-host master rs-br up
ip link set rs-br up
ip addr add 10.77.0.1/24 dev rs-br
ip addr add fd77::1/64 dev rs-br nodad
ip -n rs-pod link set lo up
ip -n rs-pod link set eth0 up
ip -n rs-pod addr add 10.77.0.2/24 dev eth0
ip -n rs-pod addr add fd77::2/64 dev eth0 nodad
ip -n rs-pod route add default via 10.77.0.1 proto 201
ip -n rs-pod route add 10.88.0.0/16 via 10.77.0.1 table 100
ip -n rs-pod -6 route add default via fd77::1 proto 201
ip route add 10.99.0.0/24 dev rs-br proto 201 metric 5
"""

# Runs in the node: every read both ways, and what the modules make of them.
COMPARE = """
import errno, json, sys
from ansible_collections.handcni.podnet.plugins.module_utils import _netlink as nl, _routes as routes
from ansible_collections.handcni.podnet.plugins.module_utils._links import netns_is_ours

def view(session):
    links = nl.links_by_name(session)
    return {
        "links": {name: nl.link_state(session, link) for name, link in links.items()},
        "peers": {name: link.get_attr("IFLA_LINK") for name, link in links.items()},
        "addresses": {str(k): v for k, v in nl.addresses_by_link(session).items()},
        "routes": sorted(map(repr, routes.read(session).values())),
        "lo": session.link("get", index=1)[0].get_attr("IFLA_IFNAME"),
        "ours": netns_is_ours(session),
        "missing": nl.link_by_name(session, "rs-none"),
    }

out = {}
for name in (None, "rs-pod"):
    ipr = nl.open_session(name)
    with nl.Sessions() as sessions:
        reader = sessions.reader(name)
        out[str(name)] = {"iproute": view(ipr), "reader": view(reader)}
        kept = len(reader.addr("dump"))
        ipr.addr("add", index=nl.link_index(ipr, "lo"), address="10.66.0.9", prefixlen=32)
        out[str(name)]["kept"] = [kept, len(reader.addr("dump"))]
        sessions.changed()
        out[str(name)]["after_change"] = len(reader.addr("dump"))
        try:
            reader.link("add", ifname="rs-x", kind="dummy")
        except ValueError as err:
            out[str(name)]["refused"] = str(err)
    ipr.close()
json.dump(out, sys.stdout, default=str)
"""


@pytest.fixture(scope="module")
def reads(lab):
    lab.sh("sh", "-c", SETUP)
    done = lab.sh(sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT / '.collections')!r})\n" + COMPARE,
                  check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("where", ["None", "rs-pod"])
def test_the_modules_read_the_same_through_either(reads, where):
    seen = reads[where]
    assert seen["reader"] == seen["iproute"]
    assert seen["reader"]["lo"] == "lo" and seen["reader"]["missing"] is None
    if where == "rs-pod":
        assert seen["reader"]["links"]["eth0"]["addresses"] == ["10.77.0.2/24", "fd77::2/64"]
        assert any("'table': 100" in route for route in seen["reader"]["routes"])  # other tables too
    else:
        assert seen["reader"]["links"]["rs-host"]["master"] == "rs-br"


@pytest.mark.parametrize("where", ["None", "rs-pod"])
def test_a_dump_is_kept_until_a_change_is_told(reads, where):
    kept, again = reads[where]["kept"]
    assert again == kept and reads[where]["after_change"] == kept + 1


def test_a_read_session_changes_nothing(reads):
    assert reads["None"]["refused"] == "a read session does not add links"
