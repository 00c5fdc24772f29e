# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node-side restore (issue 24): the last converged state as records, and the watcher that re-applies it.

A module run with `restore: NAME` (not in check mode) saves RECORDS/NAME.json: the module and the arguments
it ran with (without `restore`), the payload it ran from (LIB/MODULE.zip: the module, our module_utils and
Ansible's, as Ansible shipped them) and a canary: cheap facts that hold while what it made is intact (files
such as /run/netns/POD, values such as a sysctl, main-table routes, commands that exit 0, and processes
named by a PID file). `state:
absent` drops the record. The services role's pod servers save a record of the same shape with an argv.

Run as a script (`python3 _restore.py watch`, the unit handcni-podnet-restore.service, installed by the
node_prep role), it checks every record's canary every few seconds, and when one fails re-runs the records
in name order from that one on (a record needs only those before it; `python3 -m MODULE RECORD` from its
payload): the same code and arguments as the converge,
so there is no second implementation. What was missing and what each record did go to the journal.
A module run and a record's re-run hold the same lock, so a restore never interleaves with a converge's
write. Only the Python standard library here: the node runs this file as it is.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager

RECORDS = "/var/lib/handcni/restore"
LIB = os.path.join(RECORDS, "lib")
LOCK = "/var/lib/handcni/restore.lock"
INTERVAL = 2.0   # seconds between two canary checks
BACKOFF = 60.0   # at most this long between two restores that did not make the canary pass
AUTHOR = "sitecustomize.py"  # the one member AnsiballZ adds per run (a path); not part of the code


def empty_canary() -> dict:
    return {"files": [], "values": {}, "routes": [], "commands": []}


def link_file(name: str) -> str:
    return f"/sys/class/net/{name}"


# --- the module side ---------------------------------------------------------------------------------

@contextmanager
def locked():
    """Hold the restore lock: a converge's module run and a restore's re-run of a record exclude each other."""
    os.makedirs(os.path.dirname(LOCK), mode=0o700, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record_path(name: str) -> str:
    return os.path.join(RECORDS, f"{name}.json")


def _code(path: str) -> list | None:
    """The members of a payload zip and their CRCs (what the code is, whenever it was zipped)."""
    try:
        with zipfile.ZipFile(path) as payload:
            return sorted((i.filename, i.CRC) for i in payload.infolist() if i.filename != AUTHOR)
    except (OSError, zipfile.BadZipFile):
        return None


def _copy_payload(source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".handcni-", dir=os.path.dirname(target))
    os.close(handle)
    try:
        with zipfile.ZipFile(source) as old, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as new:
            for info in old.infolist():
                if info.filename != AUTHOR:
                    new.writestr(info, old.read(info))
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def save(name: str, fqn: str, payload: str, args: dict, canary: dict, check: bool) -> list:
    """Make the record NAME hold this run; the descriptions of what changed (none when it did already)."""
    module = fqn.rsplit(".", 1)[-1]
    lib = os.path.join(LIB, f"{module}.zip")
    # _ansible_no_log: the re-run does not log its arguments to the journal; the watcher says what it did
    record = {"module": fqn, "lib": lib, "canary": canary, "ANSIBLE_MODULE_ARGS": dict(args, _ansible_no_log=True)}
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    changed = []
    if _code(lib) != _code(payload):
        changed.append(f"save the restore payload {lib}")
        if not check:
            _copy_payload(payload, lib)
    try:
        with open(record_path(name)) as handle:
            same = handle.read() == text
    except OSError:
        same = False
    if not same:
        changed.append(f"save the restore record {record_path(name)}")
        if not check:
            # the module side only: the node runs this file alone, without the rest of module_utils
            from ._state import write_text
            write_text(record_path(name), text)
    return changed


def drop(name: str, check: bool) -> list:
    if not os.path.exists(record_path(name)):
        return []
    if not check:
        os.unlink(record_path(name))
    return [f"remove the restore record {record_path(name)}"]


# --- the node side: the watcher ----------------------------------------------------------------------

def records() -> list:
    """(name, record) in name order; a record that cannot be read is left out and said."""
    found = []
    for entry in sorted(os.listdir(RECORDS)) if os.path.isdir(RECORDS) else []:
        if entry.endswith(".json"):
            try:
                with open(os.path.join(RECORDS, entry)) as handle:
                    found.append((entry[:-5], json.load(handle)))
            except (OSError, ValueError) as err:
                say(f"{entry}: cannot read the record: {err}")
    return found


def runs(pidfile: str, argv: list) -> bool:
    """The process whose PID is the first line of the file still runs argv (not a reused PID)."""
    try:
        with open(pidfile) as handle:
            pid = int(handle.readline())
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().split(b"\0")[:-1] == [part.encode() for part in argv]
    except (OSError, ValueError):
        return False


def main_routes() -> set:
    """The destinations (CIDR) of the IPv4 main table, from /proc/net/route."""
    found = set()
    with open("/proc/net/route") as handle:
        for line in handle.readlines()[1:]:
            fields = line.split()
            dst, mask = int(fields[1], 16), int(fields[7], 16)
            found.add("{}/{}".format(".".join(str(b) for b in dst.to_bytes(4, "little")), bin(mask).count("1")))
    return found


def missing(canary: dict, routes: set) -> list:
    """What of the canary does not hold now."""
    gone = [path for path in canary.get("files", []) if not os.path.exists(path)]
    for path, value in canary.get("values", {}).items():
        try:
            with open(path) as handle:
                current = handle.read().strip()
        except OSError:
            current = None
        if current != str(value):
            gone.append(f"{path} = {value} (is {current})")
    gone += [f"route {dst}" for dst in canary.get("routes", []) if dst not in routes]
    gone += [f"process {' '.join(argv)}" for path, argv in canary.get("processes", {}).items() if not runs(path, argv)]
    for argv in canary.get("commands", []):
        if subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False).returncode != 0:
            gone.append(" ".join(argv) + " fails")
    return gone


def check(found: list) -> list:
    """(record name, what is missing) for every check of every record that fails now."""
    routes = main_routes()
    return [(name, item) for name, record in found for item in missing(record.get("canary", {}), routes)]


def said(gone: list) -> str:
    return ", ".join(f"{name}: {item}" for name, item in gone)


def rerun(name: str, record: dict) -> tuple:
    """Re-run one record: (whether it failed, a line saying what it did)."""
    if "argv" in record:
        argv, stdin, env = record["argv"], json.dumps(record.get("input", {})), None
    else:
        argv, stdin = [sys.executable, "-m", record["module"], record_path(name)], ""
        env = dict(os.environ, PYTHONPATH=record["lib"])
    with locked():
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, check=False)
    result = {}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                pass
            break
    if done.returncode != 0 or result.get("failed"):
        reason = result.get("msg") or (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return True, f"{name}: failed: {reason}"
    actions = result.get("actions") or result.get("started") or []
    return False, f"{name}: " + ("; ".join(actions) if actions else "nothing to do")


class Stop:
    """SIGTERM (systemctl stop, teardown) ends the watcher at once, or after the record being re-run."""
    busy = False
    asked = False

    @classmethod
    def handle(cls, *_args) -> None:
        if not cls.busy:
            raise SystemExit(0)
        cls.asked = True


def restore(found: list) -> list:
    """Re-run every record, saying what each did; the names of those that failed."""
    failed = []
    for name, record in found:
        Stop.busy = True
        failure, line = rerun(name, record)
        Stop.busy = False
        if Stop.asked:
            raise SystemExit(0)
        say(line)
        if failure:
            failed.append(name)
    return failed


def say(line: str) -> None:
    print(line, flush=True)  # pylint: disable=ansible-bad-function  # the watcher's journal, not a module


def watch(interval: float) -> None:
    """Check the canaries every `interval` seconds; when one fails, re-run the records from that one on."""
    signal.signal(signal.SIGTERM, Stop.handle)
    say(f"watching {RECORDS} every {interval:g}s")
    wait, failed = interval, []
    while True:
        found = records()
        gone = check(found)
        if gone or failed:  # failed: records the last restore could not re-run, whatever the checks say
            started = time.monotonic()
            if gone:
                say("missing: " + said(gone))
            # from the first record missing something or failed: a record needs only those before it
            broken = {name for name, _item in gone} | set(failed)
            first = next((i for i, (name, _record) in enumerate(found) if name in broken), len(found))
            failed = restore(found[first:])
            still = [(name, "failed") for name in failed] + check(records())
            took = time.monotonic() - started
            if still:
                wait = min(BACKOFF, wait * 2)
                say(f"not restored after {took:.1f}s: {said(still)}; next try in {wait:g}s")
            else:
                wait = interval
                say(f"restored in {took:.1f}s")
        time.sleep(wait)


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "watch"
    if command == "watch":
        watch(float(sys.argv[2]) if len(sys.argv) > 2 else INTERVAL)
    elif command == "check":  # one canary check: exit 1 and say what is missing
        gone = check(records())
        for name, item in gone:
            say(f"{name}: {item}")
        sys.exit(1 if gone else 0)  # pylint: disable=ansible-bad-function
    elif command == "restore":  # re-run every record now
        restore(records())
    else:
        sys.exit(f"usage: {sys.argv[0]} [watch [SECONDS] | check | restore]")  # pylint: disable=ansible-bad-function


if __name__ == "__main__":
    main()
