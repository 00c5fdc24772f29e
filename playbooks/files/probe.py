# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run all of one node's verify.yml probes in one go, a few at a time.

Argument: a JSON list of probes, each with an `argv`. Prints a JSON list of {item, rc, stdout,
stderr} in the same order, the shape of a registered loop's results. One command per node
instead of one per probe: a probe costs the ping, not a module start.
"""
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

PARALLEL = 8
TIMEOUT = 30


def run(probe: dict) -> dict:
    try:
        done = subprocess.run(probe["argv"], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"item": probe, "rc": -1, "stdout": "", "stderr": str(err)}
    return {"item": probe, "rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def main() -> None:
    probes = json.loads(sys.argv[1])
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        print(json.dumps(list(pool.map(run, probes))))


if __name__ == "__main__":
    main()
