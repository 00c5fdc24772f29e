"""Unit tests for the pure parts of plugins/module_utils/_routes.py."""
from __future__ import annotations

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _routes as routes

FIELD = "routes[0]"


def have_route(dst, via=None, dev=None, onlink=False, src=None, table=254, metric=0, owned=True):
    """A route in the shape _routes.read() returns."""
    return dict(dst=dst, via=via, dev=dev, onlink=onlink, src=src, table=table, metric=metric, owned=owned)


def have_of(*found):
    return {routes.key(r): r for r in found}


def want(**route):
    return routes.normalise(route, FIELD)


# --- normalise ----------------------------------------------------------------

def test_normalise_fills_defaults():
    assert want(dst="10.1.0.0/16", via="192.168.10.254") == {
        "dst": "10.1.0.0/16", "via": "192.168.10.254", "dev": None, "onlink": False,
        "src": None, "table": 254, "metric": 0,
    }


def test_normalise_default_dst():
    assert want(dst="default", via="192.168.10.254")["dst"] == "0.0.0.0/0"


def test_normalise_normalises_addresses():
    route = want(dst="2001:DB8::/32", via="2001:DB8:0::1", src="2001:db8:0:0::2")
    assert (route["dst"], route["via"], route["src"]) == ("2001:db8::/32", "2001:db8::1", "2001:db8::2")


@pytest.mark.parametrize("route, expected", [
    ({"dst": "default", "via": "192.168.10.254"}, "eth0"),
    ({"dst": "192.168.10.254/32"}, "eth0"),
    ({"dst": "192.168.10.254/32", "dev": "veth1"}, "veth1"),
])
def test_normalise_dev_fallback(route, expected):
    assert routes.normalise(route, FIELD, dev="eth0")["dev"] == expected


def test_normalise_keeps_table_and_metric():
    route = want(dst="10.0.0.0/8", dev="eth0", table=100, metric=20)
    assert (route["table"], route["metric"]) == (100, 20)


def test_normalise_onlink_with_via_and_dev():
    assert want(dst="default", via="169.254.1.1", dev="eth0", onlink=True)["onlink"] is True


def test_normalise_onlink_with_fallback_dev():
    route = routes.normalise({"dst": "default", "via": "169.254.1.1", "onlink": True}, FIELD, dev="eth0")
    assert (route["dev"], route["onlink"]) == ("eth0", True)


@pytest.mark.parametrize("route, field", [
    ({"dst": "default", "via": "169.254.1.1", "onlink": True}, f"{FIELD}.onlink"),
    ({"dst": "default", "dev": "eth0", "onlink": True}, f"{FIELD}.onlink"),
    ({"dst": "10.0.0.0/8", "dev": "eth0", "table": 255}, f"{FIELD}.table"),
    ({"dst": "10.0.0.0/8", "dev": "eth0", "table": 253}, f"{FIELD}.table"),
    ({"dst": "10.0.0.0/8", "dev": "eth0", "table": -1}, f"{FIELD}.table"),
    ({"dst": "10.0.0.0/8", "dev": "eth0", "table": 2 ** 32}, f"{FIELD}.table"),
    ({"dst": "10.0.0.0/8"}, f"{FIELD}: route to 10.0.0.0/8 needs 'via' or 'dev'"),
    ({"dst": "10.0.0.1/8", "dev": "eth0"}, f"{FIELD}.dst"),
    ({"dst": "10.0.0.0/8", "via": "10.0.0.1/32"}, f"{FIELD}.via"),
    ({"dst": "10.0.0.0/8", "dev": "eth0:1"}, f"{FIELD}.dev"),
    ({"dst": "10.0.0.0/8", "dev": "eth0", "src": "nope"}, f"{FIELD}.src"),
])
def test_normalise_rejects(route, field):
    with pytest.raises(ValueError) as err:
        routes.normalise(route, FIELD)
    assert str(err.value).startswith(field)


@pytest.mark.parametrize("metric", [-1, 2 ** 32])
def test_normalise_rejects_metric_out_of_range(metric):
    with pytest.raises(ValueError, match=r"^routes\[0\]\.metric"):
        want(dst="10.0.0.0/8", dev="eth0", metric=metric)


def test_normalise_rejects_mixed_families():
    with pytest.raises(ValueError, match=r"^routes\[0\]\.via"):
        want(dst="10.0.0.0/8", via="fd00::1", dev="eth0")


def test_normalise_default_follows_the_gateway_family():
    assert want(dst="default", via="fd00::1", dev="eth0")["dst"] == "::/0"


# --- key, describe, public ----------------------------------------------------

def test_key_is_table_dst_metric():
    assert routes.key(have_route("10.0.0.0/8", dev="eth0", table=100, metric=5)) == (100, "10.0.0.0/8", 5)


@pytest.mark.parametrize("route, text", [
    (have_route("0.0.0.0/0", via="192.168.10.254"), "0.0.0.0/0 via 192.168.10.254"),
    (have_route("192.168.10.254/32", dev="eth0"), "192.168.10.254/32 dev eth0"),
    (have_route("0.0.0.0/0", via="169.254.1.1", dev="eth0", onlink=True), "0.0.0.0/0 via 169.254.1.1 dev eth0 onlink"),
    (have_route("10.0.0.0/8", dev="eth0", table=100, metric=20), "10.0.0.0/8 dev eth0 table 100 metric 20"),
    ({"dst": "10.0.0.0/8", "dev": "eth0"}, "10.0.0.0/8 dev eth0"),
])
def test_describe(route, text):
    assert routes.describe(route) == text


def test_public_drops_unset_and_internal_keys():
    route = have_route("0.0.0.0/0", via="192.168.10.254")
    assert routes.public(route) == {
        "dst": "0.0.0.0/0", "via": "192.168.10.254", "onlink": False, "table": 254, "metric": 0,
    }


def test_public_of_normalised_route():
    route = want(dst="10.0.0.0/8", via="192.168.10.1", dev="eth0", src="192.168.10.5", table=7, metric=3)
    assert routes.public(route) == {
        "dst": "10.0.0.0/8", "via": "192.168.10.1", "dev": "eth0", "onlink": False,
        "src": "192.168.10.5", "table": 7, "metric": 3,
    }


# --- plan ---------------------------------------------------------------------

DEFAULT = dict(dst="default", via="192.168.10.254", dev="eth0")


def test_plan_new_route_is_put():
    route = want(**DEFAULT)
    assert routes.plan([route], {}, prune=False, field="routes") == ([route], [])


def test_plan_identical_owned_route_is_left():
    have = have_of(have_route("0.0.0.0/0", via="192.168.10.254", dev="eth0"))
    assert routes.plan([want(**DEFAULT)], have, prune=True, field="routes") == ([], [])


@pytest.mark.parametrize("change", [
    {"via": "192.168.10.253"},
    {"dev": "eth1"},
    {"via": "169.254.1.1", "onlink": True},
    {"src": "192.168.10.1"},
])
def test_plan_changed_owned_route_is_put(change):
    have = have_of(have_route("0.0.0.0/0", via="192.168.10.254", dev="eth0"))
    route = want(**{**DEFAULT, **change})
    assert routes.plan([route], have, prune=True, field="routes") == ([route], [])


def test_plan_same_dst_other_metric_or_table_is_another_route():
    have = have_of(have_route("0.0.0.0/0", via="192.168.10.1", metric=100, owned=False),
                   have_route("0.0.0.0/0", via="192.168.10.1", table=100, owned=False))
    route = want(**DEFAULT)
    assert routes.plan([route], have, prune=True, field="routes") == ([route], [])


def test_plan_refuses_foreign_route_with_same_key():
    have = have_of(have_route("0.0.0.0/0", via="192.168.10.1", dev="eth0", owned=False))
    wanted = [want(dst="10.0.0.0/8", dev="eth0"), want(**DEFAULT)]
    with pytest.raises(ValueError, match=r"^routes\[1\]: route 0\.0\.0\.0/0 via 192\.168\.10\.1 dev eth0 exists "
                                         r"and was not made by handcni\.podnet"):
        routes.plan(wanted, have, prune=False, field="routes")


def test_plan_refuses_identical_foreign_route():
    have = have_of(have_route("0.0.0.0/0", via="192.168.10.254", dev="eth0", owned=False))
    with pytest.raises(ValueError, match=r"^veths\[2\]\.peer_routes\[0\]: "):
        routes.plan([want(**DEFAULT)], have, prune=False, field="veths[2].peer_routes")


def test_plan_prune_removes_only_owned_unlisted_routes():
    listed = have_route("0.0.0.0/0", via="192.168.10.254", dev="eth0")
    stale = have_route("10.9.0.0/16", via="192.168.10.9", dev="eth0")
    stale_other_table = have_route("10.9.0.0/16", via="192.168.10.9", dev="eth0", table=100)
    kernel = have_route("192.168.10.0/24", dev="eth0", owned=False)
    have = have_of(listed, stale, stale_other_table, kernel)
    assert routes.plan([want(**DEFAULT)], have, prune=True, field="routes") == ([], [stale, stale_other_table])


def test_plan_without_prune_removes_nothing():
    have = have_of(have_route("10.9.0.0/16", via="192.168.10.9", dev="eth0"))
    assert routes.plan([], have, prune=False, field="routes") == ([], [])


def test_plan_ipv6_route_read_back_is_idempotent():
    route = want(dst="::/0", via="fd00::1", dev="eth0")
    have = have_of(have_route("::/0", via="fd00::1", dev="eth0", metric=1024))
    assert routes.plan([route], have, prune=True, field="routes") == ([], [])


def test_plan_makes_an_ipv6_onlink_route_anew_when_its_device_changes():
    # The kernel checks an IPv6 onlink gateway against the route being replaced and refuses ("device mismatch").
    static = have_route("fd00:20::/64", via="fd00:210::22", dev="enp0s9", metric=1024)
    tunnelled = want(dst="fd00:20::/64", via="fd00:20::", dev="vxlan100", onlink=True)
    assert routes.plan([tunnelled], have_of(static), prune=True, field="routes") == ([tunnelled], [static])
    same_device = have_route("fd00:20::/64", via="fd00:20::1", dev="vxlan100", onlink=True, metric=1024)
    assert routes.plan([tunnelled], have_of(same_device), prune=True, field="routes") == ([tunnelled], [])


def test_plan_lets_the_kernel_pick_dev_and_src_when_not_given():
    wanted = want(dst="10.88.0.0/16", via="192.168.210.254")
    have = {routes.key(wanted): dict(wanted, dev="eth0", src="192.168.210.21", owned=True)}
    assert routes.plan([wanted], have, prune=False, field=FIELD) == ([], [])
