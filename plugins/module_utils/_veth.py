# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The veth module's body (pods wired to the node by veth pairs, in one netlink session), run alone or as a part
of pod_network."""
from __future__ import annotations

import ipaddress

from . import _routes as routes
from . import _validate as validate
from ._links import (
    apply_change,
    compared,
    describe_change,
    netns_is_ours,
    not_ours,
    owner_alias,
    plan_link,
)
from ._module import COMMON_OPTIONS, Action
from ._netlink import (
    Sessions,
    addresses_by_link,
    delete_link,
    link_index,
    link_state,
    links_by_name,
    netns_exists,
    proxy_neighbours,
    read_sysctl,
    sysctl_path,
    write_sysctl,
)
from ._restore import link_file

ALIAS = owner_alias("veth")
PROXIES = {"proxy_arp": "ipv4", "proxy_ndp": "ipv6"}  # proxy ARP and its IPv6 analogue: the family of their sysctls


def ipv6_addresses(values, field: str) -> list[str]:
    """IPv6 addresses, normalised, each once, in address order (as _netlink.proxy_neighbours reads them)."""
    found = set()
    for index, value in enumerate(values or []):
        address = ipaddress.ip_address(validate.address(value, f"{field}[{index}]"))
        if address.version != 6:
            raise ValueError(f"{field}[{index}]: {value!r} is not an IPv6 address")
        found.add(address)
    return [str(address) for address in sorted(found)]


def pod_side(want: dict) -> str:
    """The pod side as actions name it: netns1/eth0 (eth0 when both sides are in the node)."""
    return f"{want['peer_netns']}/{want['peer']}" if want["peer_netns"] else want["peer"]


def normalise(item: dict, field: str, state: str, check_mode: bool) -> dict:
    name = validate.ifname(item["name"], f"{field}.name")
    if state == "absent":
        return {"name": name}
    peer_netns = item.get("peer_netns")
    if peer_netns is not None:
        validate.netns(peer_netns, f"{field}.peer_netns")
        # In check mode an earlier task may only have planned the namespace.
        if not netns_exists(peer_netns) and not check_mode:
            raise ValueError(f"{field}.peer_netns: network namespace {peer_netns!r} does not exist")
    peer = validate.ifname(item.get("peer") or "eth0", f"{field}.peer")
    if peer_netns is None and peer == name:
        raise ValueError(f"{field}.peer: {peer!r} is the same name as the host side")
    if item.get("hairpin") and not item.get("master"):
        raise ValueError(f"{field}.hairpin: hairpin mode needs a bridge in {field}.master")
    mtu = validate.mtu(item["mtu"], f"{field}.mtu") if item.get("mtu") is not None else None
    host = {
        "mtu": mtu,
        "mac": validate.mac(item["mac"], f"{field}.mac") if item.get("mac") else None,
        "master": validate.ifname(item["master"], f"{field}.master") if item.get("master") else "",
        "hairpin": bool(item.get("hairpin")) if item.get("master") else None,
        "addresses": validate.interfaces(item.get("addresses"), f"{field}.addresses"),
        "up": True,
    }
    pod = {
        "mtu": mtu,
        "mac": validate.mac(item["peer_mac"], f"{field}.peer_mac") if item.get("peer_mac") else None,
        "addresses": validate.interfaces(item.get("peer_addresses"), f"{field}.peer_addresses"),
        "up": True,
    }
    pod_routes = [routes.normalise(r, f"{field}.peer_routes[{i}]", dev=peer)
                  for i, r in enumerate(item.get("peer_routes") or [])]
    pod_ipv6 = any(ipaddress.ip_interface(cidr).version == 6 for cidr in pod["addresses"])
    return {"name": name, "peer": peer, "peer_netns": peer_netns, "host": host, "pod": pod, "routes": pod_routes,
            "proxy_arp": bool(item.get("proxy_arp")),
            "proxy_ndp": ipv6_addresses(item.get("proxy_ndp"), f"{field}.proxy_ndp"),
            "peer_accept_ra": 0 if pod_ipv6 else None}  # managed only where the pod side has IPv6


def proxy_ndp_view(want: dict) -> dict:
    """Proxy NDP as the diff shows it: the addresses when there are any, and whether the sysctl is on only where
    that disagrees with them (as read: on with none, off with some), so no two states read alike."""
    addresses = want["proxy_ndp"]
    enabled = want.get("proxy_ndp_enabled", bool(addresses))
    view = {"proxy_ndp": addresses} if addresses or enabled else {}
    if enabled != bool(addresses):
        view["proxy_ndp_enabled"] = enabled
    return view


def public(want: dict) -> dict:
    """The diff and return view of one veth."""
    if "host" not in want:
        return {"name": want["name"]}
    view = {"name": want["name"], "peer": want["peer"], "peer_netns": want["peer_netns"]}
    view.update({k: v for k, v in want["host"].items() if v is not None and k != "owned"})
    view.update({f"peer_{k}": v for k, v in want["pod"].items() if v is not None and k not in ("up", "owned")})
    view["peer_routes"] = sorted((routes.public(r) for r in want["routes"]), key=repr)  # as listed or as read
    view["proxy_arp"] = want["proxy_arp"]
    view.update(proxy_ndp_view(want))
    if want["peer_accept_ra"] is not None:
        view["peer_accept_ra"] = want["peer_accept_ra"]
    return view


class VethPlanner:
    """Plans every veth of the call from one read per namespace: the node's links and addresses are
    dumped once (not once per pod, which would cost N dumps of N links), each pod's once."""

    def __init__(self, module, sessions: Sessions):
        self.module = module
        self.sessions = sessions
        self.host = sessions[module.params["netns"]]
        self.host_reader = sessions.reader(module.params["netns"])
        self._read: dict = {}
        self._proxy_ndp: dict | None = None

    def pod_session(self, want: dict):
        """The session that changes the pod side's namespace (opened when a change needs it)."""
        return self.sessions[want["peer_netns"]] if want["peer_netns"] else self.host

    def pod_reader(self, want: dict):
        """The read session of the pod side's namespace."""
        return self.sessions.reader(want["peer_netns"]) if want["peer_netns"] else self.host_reader

    def read(self, ipr) -> tuple[dict, dict, dict]:
        """({name: link}, {index: name}, {index: addresses}) of the namespace of read session `ipr`, read once.
        Every read is done while planning, before any change, so it stays true until apply."""
        if id(ipr) not in self._read:
            links = links_by_name(ipr)
            self._read[id(ipr)] = (links, {link["index"]: name for name, link in links.items()},
                                   addresses_by_link(ipr))
        return self._read[id(ipr)]

    def state(self, ipr, link) -> dict:
        _links, names, addresses = self.read(ipr)
        return link_state(ipr, link, names, addresses)

    def proxy_ndp(self, index: int) -> list[str]:
        """The IPv6 proxy neighbour entries of host-side link `index`; the node's are dumped once, on first use."""
        if self._proxy_ndp is None:
            self._proxy_ndp = proxy_neighbours(self.module.params["netns"])
        return self._proxy_ndp.get(index, [])

    def proxy_on(self, name: str, knob: str) -> bool:
        """Whether proxy ARP or proxy NDP (`knob`) is on on host side `name`."""
        try:
            return read_sysctl(self.module.params["netns"], f"net.{PROXIES[knob]}.conf.{name}.{knob}") == "1"
        except FileNotFoundError:  # a kernel without IPv6 (ipv6.disable=1): no proxy NDP either
            return False

    def set_proxy(self, name: str, knob: str, enabled: bool) -> None:
        """Answer the pod's ARP (proxy_arp: for any address the node routes, such as Calico's 169.254.1.1) or
        neighbour solicitations (proxy_ndp: for the listed addresses) at once, with no proxy delay."""
        netns, family = self.module.params["netns"], PROXIES[knob]
        write_sysctl(netns, f"net.{family}.conf.{name}.{knob}", int(enabled))
        if enabled:
            write_sysctl(netns, f"net.{family}.neigh.{name}.proxy_delay", 0)

    def accept_ra(self, want: dict) -> tuple[str | None, str]:
        """(namespace, name) of the pod side's accept_ra sysctl."""
        return want["peer_netns"] or self.module.params["netns"], f"net.ipv6.conf.{want['peer']}.accept_ra"

    def delete(self, name: str) -> Action:
        return Action(f"delete veth {name}", lambda: delete_link(self.host, name))

    def create(self, want: dict, kept_routes: tuple = ()) -> list[Action]:
        """Make the pair; `kept_routes`: the routes through the host side it replaces, put back."""
        name, peer, host, pod = want["name"], want["peer"], want["host"], want["pod"]
        peer_spec = {"ifname": peer}
        if want["peer_netns"]:
            peer_spec["net_ns_fd"] = want["peer_netns"]
        spec = {"ifname": name, "kind": "veth", "peer": peer_spec}
        # What the kernel takes at creation (MTU, MACs, namespace, bridge) goes in the one request
        # that makes the pair; the rest is a few requests per side, each link addressed by index.
        for attrs, side in ((spec, host), (peer_spec, pod)):
            if side["mtu"] is not None:
                attrs["mtu"] = side["mtu"]
            if side["mac"]:
                attrs["address"] = side["mac"]

        def run():
            pod_ipr = self.pod_session(want)
            if host["master"]:
                bridge = self.read(self.host_reader)[0].get(host["master"])
                spec["master"] = bridge["index"] if bridge is not None else link_index(self.host, host["master"])
            self.host.link("add", **spec)
            made = self.host.link("get", ifname=name)[0]
            index, peer_index = made["index"], made.get_attr("IFLA_LINK")  # the peer's, in its namespace
            if want["peer_accept_ra"] is not None:  # before the pod side is up: no advertisement is ever taken
                write_sysctl(*self.accept_ra(want), want["peer_accept_ra"])
            # The pod side first: a marked host side then always means a marked pair.
            pod_ipr.link("set", index=peer_index, ifalias=ALIAS, state="up")
            self.host.link("set", index=index, ifalias=ALIAS, state="up")
            if host["hairpin"]:
                apply_change(self.host, name, "hairpin", None, True, index=index)
            if host["addresses"]:
                apply_change(self.host, name, "addresses", [], host["addresses"], index=index)
            if pod["addresses"]:
                apply_change(pod_ipr, peer, "addresses", [], pod["addresses"], index=peer_index)
            for route in want["routes"]:
                routes.put(pod_ipr, route, indexes={peer: peer_index})
            for route in kept_routes:
                routes.put(self.host, route, route["proto"])
            if want["proxy_arp"]:
                self.set_proxy(name, "proxy_arp", True)
            if want["proxy_ndp"]:
                apply_change(self.host, name, "proxy_ndp", [], want["proxy_ndp"], index=index)
                self.set_proxy(name, "proxy_ndp", True)

        return [Action(f"create veth {name} <-> {pod_side(want)}", run)]

    def cut_short(self, want: dict, host_link, host_have: dict) -> bool:
        """Whether an unmarked link is a pair a run made and was stopped before marking (the kernel
        takes no alias in the request that makes a pair): a veth whose other end is the wanted peer,
        inside the pod's namespace, which is ours. Such a pair is made again."""
        if host_have["kind"] != "veth" or not want.get("peer_netns") or not netns_exists(want["peer_netns"]):
            return False
        pod_reader = self.pod_reader(want)
        if not netns_is_ours(pod_reader):
            return False
        pod_link = self.read(pod_reader)[0].get(want["peer"])
        return pod_link is not None and host_link.get_attr("IFLA_LINK") == pod_link["index"]

    def plan(self, index: int, want: dict) -> list[Action]:
        field = f"veths[{index}]"
        name = want["name"]
        host_links = self.read(self.host_reader)[0]
        host_link = host_links.get(name)
        host_have = self.state(self.host_reader, host_link) if host_link is not None else None
        cut_short = host_have is not None and not host_have["owned"] and self.cut_short(want, host_link, host_have)
        if host_have is not None and not host_have["owned"] and not cut_short:
            raise not_ours(f"{field}.name", f"link {name}", self.module.where)
        if self.module.params["state"] == "absent":
            self.module.before[name] = {"name": name, "present": host_link is not None}
            self.module.after[name] = {"name": name, "present": False}
            return [self.delete(name)] if host_link is not None else []

        master = want["host"]["master"]
        # In check mode an earlier task may only have planned the bridge.
        if master and master not in host_links and not self.module.check_mode:
            raise ValueError(f"{field}.master: bridge {master!r} does not exist in {self.module.where}")
        pod_reader = self.pod_reader(want) if netns_exists(want["peer_netns"]) else None
        pod_link = self.read(pod_reader)[0].get(want["peer"]) if pod_reader else None
        paired = (
            not cut_short and host_link is not None and pod_link is not None
            and host_link.get_attr("IFLA_LINK") == pod_link["index"]
            and pod_link.get_attr("IFLA_LINK") == host_link["index"]
        )
        if pod_link is not None and not paired and not cut_short and not self.state(pod_reader, pod_link)["owned"]:
            raise not_ours(f"{field}.peer", f"link {want['peer']}", f"netns {want['peer_netns']}")
        self.module.after[name] = public(want)
        if not paired:
            self.module.before[name] = {"name": name, "present": False}
            actions = [self.delete(name)] if host_link is not None else []
            kept = routes.through(self.host_reader, name) if host_link is not None else []
            if pod_link is not None and not cut_short:  # a leftover of ours under the pod-side name
                actions.append(Action(f"delete stale {want['peer']} in netns {want['peer_netns']}",
                                      lambda: self.pod_session(want).link("del", index=pod_link["index"])))
            return actions + self.create(want, kept)

        pod_have = self.state(pod_reader, pod_link)
        # The pod-side routes are the ones through the pod side; nothing else in that namespace is ours.
        route_have = {k: r for k, r in routes.read(pod_reader, names=self.read(pod_reader)[1]).items()
                      if r["dev"] == want["peer"]}
        put, remove = routes.plan(want["routes"], route_have, prune=True, field=f"{field}.peer_routes")
        proxy_arp = self.proxy_on(name, "proxy_arp")
        proxy_ndp = {"proxy_ndp": self.proxy_ndp(host_link["index"]),
                     "proxy_ndp_enabled": self.proxy_on(name, "proxy_ndp")}
        accept_ra = int(read_sysctl(*self.accept_ra(want))) if want["peer_accept_ra"] is not None else None
        self.module.before[name] = public({
            **want, "host": compared(host_have, want["host"]), "pod": compared(pod_have, want["pod"]),
            "proxy_arp": proxy_arp, **proxy_ndp, "peer_accept_ra": accept_ra,
            "routes": [r for r in route_have.values() if r["owned"]],
        })
        pod_where = f" in netns {want['peer_netns']}" if want["peer_netns"] else ""
        actions = [
            Action(describe_change(name, attr, old, new),
                   lambda a=attr, o=old, n=new: apply_change(self.host, name, a, o, n))
            for attr, old, new in plan_link(host_have, want["host"])
        ]
        if accept_ra != want["peer_accept_ra"]:  # before the pod side gets a new IPv6 address
            actions.append(Action(f"set {pod_side(want)} accept_ra {accept_ra} -> {want['peer_accept_ra']}",
                                  lambda: write_sysctl(*self.accept_ra(want), want["peer_accept_ra"])))
        actions += [
            Action(describe_change(want["peer"], attr, old, new) + pod_where,
                   lambda a=attr, o=old, n=new: apply_change(self.pod_session(want), want["peer"], a, o, n))
            for attr, old, new in plan_link(pod_have, want["pod"])
        ]
        if proxy_arp != want["proxy_arp"]:
            actions.append(Action(f"set {name} proxy_arp {proxy_arp} -> {want['proxy_arp']}",
                                  lambda: self.set_proxy(name, "proxy_arp", want["proxy_arp"])))
        actions += self.plan_proxy_ndp(want, host_link["index"], proxy_ndp)
        actions += [Action(f"delete route {routes.describe(r)}{pod_where}", lambda r=r: routes.delete(self.pod_session(want), r))
                    for r in remove]
        actions += [Action(f"add route {routes.describe(r)}{pod_where}", lambda r=r: routes.put(self.pod_session(want), r))
                    for r in put]
        return actions

    def plan_proxy_ndp(self, want: dict, index: int, have: dict) -> list[Action]:
        """Make the host side's proxy neighbour entries the listed ones, and proxy NDP on exactly when there are any."""
        name, addresses, enabled = want["name"], want["proxy_ndp"], have["proxy_ndp_enabled"]
        actions = []
        if have["proxy_ndp"] != addresses:
            actions.append(Action(describe_change(name, "proxy_ndp", have["proxy_ndp"], addresses),
                                  lambda: apply_change(self.host, name, "proxy_ndp", have["proxy_ndp"], addresses,
                                                       index=index)))
        if enabled != bool(addresses):
            actions.append(Action(f"set {name} proxy_ndp_enabled {enabled} -> {bool(addresses)}",
                                  lambda: self.set_proxy(name, "proxy_ndp", bool(addresses))))
        return actions

    def prune(self, listed: set) -> list[Action]:
        actions, gone = [], set()
        for name, link in self.read(self.host_reader)[0].items():
            if link.get_attr("IFLA_IFALIAS") != ALIAS or name in listed:
                continue
            self.module.forget(name)
            gone.add(link["index"])
            if link.get_attr("IFLA_LINK") not in gone:  # deleting one side of a local pair deletes both
                actions.append(self.delete(name))
        return actions


COMMON = tuple(COMMON_OPTIONS)
OPTIONS = dict(
    veths=dict(
        type="list", elements="dict", required=True,
        options=dict(
            name=dict(type="str", required=True),
            peer=dict(type="str", default="eth0"),
            peer_netns=dict(type="str"),
            mtu=dict(type="int"),
            mac=dict(type="str"),
            peer_mac=dict(type="str"),
            master=dict(type="str"),
            hairpin=dict(type="bool", default=False),
            proxy_arp=dict(type="bool", default=False),
            proxy_ndp=dict(type="list", elements="str", default=[]),
            addresses=dict(type="list", elements="str", default=[]),
            peer_addresses=dict(type="list", elements="str", default=[]),
            peer_routes=dict(type="list", elements="dict", default=[], options=dict(routes.SPEC)),
        ),
    ),
)


def want(module) -> list:
    wanted = [normalise(item, f"veths[{i}]", module.params["state"], module.check_mode)
              for i, item in enumerate(module.params["veths"])]
    validate.unique(wanted, "name", "veths")
    return wanted


def run(module, wanted: list) -> None:
    params = module.params
    with module.errors(), module.sessions() as sessions:
        planner = VethPlanner(module, sessions)
        actions = []
        for index, want_one in enumerate(wanted):
            actions += planner.plan(index, want_one)
        if params["prune"] and params["state"] == "present":
            # A pair with both sides here lists only one name; its peer is not stale.
            actions += planner.prune({w["name"] for w in wanted} | {w["peer"] for w in wanted if not w["peer_netns"]})
        module.apply(actions)
    if params["netns"] is None:  # a link gone, or its proxy ARP or NDP reset (systemd-sysctl's globs: cilium#10645)
        module.canary["files"] = [link_file(w["name"]) for w in wanted]
        module.canary["values"] = {sysctl_path(f"net.{family}.conf.{w['name']}.{knob}"): 1
                                   for w in wanted for knob, family in PROXIES.items() if w.get(knob)}
    module.finish(veths=[public(w) for w in wanted])
