# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nat_rule's record of its last run: what each backend holds of ours, so that a run reads no rules while the
kernel holds exactly what that run left, and a run changing a few services' endpoints plans those alone. Private.

The kernel counts every nf_tables transaction of a network namespace (_netlink.ruleset_mark). After a run whose
transactions were the only ones since it read that count, the record keeps the new count with what each backend
holds; while the count is the recorded one, not one rule of the namespace has changed. Any other change (a rule
deleted by hand, `nft flush ruleset`, someone else's table, a reboot) means a full read and repair.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os

from . import _firewall as firewall
from . import _services as services
from ._netlink import ruleset_mark
from ._state import STATE_DIR, load_json, save_json


def applied_path(netns: str | None, kinds: tuple) -> str:
    """The record of the last run managing these kinds that left the namespace's rules as it wanted them (the
    egress and services roles each have theirs)."""
    return f"{STATE_DIR}/nat_rule.{netns or '_host'}.{'+'.join(kinds)}.applied.json"


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def service_key(name, cluster_ip) -> str:
    """A service entry's name and family (a dual-stack service is an entry per family), as Service.key."""
    return f"{name}/{6 if ':' in str(cluster_ip) else 4}"


def run_digests(params: dict) -> tuple:
    """(the run's digest, its digest but for the services, {service key: digest} of each service as given, or
    None when they are not uniquely named dicts: the full check says what is wrong). A service's digest is of
    its repr, three times faster than of canonical JSON: the same arguments give the same repr, and a repr
    that differs for equal arguments costs only a service planned again."""
    rest = digest({key: value for key, value in params.items() if key != "services"})
    given = {}
    for item in params["services"] or []:
        if not isinstance(item, dict):
            given = None
            break
        given[service_key(item.get("name"), item.get("cluster_ip"))] = \
            hashlib.blake2b(repr(item).encode(), digest_size=8).hexdigest()
    if given is not None and len(given) != len(params["services"] or []):
        given = None
    whole = hashlib.sha256((rest + "".join(f"{key}={mark};" for key, mark in given.items())).encode()).hexdigest() \
        if given is not None else digest([rest, params["services"]])
    return whole, rest, given


def last_run(path: str, mark: list | None) -> dict | None:
    """The record of the last run if not one nf_tables rule of the namespace has changed since (the ruleset mark
    is the one it recorded): what each backend holds of ours is then exactly what that run left, and needs no
    reading (kube-proxy's sync without listing the ruleset); else None."""
    if mark is None:
        return None
    try:
        record = load_json(path)
    except (OSError, ValueError):
        return None
    return record if record.get("mark") == mark else None


def keep_record(path: str, mark: list | None, transactions: int, state: str, netns: str | None, entry: dict) -> None:
    """After a run: record `entry` (digests, `held`: what each backend holds, {name: NatSet}, result, canary) when
    the ruleset changed by exactly our transactions since `mark` was read (no one else's change slipped in
    between, unseen) and `held` says all of it; else drop the record, so that the next run reads everything."""
    now = ruleset_mark(netns) if mark and entry["held"] is not None else None
    if now is not None and state == "present" and now == mark[:2] + [mark[2] + transactions]:
        save_json(path, dict(entry, mark=now), compact=True)
        return
    # removing: the records of every kind of the namespace go (teardown leaves none); else this one
    for stale in glob.glob(applied_path(netns, ("*",))) if state == "absent" else [path]:
        if os.path.exists(stale):
            os.unlink(stale)


def endpoint_changes(last: dict, params: dict, rest: str, given: dict | None, backend: str) -> tuple | None:
    """(as held, as wanted): the services whose endpoints alone changed since the recorded run, when nothing
    else did. Planned alone, they give the whole change, their own chains (kube-proxy's partial sync), at the
    cost of what changed rather than of what exists. None: plan the whole set."""
    before = last.get("given") or {}
    if not given or last.get("rest") != rest or before.keys() != given.keys():
        return None
    keys = {key for key, mark in given.items() if before[key] != mark}
    names = {key.rsplit("/", 1)[0] for key in keys}  # a name is cheaper to look up than a key is to make
    rows = {service_key(row[0], row[1]): row for row in last["held"][backend][1] if row[0] in names}
    if not keys or not keys <= rows.keys():
        return None
    items = [item for item in params["services"]
             if item.get("name") in names and service_key(item.get("name"), item.get("cluster_ip")) in keys]
    try:
        wanted = services.normalise_services(items)
    except ValueError:
        return None  # the whole set's check names the entry by its place in the list
    held = {s.key: s for s in firewall.natset_from_json([[], [rows[key] for key in keys], [], []]).services}
    if {s.key for s in wanted} != held.keys() or not all(services.endpoints_alone(held[s.key], s) for s in wanted):
        return None
    return (tuple(sorted(held.values(), key=services.service_order)),
            tuple(sorted(wanted, key=services.service_order)))


def held_after(last: dict, backend: str, wanted: tuple) -> dict:
    """The record's `held` with these services as they are now wanted (in the JSON form of a NatSet)."""
    masquerade, rows, addresses, cidrs = last["held"][backend]
    changed = {service_key(s.name, s.cluster_ip): s for s in wanted}
    names = {s.name for s in wanted}
    rows = [changed.get(service_key(row[0], row[1]), row) if row[0] in names else row for row in rows]
    return dict(last["held"], **{backend: [masquerade, rows, addresses, cidrs]})
