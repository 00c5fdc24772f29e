"""Unit tests for the veth module's pure parts: its input, its diff view, and its proxy NDP plan."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _veth as veth

ROUTED6 = {"name": "veth1", "peer_netns": "netns1", "peer_addresses": ["fd00:10:244:1::2/128"],
           "peer_routes": [{"dst": "::/0", "via": "fe80::1"}], "proxy_ndp": ["FE80::1"]}
IPV4 = {"name": "veth2", "peer_netns": "netns2", "peer_addresses": ["10.244.1.3/32"], "proxy_arp": True,
        "peer_routes": [{"dst": "default", "via": "169.254.1.1", "onlink": True}]}


def normalise(item: dict) -> dict:
    return veth.normalise(item, "veths[0]", "present", check_mode=True)  # check mode: the namespaces may be missing


def test_proxy_ndp_is_normalised_once_each_in_address_order():
    want = normalise(dict(ROUTED6, proxy_ndp=["fe80::1", "fd00::10", "FE80::1", "fd00::2"]))
    assert want["proxy_ndp"] == ["fd00::2", "fd00::10", "fe80::1"]


@pytest.mark.parametrize("addresses, message", [
    (["10.0.0.1"], "veths[0].proxy_ndp[0]: '10.0.0.1' is not an IPv6 address"),
    (["fe80::1", "fe80::1::2"], "veths[0].proxy_ndp[1]: 'fe80::1::2' is not a valid IP address"),
    (["fd00::/64"], "veths[0].proxy_ndp[0]: 'fd00::/64' is not a valid IP address"),
])
def test_proxy_ndp_takes_only_ipv6_addresses(addresses, message):
    with pytest.raises(ValueError) as err:
        normalise(dict(ROUTED6, proxy_ndp=addresses))
    assert str(err.value) == message


def test_accept_ra_is_managed_only_where_the_pod_side_has_ipv6():
    assert normalise(ROUTED6)["peer_accept_ra"] == 0
    assert normalise(dict(IPV4, peer_addresses=["10.244.1.3/32", "fd00::3/128"]))["peer_accept_ra"] == 0
    assert normalise(dict(IPV4, addresses=["fd00::1/128"]))["peer_accept_ra"] is None  # the host side's IPv6
    assert normalise(IPV4)["peer_accept_ra"] is None


def test_an_ipv4_only_veth_reads_as_before():
    assert veth.public(normalise(IPV4)) == {
        "name": "veth2", "peer": "eth0", "peer_netns": "netns2", "master": "", "addresses": [], "up": True,
        "peer_addresses": ["10.244.1.3/32"], "proxy_arp": True,
        "peer_routes": [{"dst": "0.0.0.0/0", "via": "169.254.1.1", "dev": "eth0", "onlink": True, "table": 254,
                         "metric": 0}]}


def test_an_ipv6_pod_shows_its_proxy_ndp_and_accept_ra():
    view = veth.public(normalise(ROUTED6))
    assert view["proxy_ndp"] == ["fe80::1"] and view["peer_accept_ra"] == 0
    assert view["peer_routes"] == [{"dst": "::/0", "via": "fe80::1", "dev": "eth0", "onlink": False, "table": 254,
                                    "metric": 1024}]


@pytest.mark.parametrize("enabled, addresses, view", [
    (False, [], {}),
    (True, ["fe80::1"], {"proxy_ndp": ["fe80::1"]}),
    (True, [], {"proxy_ndp": [], "proxy_ndp_enabled": True}),
    (False, ["fe80::1"], {"proxy_ndp": ["fe80::1"], "proxy_ndp_enabled": False}),
])
def test_every_proxy_ndp_state_reads_apart(enabled, addresses, view):
    assert veth.proxy_ndp_view({"proxy_ndp": addresses, "proxy_ndp_enabled": enabled}) == view
    assert veth.proxy_ndp_view({"proxy_ndp": addresses}) == veth.proxy_ndp_view(
        {"proxy_ndp": addresses, "proxy_ndp_enabled": bool(addresses)})  # as wanted: on exactly with addresses


def plan_proxy_ndp(want: list, have: list, enabled: bool) -> list[str]:
    planner = veth.VethPlanner.__new__(veth.VethPlanner)  # planning only: no session is used
    actions = planner.plan_proxy_ndp({"name": "veth1", "proxy_ndp": want}, 5,
                                     {"proxy_ndp": have, "proxy_ndp_enabled": enabled})
    return [action.description for action in actions]


@pytest.mark.parametrize("want, have, enabled, actions", [
    ([], [], False, []),
    (["fe80::1"], ["fe80::1"], True, []),
    (["fe80::1"], [], False, ["set veth1 proxy_ndp +fe80::1", "set veth1 proxy_ndp_enabled False -> True"]),
    (["fe80::1"], ["fe80::1", "fe80::2"], False, ["set veth1 proxy_ndp -fe80::2",
                                                  "set veth1 proxy_ndp_enabled False -> True"]),
    ([], ["fe80::1"], True, ["set veth1 proxy_ndp -fe80::1", "set veth1 proxy_ndp_enabled True -> False"]),
    ([], [], True, ["set veth1 proxy_ndp_enabled True -> False"]),  # on with no entry: turned off
    ([], ["fe80::1"], False, ["set veth1 proxy_ndp -fe80::1"]),  # an entry left: removed
])
def test_proxy_ndp_plan_makes_the_set_exact_and_the_sysctl_follow_it(want, have, enabled, actions):
    assert plan_proxy_ndp(want, have, enabled) == actions
