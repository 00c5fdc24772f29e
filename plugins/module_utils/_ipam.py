# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ipam module's body (one stable address per pod from the node's pod CIDR, and one of its IPv6 prefix), run
alone or as a part of the pods module."""
from __future__ import annotations

import ipaddress
import os
from contextlib import ExitStack
from typing import NamedTuple

from . import _validate as validate
from ._module import Action
from ._state import load_json, locked, save_json


class Family(NamedTuple):
    """One address family of the allocation: its CIDR, what is never given, the pods' field (ip, ip6) and
    the suffix of its output keys (pods/free, pods6/free6)."""
    cidr: str
    reserved: list
    key: str
    suffix: str


def blocked(network, reserved: list) -> set:
    """Addresses never given: the network's own (and IPv4's broadcast) and the reserved ones."""
    found = {network.network_address, network.broadcast_address} if network.version == 4 else {
        network.network_address}
    return found | {ipaddress.ip_address(ip) for ip in reserved}


def allocate(cidr: str, pods: list, reserved: list, recorded: dict, key: str = "ip") -> dict:
    """{pod: ip} for every pod: fixed (its `key`: ip or ip6) first, then recorded, then the lowest free.
    Pure; raises ValueError. Lazy over the range, so an IPv6 /64 costs what an IPv4 /24 does."""
    network = ipaddress.ip_network(cidr)
    unusable = blocked(network, reserved)
    taken: dict = {}
    result: dict = {}
    for index, pod in enumerate(pods):  # fixed addresses first, so a recorded one never steals them
        if pod.get(key):
            ip = ipaddress.ip_address(pod[key])
            if ip not in network or ip in unusable:
                raise ValueError(f"pods[{index}].{key}: {ip} is not a usable address of {cidr} "
                                 "(outside it, reserved, or leased by another allocator)")
            if ip in taken:
                raise ValueError(f"pods[{index}].{key}: {ip} is also given to pod {taken[ip]}")
            taken[ip] = pod["name"]
            result[pod["name"]] = str(ip)
    for pod in pods:
        old = recorded.get(pod["name"])
        if pod["name"] not in result and old and ipaddress.ip_address(old) in network:
            ip = ipaddress.ip_address(old)
            if ip not in taken and ip not in unusable:
                taken[ip] = pod["name"]
                result[pod["name"]] = old
    free = (ip for ip in network if ip not in unusable and ip not in taken)  # a generator: never the whole range
    field = "" if key == "ip" else f".{key}"  # IPv4's message is unchanged: pods[5]: no free address ...
    for index, pod in enumerate(pods):
        if pod["name"] not in result:
            ip = next(free, None)
            if ip is None:
                raise ValueError(f"pods[{index}]{field}: no free address left in {cidr} for pod {pod['name']} "
                                 f"({len(pods)} pods, {len(reserved)} reserved)")
            taken[ip] = pod["name"]
            result[pod["name"]] = str(ip)
    return result


def free_count(cidr: str, reserved: list, allocated) -> int:
    """How many addresses of `cidr` are neither blocked nor allocated: counted, never enumerated."""
    network = ipaddress.ip_network(cidr)
    used = {ip for ip in blocked(network, reserved) if ip in network}
    return network.num_addresses - len(used | {ipaddress.ip_address(ip) for ip in allocated})


def leased(directories: list, cidr: str) -> list:
    """Addresses of `cidr` that files in these directories are named after (host-local's leases)."""
    network = ipaddress.ip_network(cidr)
    found = []
    for directory in directories:
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            try:
                ip = ipaddress.ip_address(entry.name)
            except ValueError:
                continue  # host-local's last_reserved_ip.0, lock
            if ip in network:
                found.append(str(ip))
    return found


def record_path(state_dir: str, cidr: str) -> str:
    """The record of one CIDR, '/' and ':' as '_': 10.244.1.0_24.json, fd00_10_244_1___64.json."""
    return os.path.join(state_dir, cidr.replace("/", "_").replace(":", "_") + ".json")


def changes(recorded: dict, result: dict) -> list:
    """The actions from one family's record to its new allocation."""
    actions = [f"release {ip} of {name}" for name, ip in sorted(recorded.items()) if result.get(name) != ip]
    return actions + [f"allocate {ip} to {name}" for name, ip in sorted(result.items()) if recorded.get(name) != ip]


def stale_records(state_dir: str, current: list) -> list:
    """Records of any CIDR but the current ones: the node's pod CIDRs changed, they hold no pod any more."""
    if not os.path.isdir(state_dir):
        return []
    return sorted(entry.path for entry in os.scandir(state_dir)
                  if entry.name.endswith(".json") and entry.path not in current)


def checked_cidr6(value, cidr: str):
    """The IPv6 pod prefix, or None (omitted or empty: one family only); `cidr` must then be the other family."""
    if not value:
        return None
    cidr6 = validate.network(value, "cidr6")
    if ipaddress.ip_network(cidr6).version != 6:
        raise ValueError(f"cidr6: {value!r} is not an IPv6 network")
    if ipaddress.ip_network(cidr).version == 6:
        raise ValueError(f"cidr: {cidr!r} is IPv6 like cidr6 {cidr6!r}; with cidr6, cidr must be the IPv4 pod CIDR")
    return cidr6


def families(params: dict) -> list:
    """The checked input as its families: IPv4 (or the one of `cidr`), then IPv6 with cidr6."""
    cidr = validate.network(params["cidr"], "cidr")
    cidr6 = checked_cidr6(params["cidr6"], cidr)
    for index, pod in enumerate(params["pods"]):
        validate.netns(pod["name"], f"pods[{index}].name")
        for key in ("ip", "ip6"):
            if pod.get(key):
                validate.address(pod[key], f"pods[{index}].{key}")
        if pod.get("ip6") and not cidr6:
            raise ValueError(f"pods[{index}].ip6: {pod['ip6']} is given but cidr6 is not (IPv4 only)")
    validate.unique(params["pods"], "name", "pods")
    found = []
    for value, suffix in ((cidr, ""), (cidr6, "6")):  # reserved, ip; reserved6, ip6
        reserved = [validate.address(ip, f"reserved{suffix}[{i}]") for i, ip in enumerate(params[f"reserved{suffix}"])]
        if value:
            found.append(Family(value, reserved + leased(params["leases_dirs"], value), f"ip{suffix}", suffix))
    return found


COMMON = ()
NETLINK = False  # files only: no pyroute2 needed
OPTIONS = dict(
    cidr=dict(type="str", required=True),
    cidr6=dict(type="str"),
    pods=dict(type="list", elements="dict", required=True,
              options=dict(name=dict(type="str", required=True), ip=dict(type="str"), ip6=dict(type="str"))),
    reserved=dict(type="list", elements="str", default=[]),
    reserved6=dict(type="list", elements="str", default=[]),
    leases_dirs=dict(type="list", elements="path", default=[]),
    state_dir=dict(type="path", default="/var/lib/handcni/ipam"),
)


def want(module) -> list:
    return families(module.params)


def run(module, wanted: list) -> None:
    params = module.params
    with module.errors():
        try:
            paths = {f.key: record_path(params["state_dir"], f.cidr) for f in wanted}
            with ExitStack() as held:
                for path in sorted(paths.values()):  # one order, so two runs never each hold what the other waits for
                    held.enter_context(locked(path, create=not module.check_mode))
                recorded = {f.key: load_json(paths[f.key]).get("pods", {}) for f in wanted}
                result = {f.key: allocate(f.cidr, params["pods"], f.reserved, recorded[f.key], f.key) for f in wanted}
                lines = [action for f in wanted for action in changes(recorded[f.key], result[f.key])]
                stale = stale_records(params["state_dir"], list(paths.values()))
                lines += [f"forget {os.path.basename(p)} of an earlier pod CIDR" for p in stale]

                def save() -> None:
                    for f in wanted:
                        save_json(paths[f.key], {"cidr": f.cidr, "pods": result[f.key]})
                    for old in stale:
                        os.unlink(old)
                        if os.path.exists(f"{old}.lock"):
                            os.unlink(f"{old}.lock")
                # one write of the records, with the last line
                module.apply([Action(line, lambda: None) for line in lines[:-1]] + [Action(line, save) for line in lines[-1:]])
        except OSError as err:  # the records' files: said as they are, not as a kernel error
            raise ValueError(str(err)) from None
    module.before = {f"pods{f.suffix}": recorded[f.key] for f in wanted}
    module.after = {f"pods{f.suffix}": result[f.key] for f in wanted}
    if stale:
        module.before["earlier_records"] = [os.path.basename(p) for p in stale]
    module.finish(
        pods=[dict(name=pod["name"], **{f.key: result[f.key][pod["name"]] for f in wanted}) for pod in params["pods"]],
        **{f"free{f.suffix}": free_count(f.cidr, f.reserved, result[f.key].values()) for f in wanted},
    )
