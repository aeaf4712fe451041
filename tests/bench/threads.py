#!/usr/bin/env python3
"""Many-cores benchmark: the echo servers with one runtime per thread (C `--threads`,
Python one loop per thread, Node worker threads) at 1 and 2 threads, side by side, driven
by polyio-loadgen. Writes target/bench/threads.json and threads.md and prints the table.

Environment: BENCH_SECS (measured seconds per cell, default 5), BENCH_WARMUP_SECS (default 1),
BENCH_THREADS (default "1 2"), BENCH_CONNS (default 20), BENCH_SIZE (default 1024),
BENCH_SERVERS (default "c python node"). The server gets CPUs 0..threads-1 and the load
generator the last CPU (shared when there are only 2): on a 2-core machine the 2-thread cell
shows the cost of sharing, not the scaling; docs/reliability.md says how to read it.
"""

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/soak"))
import soak  # noqa: E402  (listening_port)


def server_argv(kind: str, threads: int) -> List[str]:
    if kind == "c":
        return [str(ROOT / "build/release/examples/echo_server"), "--threads", str(threads), "127.0.0.1", "0"]
    if kind == "python":
        py = str(ROOT / ".venv/bin/python")
        return [py, str(ROOT / "examples/python/echo_server_threads.py"), "--threads", str(threads), "127.0.0.1", "0"]
    if kind == "node":
        node = os.environ.get("NODE", "node")
        return [node, str(ROOT / "examples/node/echo_server_workers.js"), "--threads", str(threads), "127.0.0.1", "0"]
    raise SystemExit(f"unknown server {kind!r}")


def cpu_secs(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cell(kind: str, threads: int, conns: int, size: int, secs: float, warmup: float) -> Dict[str, Any]:
    ncpu = os.cpu_count() or 1
    server_cpus = ",".join(str(c % ncpu) for c in range(threads))
    loadgen_cpu = str(ncpu - 1)
    server = subprocess.Popen(
        ["taskset", "-c", server_cpus, *server_argv(kind, threads)], stdout=subprocess.PIPE, text=True
    )
    port = soak.listening_port(server, kind)
    cpu0 = cpu_secs(server.pid)
    out = subprocess.run(
        [
            "taskset", "-c", loadgen_cpu, str(ROOT / "target/release/polyio-loadgen"),
            "--port", str(port), "--conns", str(conns), "--size", str(size),
            "--secs", str(secs), "--warmup-secs", str(warmup),
        ],
        capture_output=True, text=True, check=False,
    )
    cpu = cpu_secs(server.pid) - cpu0
    server.send_signal(signal.SIGTERM)
    tail = server.communicate(timeout=15)[0]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    per_thread = re.search(r"per thread: ([0-9 ]+)", tail)
    return {
        "server": kind,
        "threads": threads,
        "conns": conns,
        "size": size,
        "rps": result["rps"],
        "errors": result["errors"],
        "server_cpu_secs": round(cpu, 3),
        "loadgen_cpu_secs": result.get("cpu_secs"),
        "conns_per_thread": per_thread.group(1).split() if per_thread else None,
    }


def main() -> int:
    secs = float(os.environ.get("BENCH_SECS", "5"))
    warmup = float(os.environ.get("BENCH_WARMUP_SECS", "1"))
    threads_list = [int(t) for t in os.environ.get("BENCH_THREADS", "1 2").replace(",", " ").split()]
    conns = int(os.environ.get("BENCH_CONNS", "20"))
    size = int(os.environ.get("BENCH_SIZE", "1024"))
    servers = os.environ.get("BENCH_SERVERS", "c python node").replace(",", " ").split()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    rows = [cell(k, t, conns, size, secs, warmup) for k in servers for t in threads_list]
    base = {r["server"]: r["rps"] for r in rows if r["threads"] == threads_list[0]}
    lines = [
        f"Echo, {conns} connections x {size} bytes, {secs:g} s per cell, {os.cpu_count()} CPUs",
        "",
        "| server | threads | req/s | vs 1 thread | server CPU s | loadgen CPU s | connections per thread |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["rps"] / base[r["server"]] if base.get(r["server"]) else 0
        per = " ".join(r["conns_per_thread"] or ["-"])
        lines.append(
            f"| {r['server']} | {r['threads']} | {r['rps']:.0f} | {ratio:.2f}x | {r['server_cpu_secs']} | "
            f"{r['loadgen_cpu_secs']} | {per} |"
        )
    table = "\n".join(lines)
    print(table)
    out = ROOT / "target/bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "threads.json").write_text(json.dumps(rows, indent=1))
    (out / "threads.md").write_text(table + "\n")
    print(f"wrote {out / 'threads.json'} and {out / 'threads.md'}")
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
