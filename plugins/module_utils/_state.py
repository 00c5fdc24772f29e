# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's state directory: small JSON records, written atomically, under a lock. Private."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import time
from contextlib import contextmanager

STATE_DIR = "/var/lib/handcni"


def load_json(path: str) -> dict:
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except ValueError:
        raise ValueError(f"{path} is not valid JSON; fix or remove it") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object; fix or remove it")
    return data


def read_text(path: str) -> str | None:
    """The file's text, or None if it does not exist."""
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_text(path: str, text: str, mode: int = 0o600, uid: int = -1, gid: int = -1) -> None:
    """Replace the file atomically (write, fsync, rename), its mode and owner set before any text is in it;
    make its directory (0700) if needed."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".handcni-", dir=directory)
    try:
        os.fchmod(handle, mode)
        os.fchown(handle, uid, gid)
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_json(path: str, data: dict, compact: bool = False) -> None:
    """Replace the file atomically, readable by root only; `compact`: on one line (a large record, such as
    10,000 services, is written several times faster without indentation)."""
    text = json.dumps(data, separators=(",", ":"), sort_keys=True) if compact else json.dumps(data, indent=1, sort_keys=True)
    write_text(path, text + "\n")


@contextmanager
def locked(path: str, timeout: float = 30.0, create: bool = True):
    """Hold an exclusive lock on `path`.lock; say who to blame if it is held too long.

    With create=False (check mode) nothing is written: no lock file yet means nothing to wait for.
    """
    directory = os.path.dirname(path) or "."
    if not create and not os.path.exists(f"{path}.lock"):
        yield
        return
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    raise ValueError(f"{path}.lock is held by another run for over {timeout:.0f}s; "
                                     "is another play running against this node?") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
