"""`make bench-files`: the issue's four file workloads, run by every row side by side on a warm
page cache, every byte verified, one process per row and workload; prints a table per
workload and writes target/bench/files.json and target/bench/files.md.

The rows come from four workers: files_c (polyio's C API on both backends, libuv), the Rust
bench-files (polyio's core API on both backends, tokio::fs, std::fs), files_py.py (polyio on
both backends, aiofiles, anyio, blocking calls in the coroutine) and files_node.js (polyio on
both backends, fs/promises, the sync calls). Each prints its wall and CPU seconds (and, for
Python and Node, how late a 1 ms timer fired at worst); this script makes the data, checks
the written files and does the arithmetic. Standard library only.

Environment: BENCH_FILES_SCALE (default 1; 0.01 for a smoke run) scales every count and the
big file; BENCH_FILES_REPEATS (default 3) runs each cell that many times and keeps the median;
BENCH_FILES_ROWS (comma-separated row names) and BENCH_FILES_WORKLOADS narrow the run;
BENCH_FILES_DIR is where the data goes (default a temp dir under build/, removed after).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HERE = os.path.join(ROOT, "tests", "bench", "files")
SMALL = 4096
CHUNK = 65536
PERIOD = 1_048_573  # the pattern's period, as in every worker

WORKLOADS = [
    # name, title, unit ("ops/s" or "MiB/s")
    ("read_small_files", "1. read 10,000 files of 4 KiB, 64 in flight", "ops/s"),
    ("random_pread_4k", "2. random 4 KiB pread on a 1 GiB file, 64 in flight", "ops/s"),
    ("sequential_64k", "3. sequential read of a 1 GiB file in 64 KiB chunks", "MiB/s"),
    ("write_fsync_4k", "4. write + fsync of 1,000 files of 4 KiB", "ops/s"),
]


@dataclass
class Row:
    group: str  # "C", "Python", "Node"
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    polyio: bool = False  # a polyio row (the targets are about these)
    peer: bool = False  # a peer the issue names ("no worse than any peer" on 3 and 4)


def rows() -> list[Row]:
    py = os.path.join(ROOT, ".venv", "bin", "python")
    c = [os.path.join(ROOT, "build", "bench", "files_c")]
    rust = [os.path.join(ROOT, "target", "release", "bench-files")]
    pyw = [py, os.path.join(HERE, "files_py.py")]
    node = [os.environ.get("NODE", "node"), os.path.join(HERE, "files_node.js")]
    uring = {"POLYIO_FS_BACKEND": "uring"}
    threads = {"POLYIO_FS_BACKEND": "threads"}
    return [
        Row("C", "polyio-c-uring", c, uring, polyio=True),
        Row("C", "polyio-c-threads", c, threads, polyio=True),
        Row("C", "libuv", c, peer=True),
        Row("C", "tokio-fs", rust, peer=True),
        Row("C", "polyio-core-uring", rust, polyio=True),
        Row("C", "polyio-core-threads", rust, polyio=True),
        Row("C", "rust-blocking", rust),
        Row("Python", "polyio-uring", pyw, uring, polyio=True),
        Row("Python", "polyio-threads", pyw, threads, polyio=True),
        Row("Python", "aiofiles", pyw, peer=True),
        Row("Python", "anyio", pyw, peer=True),
        Row("Python", "blocking", pyw, peer=True),
        Row("Node", "polyio-uring", node, uring, polyio=True),
        Row("Node", "polyio-threads", node, threads, polyio=True),
        Row("Node", "fs-promises", node, peer=True),
        Row("Node", "fs-sync", node, peer=True),
    ]


# The peer each group's ratio column is against, and the targets (io_uring rows, workloads 1
# and 2): at least `x` times that peer (Python: also at least as fast as blocking reads).
NAMED_PEER = {"C": "libuv", "Python": "aiofiles", "Node": "fs-promises"}
TARGET_X = {"C": 1.5, "Python": 5.0, "Node": 1.5}


class Data:
    """The files every worker reads: pattern.bin, small/<i>, big, offsets.bin, and out/."""

    def __init__(self, scale: float, where: Optional[str]) -> None:
        self.n_small = max(64, int(10_000 * scale))
        self.n_preads = max(64, int(100_000 * scale))
        self.big_len = max(16, int((1 << 30) * scale) // CHUNK) * CHUNK
        self.n_writes = max(64, int(1_000 * scale))
        if where:
            os.makedirs(where, exist_ok=True)
            self.dir = where
        else:
            os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
            self.dir = tempfile.mkdtemp(prefix="bench-files-", dir=os.path.join(ROOT, "build"))
        rng = random.Random(1)
        period = rng.randbytes(PERIOD)
        self.pattern = period + period[:CHUNK]
        with open(self.path("pattern.bin"), "wb") as f:
            f.write(self.pattern)
        os.makedirs(self.path("small"), exist_ok=True)
        for i in range(self.n_small):
            with open(self.path("small", str(i)), "wb") as f:
                f.write(self.small_file(i))
        with open(self.path("big"), "wb") as f:
            left = self.big_len
            while left > 0:
                f.write(period[: min(left, PERIOD)])
                left -= min(left, PERIOD)
        with open(self.path("offsets.bin"), "wb") as f:
            slots = self.big_len // SMALL
            offs = (rng.randrange(slots) * SMALL for _ in range(self.n_preads))
            f.write(b"".join(struct.pack("<Q", o) for o in offs))

    def path(self, *parts: str) -> str:
        return os.path.join(self.dir, *parts)

    def small_file(self, i: int) -> bytes:
        at = i * 4099 % PERIOD
        return self.pattern[at : at + SMALL]

    def warm(self) -> None:
        """Reads every input file once, so that every row starts on a warm page cache."""
        for i in range(self.n_small):
            with open(self.path("small", str(i)), "rb") as f:
                f.read()
        with open(self.path("big"), "rb", buffering=0) as f:
            while f.read(1 << 20):
                pass

    def count(self, workload: str) -> int:
        return {
            "read_small_files": self.n_small,
            "random_pread_4k": self.n_preads,
            "sequential_64k": self.big_len // CHUNK,
            "write_fsync_4k": self.n_writes,
        }[workload]

    def fresh_out(self) -> None:
        shutil.rmtree(self.path("out"), ignore_errors=True)
        os.makedirs(self.path("out"))

    def check_out(self, who: str) -> None:
        """Every file the write workload wrote holds exactly what it should."""
        names = sorted(os.listdir(self.path("out")), key=int)
        if names != [str(i) for i in range(self.n_writes)]:
            raise SystemExit(f"{who}: wrote {len(names)} files, not {self.n_writes}")
        for i in range(self.n_writes):
            with open(self.path("out", str(i)), "rb") as f:
                if f.read() != self.small_file(i):
                    raise SystemExit(f"{who}: out/{i} holds the wrong bytes")


def run_cell(row: Row, workload: str, data: Data) -> dict[str, Any]:
    """One run of one workload by one row: the worker's JSON."""
    if workload == "write_fsync_4k":
        data.fresh_out()
    env = {**os.environ, **row.env}
    if "POLYIO_FS_BACKEND" not in row.env:
        env.pop("POLYIO_FS_BACKEND", None)
    argv = [*row.argv, row.name, workload, data.dir, str(data.count(workload))]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    who = f"{row.group} {row.name} {workload}"
    if p.returncode != 0:
        raise SystemExit(f"{who} failed ({p.returncode}):\n{p.stderr}{p.stdout}")
    if workload == "write_fsync_4k":
        data.check_out(who)
    r: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return r


def fmt(x: Optional[float], digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def main() -> None:
    scale = float(os.environ.get("BENCH_FILES_SCALE", "1"))
    repeats = int(os.environ.get("BENCH_FILES_REPEATS", "3"))
    only_rows = set(filter(None, os.environ.get("BENCH_FILES_ROWS", "").split(",")))
    only_wl = set(filter(None, os.environ.get("BENCH_FILES_WORKLOADS", "").split(",")))
    chosen = [
        r for r in rows() if not only_rows or only_rows & {r.name, f"{r.group}:{r.name}"}
    ]
    workloads = [w for w in WORKLOADS if not only_wl or w[0] in only_wl]
    keep = os.environ.get("BENCH_FILES_DIR")
    t0 = time.monotonic()
    data = Data(scale, keep)
    try:
        print(
            f"bench-files: scale {scale} ({data.n_small} small files, {data.n_preads} preads, "
            f"{data.big_len / 2**20:.0f} MiB big file, {data.n_writes} writes), "
            f"{repeats} run(s) per cell, data in {data.dir}",
            flush=True,
        )
        data.warm()
        results: dict[str, Any] = {}
        md: list[str] = []
        for wl, title, unit in workloads:
            n = data.count(wl)
            cells: list[dict[str, Any]] = []
            for row in chosen:
                runs = [run_cell(row, wl, data) for _ in range(repeats)]
                runs.sort(key=lambda r: r["secs"])
                mid = runs[len(runs) // 2]
                secs = mid["secs"]
                value = n / secs if unit == "ops/s" else n * CHUNK / 2**20 / secs
                cells.append(
                    {
                        "group": row.group,
                        "row": row.name,
                        "value": value,
                        "unit": unit,
                        "secs": secs,
                        "cpu": mid["cpu"],
                        "late_ms": mid.get("late_ms"),
                        "runs": [r["secs"] for r in runs],
                    }
                )
            by = {(c["group"], c["row"]): c for c in cells}
            for c, row in zip(cells, chosen):
                peer = by.get((row.group, NAMED_PEER[row.group]))
                c["peer"] = NAMED_PEER[row.group]
                c["ratio"] = c["value"] / peer["value"] if peer else None
                c["target"], c["met"] = target(row, wl, c, by, chosen)
            results[wl] = {"title": title, "count": n, "unit": unit, "rows": cells}
            table = render(title, unit, cells)
            print("\n" + "\n".join(table), flush=True)
            md += ["", *table]
        out = {
            "scale": scale,
            "repeats": repeats,
            "counts": {wl: data.count(wl) for wl, _, _ in workloads},
            "workloads": results,
        }
        os.makedirs(os.path.join(ROOT, "target", "bench"), exist_ok=True)
        with open(os.path.join(ROOT, "target", "bench", "files.json"), "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        head = [
            "# make bench-files",
            "",
            f"Scale {scale}, median of {repeats} run(s) per cell, page cache warm, "
            "every byte verified. "
            "Ratio: against libuv (C), aiofiles (Python), fs/promises (Node). "
            "Timer late: the worst lateness of a 1 ms timer during the run (Python, Node).",
        ]
        with open(os.path.join(ROOT, "target", "bench", "files.md"), "w") as f:
            f.write("\n".join(head + md) + "\n")
        took = time.monotonic() - t0
        print(f"\nwrote target/bench/files.json and target/bench/files.md ({took:.0f} s)")
    finally:
        if not keep:
            shutil.rmtree(data.dir, ignore_errors=True)


def target(
    row: Row, wl: str, c: dict[str, Any], by: dict[Any, Any], chosen: list[Row]
) -> tuple[str, Optional[bool]]:
    """The issue's target for an io_uring row in this workload, and whether it was met."""
    if not (row.polyio and row.name.endswith("uring")) or row.name.startswith("polyio-core"):
        return "", None
    g = row.group
    if wl in ("read_small_files", "random_pread_4k"):
        peer = by.get((g, NAMED_PEER[g]))
        if peer is None:
            return "", None
        want = f">= {TARGET_X[g]}x {NAMED_PEER[g]}"
        met = c["value"] >= TARGET_X[g] * peer["value"]
        blocking = by.get((g, "blocking")) if g == "Python" else None
        if blocking is not None:
            want += " and >= blocking"
            met = met and c["value"] >= blocking["value"]
        return want, met
    peers = [by[(r.group, r.name)] for r in chosen if r.group == g and r.peer]
    if not peers:
        return "", None
    return ">= every peer", c["value"] >= max(p["value"] for p in peers)


def render(title: str, unit: str, cells: list[dict[str, Any]]) -> list[str]:
    """A markdown table (also what gets printed)."""
    lines = [
        f"### {title}",
        "",
        f"| group | row | {unit} | ratio | CPU s | timer late ms | target |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for c in cells:
        ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}x"
        late = "-" if c["late_ms"] is None else f"{c['late_ms']:.1f}"
        tgt = c["target"] + ("" if c["met"] is None else (": met" if c["met"] else ": MISSED"))
        lines.append(
            f"| {c['group']} | {c['row']} | {fmt(c['value'])} | {ratio} | {c['cpu']:.3f} "
            f"| {late} | {tgt} |"
        )
    return lines


if __name__ == "__main__":
    main()
