"""CPython's own asyncio tests (the installed Python's ``test.test_asyncio``) on asyncio's
default loop, on uvloop, on polyio's loop (polyio's policy: uvloop's loop with polyio's
networking) and on polyio's networking over asyncio's loop; prints the counts of each and
fails if a test that passes on a base loop fails on polyio's over it without being listed
in expected_failures.txt (with the reason).

    python3 tests/conformance/run.py [--short] [MODE ...]

``--short`` runs only test_streams and test_server on polyio-over-asyncio (for make test).
``--reuse DIR`` keeps each mode's outcomes in DIR/MODE.json and takes a mode's from there
when the file exists (to compare runs made separately).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = ["test_events", "test_streams", "test_server", "test_base_events", "test_sock_lowlevel"]
SHORT_MODULES = ["test_streams", "test_server"]
MODES = ["default", "uvloop", "polyio", "polyio-asyncio"]
# The base loop each polyio mode runs over, whose passes it must keep.
BASE_OF = {"polyio": "uvloop", "polyio-asyncio": "default"}


def expected_failures() -> dict[tuple[str, str], str]:
    """(mode, test id) -> reason, from expected_failures.txt (`mode test-id  # reason`)."""
    out: dict[tuple[str, str], str] = {}
    with open(os.path.join(HERE, "expected_failures.txt")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            head, _, reason = line.partition("#")
            mode, test = head.split()
            out[(mode, test)] = reason.strip()
    return out


def run_mode(mode: str, modules: list[str], deselect: list[str]) -> dict[str, str]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = dict(os.environ, POLYIO_CONFORMANCE_LOOP=mode, POLYIO_CONFORMANCE_OUT=out.name)
        env["POLYIO_CONFORMANCE_SKIP"] = " ".join(deselect)
        env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [
            sys.executable, "-m", "pytest", "-p", "polyio_conformance", "-p", "no:cacheprovider",
            "-o", "addopts=", "--rootdir", HERE, "-q", "--tb=native", "--timeout", "20",
            "-W", "ignore::DeprecationWarning", "-o", "faulthandler_timeout=60",
        ]  # fmt: skip
        cmd += ["--pyargs"] + [f"test.test_asyncio.{m}" for m in modules]
        log = os.path.join(tempfile.gettempdir(), f"polyio-conformance-{mode}.log")
        with open(log, "w") as f:
            subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=HERE)
        with open(out.name) as f:
            text = f.read()
        if not text:
            sys.exit(f"conformance: the {mode} run recorded nothing; see {log}")
        outcomes: dict[str, str] = json.loads(text)
        print(f"conformance: {mode}: log in {log}", flush=True)
        return outcomes


def main() -> int:
    args = sys.argv[1:]
    short = "--short" in args
    reuse = None
    if "--reuse" in args:
        i = args.index("--reuse")
        reuse = args[i + 1]
        del args[i : i + 2]
        os.makedirs(reuse, exist_ok=True)
    try:
        import test.test_asyncio.test_events  # noqa: F401
    except ImportError as e:
        # Debian's python3 ships it apart, as libpython3.X-testsuite.
        print(f"conformance: this Python has no test.test_asyncio ({e}); install Debian's "
              f"libpython3.{sys.version_info[1]}-testsuite (or a CPython with its test package)")
        return 0 if short else 1
    modes = [a for a in args if a != "--short"] or (["polyio-asyncio"] if short else MODES)
    modules = SHORT_MODULES if short else MODULES
    expected = expected_failures()
    results: dict[str, dict[str, str]] = {}
    for mode in modes:
        # Tests listed as hanging on this loop are not run (each would cost the timeout).
        hang = [t for (m, t), why in expected.items() if m == mode and why.startswith("hangs")]
        saved = os.path.join(reuse, f"{mode}.json") if reuse else None
        if saved and os.path.exists(saved):
            with open(saved) as f:
                results[mode] = json.load(f)
            continue
        results[mode] = run_mode(mode, modules, hang)
        if saved:
            with open(saved, "w") as f:
                json.dump(results[mode], f, indent=0, sort_keys=True)
    print(f"\nCPython {sys.version.split()[0]} test.test_asyncio: {', '.join(modules)}\n")
    print(f"| loop | passed | failed | skipped |\n|---|---:|---:|---:|")
    for mode in modes:
        c = Counter(results[mode].values())
        print(f"| {mode} | {c['passed']} | {c['failed']} | {c['skipped']} |")
    bad = 0
    for mode in modes:
        failed = {t for t, o in results[mode].items() if o == "failed"}
        base = BASE_OF.get(mode)
        if base in results:
            regressions = {t for t in failed if results[base].get(t) == "passed"}
        elif mode in BASE_OF:
            regressions = failed  # no base run: every failure must be listed
        else:
            continue
        for t in sorted(regressions):
            if (mode, t) not in expected:
                where = f"passes on {base}" if base in results else "no base run to compare"
                print(f"UNEXPECTED: {mode} {t} fails ({where})")
                bad += 1
        for (m, t), why in sorted(expected.items()):
            if m == mode and results[mode].get(t) == "passed":
                print(f"note: {mode} {t} is listed as failing ({why}) but passed")
    listed = sum(1 for (m, _) in expected if m in modes)
    print(f"\n{bad} unexpected failures; {listed} listed in expected_failures.txt")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
