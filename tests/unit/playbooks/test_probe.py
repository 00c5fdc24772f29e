"""Unit test for playbooks/files/probe.py, verify.yml's runner of one node's probes in one command."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).resolve().parents[3] / "playbooks/files/probe.py"


def test_results_in_order_in_the_shape_of_registered_loop_results():
    probes = [{"kind": "a", "argv": ["sh", "-c", "echo out; echo err >&2"]}, {"kind": "b", "argv": ["false"]},
              {"kind": "c", "argv": ["/nonexistent/handcni-probe"]}]
    probes += [{"kind": f"n{i}", "argv": ["sh", "-c", f"echo {i}"]} for i in range(12)]
    done = subprocess.run([sys.executable, "-c", PROBE.read_text(), json.dumps(probes)],
                          capture_output=True, text=True, check=True)
    results = json.loads(done.stdout)
    assert [r["item"] for r in results] == probes
    assert (results[0]["rc"], results[0]["stdout"], results[0]["stderr"]) == (0, "out\n", "err\n")
    assert results[1]["rc"] == 1
    assert results[2]["rc"] == -1 and "handcni-probe" in results[2]["stderr"]
    assert [r["stdout"] for r in results[3:]] == [f"{i}\n" for i in range(12)]
