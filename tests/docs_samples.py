#!/usr/bin/env python3
"""docs_samples.py: runs every code sample in the book (docs/*.md) the way a user would.

A sample is a fenced block whose info string is `LANG,run`: `c,run` is compiled against an
installed C prefix with `pkg-config --cflags --libs polyio` and run; `cmake,run` is a
CMakeLists.txt that builds the same page's first C sample as app.c; `python,run` runs with
PYTHON (which must import polyio); `js,run` runs with node in a project where `polyio`
resolves (`import` makes it an ES module, else CommonJS). Each must exit 0. A block in C,
CMake, Python, JavaScript or TypeScript without `,run` fails the check: the docs hold no
sample that no test runs. The generated reference pages (docs/reference/) hold declarations,
not samples, and are skipped.

    tests/docs_samples.py --prefix PREFIX --python PYTHON --node-modules DIR WORKDIR
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\S*)\s*$")
LANGS = {"c", "cmake", "python", "js", "javascript", "ts", "typescript"}


def samples(md: Path) -> list[tuple[int, str, bool, str]]:
    """(line, language, runnable, code) of every fenced block."""
    found, lines, i = [], md.read_text().splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m.group(1):
            info = m.group(1).split(",")
            start, body = i + 1, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            found.append((start, info[0], "run" in info[1:], "\n".join(body) + "\n"))
        i += 1
    return found


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", type=Path, required=True, help="an installed C prefix (lib/pkgconfig/polyio.pc)")
    ap.add_argument("--python", required=True, help="a Python that imports polyio")
    ap.add_argument("--node-modules", type=Path, required=True, help="a node_modules holding polyio")
    ap.add_argument("work", type=Path)
    args = ap.parse_args()
    if "/" in args.python:
        args.python = str(Path(args.python).absolute())
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    (args.work / "node_modules").symlink_to(args.node_modules.resolve())
    env = dict(os.environ, PKG_CONFIG_PATH=str(args.prefix.resolve() / "lib/pkgconfig"))
    cflags = run(["pkg-config", "--cflags", "--libs", "polyio"], args.work, env).stdout.split()

    passed = failed = 0
    pages = sorted((ROOT / "docs").glob("*.md"))
    for md in pages:
        blocks = samples(md)
        first_c = next((code for _, lang, ok, code in blocks if lang == "c" and ok), None)
        for line, lang, runnable, code in blocks:
            where = f"{md.relative_to(ROOT)}:{line}"
            if lang not in LANGS:
                continue
            if not runnable:
                print(f"FAIL {where}: a {lang} sample not marked `{lang},run`: every sample must run")
                failed += 1
                continue
            name = f"{md.stem}_{line}"
            d = args.work / name
            d.mkdir()
            if lang == "c":
                (d / "app.c").write_text(code)
                steps = [["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "app.c", *cflags, "-o", "app"], ["./app"]]
            elif lang == "cmake":
                if first_c is None:
                    print(f"FAIL {where}: a CMake sample on a page with no C sample to build")
                    failed += 1
                    continue
                (d / "CMakeLists.txt").write_text(code)
                (d / "app.c").write_text(first_c)
                steps = [
                    ["cmake", "-S", ".", "-B", "build", f"-DCMAKE_PREFIX_PATH={args.prefix.resolve()}"],
                    ["cmake", "--build", "build"],
                    ["build/app"],
                ]
            elif lang == "python":
                (d / "sample.py").write_text(code)
                steps = [[args.python, "sample.py"]]
            elif lang in ("js", "javascript"):
                ext = "mjs" if re.search(r"^import ", code, re.M) else "cjs"
                (d / f"sample.{ext}").write_text(code)
                steps = [["node", f"sample.{ext}"]]
            else:
                print(f"FAIL {where}: no runner for {lang} samples yet")
                failed += 1
                continue
            out = ""
            for step in steps:
                try:
                    r = run(step, d, env)
                except subprocess.TimeoutExpired:
                    out += f"{' '.join(step)}: timed out\n"
                    break
                out += r.stdout + r.stderr
                if r.returncode != 0:
                    out += f"{' '.join(step)}: exit {r.returncode}\n"
                    break
            else:
                passed += 1
                last = (r.stdout.strip().splitlines() or [""])[-1]
                print(f"ok   {where} ({lang}): {last}")
                continue
            failed += 1
            print(f"FAIL {where} ({lang}):\n" + "\n".join("     " + l for l in out.splitlines()))
    print(f"docs: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
