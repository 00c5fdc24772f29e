"""Run a command inside the user-mode Linux guest of tests/uml/run, as if it ran here.

  python3 tests/uml/guest.py [--cwd DIR] -- ARGV...   stdin goes in; stdout, stderr and the exit code come back

The request travels through the directory the guest's agent (tests/uml/agent.py) watches:
HANDCNI_UML_RPC (default build/uml/rpc). `python3 tests/uml/guest.py halt` stops the agent and the guest.
"""
import base64
import json
import os
import sys
import time
import uuid
from pathlib import Path

RPC = Path(os.environ.get("HANDCNI_UML_RPC", Path(__file__).resolve().parents[2] / "build/uml/rpc"))
TIMEOUT = float(os.environ.get("HANDCNI_UML_COMMAND_TIMEOUT", "300"))


def main() -> int:
    args = sys.argv[1:]
    cwd = None
    if args[:1] == ["--cwd"]:
        cwd, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    data = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    name = uuid.uuid4().hex
    tmp = RPC / f"{name}.tmp"
    tmp.write_text(json.dumps({"argv": args, "stdin": base64.b64encode(data).decode(), "cwd": cwd}))
    tmp.rename(RPC / f"{name}.req")
    result_path = RPC / f"{name}.res"
    deadline = time.monotonic() + TIMEOUT
    delay = 0.005
    while not result_path.exists():
        if time.monotonic() > deadline:
            sys.stderr.write(f"uml guest: no answer to {args[0]} within {TIMEOUT:.0f}s\n")
            return 124
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)
    result = json.loads(result_path.read_text())
    result_path.unlink()
    sys.stdout.buffer.write(base64.b64decode(result["stdout"]))
    sys.stderr.buffer.write(base64.b64decode(result["stderr"]))
    return result["rc"]


if __name__ == "__main__":
    sys.exit(main())
