# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning and applying link attributes, shared by the link modules. Private to this collection."""
from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from typing import Callable

from . import _restore as restore
from . import _validate as validate
from ._module import Action
from ._netlink import (NTF_PROXY, OWNER, inside_session, link_by_name, link_index, link_kind, link_state,
                       sysctl_path)

# Applied in this order: a port joins its bridge before hairpin is set, and comes up last.
LINK_ATTRS = ("mtu", "mac", "master", "hairpin", "addresses", "up")
# Attributes that are exact sets, changed member by member: a link's addresses, its IPv6 proxy neighbour entries.
SET_ATTRS = ("addresses", "proxy_ndp")
IFA_F_NODAD = 0x2  # an IPv6 address usable at once, without duplicate address detection


def plan_link(have: dict, want: dict) -> list[tuple[str, object, object]]:
    """(attribute, have, want) for every attribute that `want` sets and `have` lacks. Pure."""
    return [
        (attr, have.get(attr), want[attr])
        for attr in LINK_ATTRS
        if want.get(attr) is not None and have.get(attr) != want[attr]
    ]


def compared(have: dict, want: dict) -> dict:
    """The part of `have` that `want` sets, so a diff shows only what is managed."""
    return {attr: have.get(attr) for attr, value in want.items() if value is not None}


def set_changes(old, new) -> tuple[list, list]:
    """(members to add, members to remove), each sorted, turning set `old` (None: empty) into `new`. Pure."""
    old, new = set(old or []), set(new)
    return sorted(new - old), sorted(old - new)


def describe_change(name: str, attr: str, old, new) -> str:
    if attr in SET_ATTRS:
        added, removed = set_changes(old, new)
        return f"set {name} {attr} {' '.join([f'+{a}' for a in added] + [f'-{a}' for a in removed])}"
    return f"set {name} {attr} {old} -> {new}"


def apply_change(ipr, name: str, attr: str, old, new, index: int | None = None) -> None:
    """Set one attribute of link `name` (`index`, when the caller knows it, spares a lookup)."""
    if index is None:
        index = link_index(ipr, name)
    if attr == "mtu":
        ipr.link("set", index=index, mtu=new)
    elif attr == "mac":
        ipr.link("set", index=index, address=new)
    elif attr == "master":
        ipr.link("set", index=index, master=link_index(ipr, new) if new else 0)
    elif attr == "hairpin":
        ipr.brport("set", index=index, mode=int(new))
    elif attr == "addresses":
        # New addresses first: a link left with no address has every route through it flushed. And
        # a new address in the old one's subnet is its secondary, which the kernel deletes with the
        # primary unless told to promote it.
        # IPv6 keys an address by itself: one held with another prefix length goes first.
        added, removed = set_changes(old, new)
        readdressed = [c for c in removed if ":" in c and c.split("/")[0] in {a.split("/")[0] for a in added}]
        if removed:
            with inside_session(ipr), open(sysctl_path(f"net.ipv4.conf.{name}.promote_secondaries"), "w") as knob:
                knob.write("1\n")
        for op, cidrs in (("del", readdressed), ("add", added), ("del", [c for c in removed if c not in readdressed])):
            for cidr in cidrs:
                iface = ipaddress.ip_interface(cidr)
                # IPv6 without duplicate address detection: usable at once, not a second or more later.
                flags = {"flags": IFA_F_NODAD} if op == "add" and iface.version == 6 else {}
                ipr.addr(op, index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen, **flags)
    elif attr == "proxy_ndp":  # the link's IPv6 proxy neighbour entries; the proxy_ndp sysctl is the caller's
        added, removed = set_changes(old, new)
        for op, addresses in (("add", added), ("del", removed)):
            for address in addresses:
                ipr.neigh(op, dst=address, ifindex=index, flags=NTF_PROXY, family=socket.AF_INET6)
    elif attr == "up":
        ipr.link("set", index=index, state="up" if new else "down")
    else:
        raise ValueError(f"unknown link attribute {attr}")


def owner_alias(purpose: str) -> str:
    """The alias that marks a link as ours, with what it is for."""
    return f"{OWNER} {purpose}"


NETNS_ALIAS = owner_alias("netns")  # on the loopback of every namespace the netns module made


def netns_is_ours(ipr) -> bool:
    """Whether the namespace of session `ipr` was made by the netns module (its loopback's mark). From a dump of
    its links: a read session keeps it for the veth planner, which reads the pod side there next."""
    return any(link["index"] == 1 and link.get_attr("IFLA_IFALIAS") == NETNS_ALIAS for link in ipr.link("dump"))


# A link is made under a provisional name of ours and only takes its real name once marked, so a run killed
# between the two leaves a link the next run knows as its own (and deletes), never an unmarked one under a
# name users chose.
PROVISIONAL_PREFIX = "hcni-"
PROVISIONAL = re.compile(re.escape(PROVISIONAL_PREFIX) + "[0-9a-f]{10}")


def provisional_name(name: str) -> str:
    return PROVISIONAL_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:10]


def not_ours(field: str, name: str, where: str) -> ValueError:
    return ValueError(f"{field}: {name} in {where} exists and was not made by handcni.podnet; it is left alone")


def owned_links(links: list, alias: str) -> list[str]:
    """Names of the links (a link dump) that carry exactly this ownership alias."""
    return [link.get_attr("IFLA_IFNAME") for link in links if link.get_attr("IFLA_IFALIAS") == alias]


class OwnedLinkPlanner:
    """Plans a module's list of single links of one kind, each marked as ours by an alias.

    Shared by the bridge, ipip_tunnel and vxlan_fdb modules: a listed link that is not ours, or of
    another kind, fails naming `option[i].name`; `state: absent` deletes the listed links; `prune`
    deletes the owned links not listed. A subclass sets the class attributes and plans a listed link
    that is wanted present (`plan_present`), with `creation`, `replacement` and `changes`.
    """

    option = ""  # the module's list option, e.g. "bridges"
    kind = ""  # the kernel's link kind, also the noun of the actions, e.g. "bridge"
    kind_name = ""  # the kind in errors, e.g. "a bridge"
    alias = ""  # the ownership alias

    def __init__(self, module, ipr, reader=None):
        self.module = module
        self.ipr = ipr
        self.reader = reader or ipr  # what the planning reads through (Sessions.reader: its dumps are shared)

    @classmethod
    def run(cls, module, normalise: Callable[[dict, str, str], dict], public: Callable[[dict], dict]) -> None:
        """The whole module run: validate the list, plan it in one session, apply, return the list as requested."""
        with module.errors():
            wanted = cls.want(module, normalise)
        cls.run_wanted(module, wanted, public)

    @classmethod
    def want(cls, module, normalise: Callable[[dict, str, str], dict]) -> list:
        """The list, checked."""
        wanted = [normalise(item, f"{cls.option}[{i}]", module.params["state"])
                  for i, item in enumerate(module.params[cls.option])]
        validate.unique(wanted, "name", cls.option)
        return wanted

    @classmethod
    def run_wanted(cls, module, wanted: list, public: Callable[[dict], dict]) -> None:
        """Plan the checked list in one session, apply, return the list as requested."""
        with module.errors(), module.sessions() as sessions:
            netns = module.params["netns"]
            module.apply(cls(module, sessions[netns], sessions.reader(netns)).plan(wanted))
        if module.params["netns"] is None:
            module.canary["files"] = [restore.link_file(want["name"]) for want in wanted]
        module.leaves_nothing = not wanted
        module.finish(**{cls.option: [public(want) for want in wanted]})

    def create(self, want: dict) -> None:
        raise NotImplementedError

    def plan_present(self, field: str, want: dict, link, have: dict | None) -> list[Action]:
        """The actions for one listed link with `state: present`, recording its before and after."""
        raise NotImplementedError

    def delete(self, name: str) -> None:
        self.ipr.link("del", ifname=name)

    def plan(self, wanted: list[dict]) -> list[Action]:
        """The actions for links left by a create cut short, every listed link, then the owned ones `prune` removes."""
        params = self.module.params
        links = self.reader.link("dump")  # read once, before any change, for leftovers and prune
        actions = self.cut_short(links)
        for index, want in enumerate(wanted):
            field = f"{self.option}[{index}]"
            if PROVISIONAL.fullmatch(want["name"]):
                raise ValueError(f"{field}.name: {want['name']} has the form of the provisional names handcni.podnet "
                                 "gives links while it makes them; choose another name")
            link, have = self.lookup(field, want["name"])
            if params["state"] == "absent":
                actions += self.plan_absent(want["name"], have)
            else:
                actions += self.plan_present(field, want, link, have)
        if params["prune"] and params["state"] == "present":
            actions += self.prune(links, {want["name"] for want in wanted})
        return actions

    def lookup(self, field: str, name: str) -> tuple:
        """(link, its state) of `name`, (None, None) if missing; fails if the link is not ours or not of this kind."""
        link = link_by_name(self.reader, name)
        have = link_state(self.reader, link) if link is not None else None
        if have is not None and not have["owned"]:
            raise not_ours(f"{field}.name", f"link {name}", self.module.where)
        if have is not None and have["kind"] != self.kind:
            raise ValueError(f"{field}.name: {name} in {self.module.where} is a {have['kind']}, not {self.kind_name}")
        return link, have

    def plan_absent(self, name: str, have: dict | None) -> list[Action]:
        self.module.before[name] = {"name": name, "present": have is not None}
        self.module.after[name] = {"name": name, "present": False}
        return [self.deletion(name)] if have else []

    def deletion(self, name: str) -> Action:
        return Action(f"delete {self.kind} {name}", lambda: self.delete(name))

    def creation(self, want: dict, details: str = "") -> Action:
        """Create the missing link `want`; the diff shows it was not there."""
        name = want["name"]
        self.module.before[name] = {"name": name, "present": False}
        return Action(f"create {self.kind} {name}" + (f" ({details})" if details else ""), lambda: self.create(want))

    def replacement(self, want: dict, details: str) -> Action:
        """Delete and create again a link whose kind parameters the kernel cannot change in place."""
        def replace():
            self.delete(want["name"])
            self.create(want)
        return Action(f"replace {self.kind} {want['name']} ({details})", replace)

    def changes(self, name: str, have: dict, want: dict) -> list[Action]:
        """One action per link attribute (LINK_ATTRS) that `want` sets and `have` lacks."""
        return [
            Action(describe_change(name, attr, old, new),
                   lambda a=attr, o=old, v=new: apply_change(self.ipr, name, a, o, v))
            for attr, old, new in plan_link(have, want)
        ]

    def add(self, name: str, attrs: dict, **kind_args) -> None:
        """Make link `name` of this kind under its provisional name, mark it, name it, set its attributes.

        A wanted MAC is given at creation: the kernel then marks it set, not random, and udev's
        MACAddressPolicy=persistent leaves it alone (flannel-io/flannel#1155: a VTEP MAC rewritten behind
        the peers' FDB and neighbour entries)."""
        provisional = provisional_name(name)
        if attrs.get("mac"):
            kind_args = dict(kind_args, address=attrs["mac"])
        self.ipr.link("add", ifname=provisional, kind=self.kind, **kind_args)
        index = link_index(self.ipr, provisional)
        self.ipr.link("set", index=index, ifalias=self.alias)
        self.ipr.link("set", index=index, ifname=name)
        for attr, old, new in plan_link({"mac": attrs.get("mac")}, attrs):
            apply_change(self.ipr, name, attr, old, new, index)

    def cut_short(self, links: list) -> list[Action]:
        """Delete the links of this kind still under a provisional name: made by a run killed before naming them."""
        return [
            Action(f"delete {self.kind} {name} (a create cut short)", lambda name=name: self.delete(name))
            for name in (link.get_attr("IFLA_IFNAME") for link in links if link_kind(link) == self.kind)
            if PROVISIONAL.fullmatch(name)
        ]

    def prune(self, links: list, listed: set) -> list[Action]:
        actions = []
        for name in owned_links(links, self.alias):
            if name not in listed:
                self.module.forget(name)
                actions.append(self.deletion(name))
        return actions
