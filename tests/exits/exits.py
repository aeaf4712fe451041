#!/usr/bin/env python3
"""Runs many Python and Node processes that exit with polyio work pending, in every way a
process ends (main returns, sys.exit / process.exit, an uncaught exception or rejection,
SIGTERM, SIGINT), and counts crashes and hangs. Each child is child.py or child.js.

    exits.py [--python N] [--node N] [--jobs J] [--timeout S] [--json PATH]

A crash: an exit status the mode does not give (a signal it did not send, such as SIGSEGV or
SIGABRT), or "panicked" / "Fatal Python error" / "FATAL ERROR" / "Segmentation fault" in
its output, or no "work pending" line (its setup failed). A hang: still running after S seconds (default 20). Exit status 0 when there
were none.
"""

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Set, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# The exit statuses each mode may end with (negative: killed by that signal).
PY_MODES: Dict[str, Set[int]] = {
    "fall": {0},
    "noclose": {0},
    "exit": {3},
    "raise": {1},
    "sigterm": {-signal.SIGTERM},
    "sigint": {-signal.SIGINT, 1, 130},
}
NODE_MODES: Dict[str, Set[int]] = {
    "fall": {0},
    "exit": {3},
    "raise": {1},
    "reject": {1},
    "sigterm": {-signal.SIGTERM},
    "sigint": {-signal.SIGINT},
}
CRASH_TEXT = ("panicked", "Fatal Python error", "FATAL ERROR", "Segmentation fault", "core dumped")


def default_signals() -> None:
    """In the child before exec: SIGINT and SIGTERM as a fresh process has them. Started in
    the background by a shell without job control, this script inherits SIGINT ignored, and
    so would its children: Python then installs no KeyboardInterrupt handler, asyncio.run no
    handler of its own, and the sigint mode's own signal does nothing (its child exits 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_one(cmd: List[str], expected: Set[int], timeout: float, env: Dict[str, str]) -> Tuple[str, str]:
    """Runs one child; returns (outcome, detail) with outcome ok, crash or hang."""
    p = subprocess.Popen(
        cmd,
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=default_signals,
    )
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return "hang", " ".join(cmd)
    text = out.decode(errors="replace")
    if "work pending" not in text:
        return "crash", f"{' '.join(cmd)}: never got its work started (status {p.returncode})\n{text[-2000:]}"
    if p.returncode not in expected or any(t in text for t in CRASH_TEXT):
        return "crash", f"{' '.join(cmd)}: status {p.returncode}\n{text[-2000:]}"
    return "ok", ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", type=int, default=60, help="Python processes (default 60)")
    ap.add_argument("--node", type=int, default=60, help="Node processes (default 60)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--python-bin", default=str(ROOT / ".venv" / "bin" / "python"))
    ap.add_argument("--node-bin", default=os.environ.get("NODE", "node"))
    ap.add_argument("--json", help="write the counts here")
    args = ap.parse_args()

    env = dict(os.environ)
    # Lookups wait on the test resolver (abandoned at exit), never on DNS.
    env["POLYIO_TEST_LOOKUP_DELAY_MS"] = "600000"
    jobs: List[Tuple[str, str, List[str], Set[int]]] = []
    py_cycle = itertools.cycle([(m, lp) for m in PY_MODES for lp in ("asyncio", "uvloop")])
    for i in range(args.python):
        mode, loop = next(py_cycle)
        cmd = [args.python_bin, "-X", "dev", "child.py", mode, loop, str(i)]
        jobs.append(("python", f"{mode}/{loop}", cmd, PY_MODES[mode]))
    node_cycle = itertools.cycle(NODE_MODES)
    for i in range(args.node):
        mode = next(node_cycle)
        jobs.append(("node", mode, [args.node_bin, "child.js", mode, str(i)], NODE_MODES[mode]))

    counts: Dict[str, Dict[str, Dict[str, int]]] = {}
    failures: List[str] = []
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [(lang, mode, pool.submit(run_one, cmd, exp, args.timeout, env)) for lang, mode, cmd, exp in jobs]
        for lang, mode, fut in futures:
            outcome, detail = fut.result()
            c = counts.setdefault(lang, {}).setdefault(mode, {"runs": 0, "ok": 0, "crash": 0, "hang": 0})
            c["runs"] += 1
            c[outcome] += 1
            if outcome != "ok":
                failures.append(f"[{outcome}] {detail}")
    secs = time.monotonic() - start

    print(f"{'language':8} {'mode':16} {'runs':>6} {'ok':>6} {'crash':>6} {'hang':>6}")
    for lang, modes in counts.items():
        for mode, c in modes.items():
            print(f"{lang:8} {mode:16} {c['runs']:6} {c['ok']:6} {c['crash']:6} {c['hang']:6}")
    total = {k: sum(c[k] for m in counts.values() for c in m.values()) for k in ("runs", "ok", "crash", "hang")}
    print(f"total: {total['runs']} processes in {secs:.0f} s, {total['crash']} crashes, {total['hang']} hangs")
    for f in failures[:10]:
        print(f, file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"counts": counts, "total": total, "secs": secs}, indent=2))
    return 0 if total["crash"] == 0 and total["hang"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
