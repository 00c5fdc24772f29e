"""Inside user-mode Linux: run the commands the host asks for, through a directory both share.

The host (tests/uml/guest.py) drops REQ.json files {argv, stdin} into the directory; this agent claims
each (renames it), runs it with its stdin, and writes REQ.res {rc, stdout, stderr} (base64) back,
atomically. A request with argv ["halt"] ends the agent (and with it, UML). Several requests run at
once, like Ansible's forks. Stdlib only: it runs on the guest's system Python.
"""
import base64
import json
import os
import subprocess
import sys
import threading
import time

RPC = sys.argv[1]
POLL = 0.02


def answer(name: str, result: dict) -> None:
    tmp = os.path.join(RPC, f"{name}.res.tmp")
    with open(tmp, "w") as out:
        json.dump(result, out)
        out.flush()
        os.fsync(out.fileno())
    os.rename(tmp, os.path.join(RPC, f"{name}.res"))


def serve(name: str, path: str) -> None:
    try:
        with open(path) as handle:
            request = json.load(handle)
        os.unlink(path)
        done = subprocess.run(request["argv"], input=base64.b64decode(request.get("stdin", "")),
                              capture_output=True, cwd=request.get("cwd") or "/", check=False)
        result = {"rc": done.returncode, "stdout": base64.b64encode(done.stdout).decode(),
                  "stderr": base64.b64encode(done.stderr).decode()}
    except (OSError, ValueError, KeyError) as err:
        result = {"rc": 127, "stdout": "", "stderr": base64.b64encode(f"uml agent: {err}\n".encode()).decode()}
    answer(name, result)


def main() -> None:
    open(os.path.join(RPC, "ready"), "w").close()
    while True:
        for entry in sorted(os.listdir(RPC)):
            if not entry.endswith(".req"):
                continue
            name = entry[:-len(".req")]
            claimed = os.path.join(RPC, f"{name}.run")
            try:
                os.rename(os.path.join(RPC, entry), claimed)
            except OSError:
                continue
            with open(claimed) as handle:
                if json.load(handle).get("argv") == ["halt"]:
                    os.unlink(claimed)
                    answer(name, {"rc": 0, "stdout": "", "stderr": ""})
                    return
            threading.Thread(target=serve, args=(name, claimed), daemon=True).start()
        time.sleep(POLL)


if __name__ == "__main__":
    main()
