#!/usr/bin/env python3
"""HTTP benchmark runner: Node's `http.createServer` "hello" server, fed by `net`
(`server.listen`) and by polyio (`polyio.serve`), loaded side by side by wrk with keep-alive.

Each round runs every server once per connection count, in an order rotated by one from the
last round's; the server is pinned to one CPU and wrk (one thread) to the other. A cell
records req/s (wrk's "Requests/sec"), the server's CPU time from /proc/<pid>/stat (CPU µs per
request) and wrk's own CPU (a cell where wrk sat near 100% is marked `*`: its req/s ratio is
capped and CPU per request is the figure to compare). Every round is reported. Results land in
target/bench/http.json and http.md; the tables are also printed. Standard library only.

Environment:
  BENCH_HTTP_SECS      measured seconds per cell (default 5)
  BENCH_HTTP_WARMUP    unmeasured warm-up seconds per cell (default 1)
  BENCH_HTTP_CONNS     connection counts (default "10 100")
  BENCH_HTTP_REPEATS   rounds (default 3)
  BENCH_HTTP_SERVERS   servers (default "node-http-net node-http-polyio")
  BENCH_SERVER_CPU     CPU the server is pinned to (default 0)
  BENCH_LOADGEN_CPU    CPU wrk is pinned to (default 1)
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import free_port, pinned, proc_cpu_secs, stop  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "target" / "bench"
NODE = os.environ.get("NODE", "node")
SERVER = str(ROOT / "tests" / "bench" / "node_http_hello.js")
SERVERS = {"node-http-net": "net", "node-http-polyio": "polyio"}
BASELINE = "node-http-net"


def env_words(name: str, default: str) -> list[str]:
    return os.environ.get(name, default).replace(",", " ").split()


def wait_ready(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"http_run.py: server exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("http_run.py: server did not start listening within 15 s")


def wrk(port: int, conns: int, secs: float, cpu: str | None) -> tuple[float, float, str]:
    """Runs wrk; returns (req/s, wrk's CPU seconds, its output)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = pinned(cpu, ["wrk", "-t1", f"-c{conns}", f"-d{max(secs, 1):g}s", f"http://127.0.0.1:{port}/"])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if not m:
        raise SystemExit(f"http_run.py: no Requests/sec in wrk's output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    if errors:
        raise SystemExit(f"http_run.py: wrk saw errors:\n{out}")
    return float(m.group(1)), cpu_s, out


def run_cell(name: str, conns: int, secs: float, warmup: float, scpu: str | None, lcpu: str | None) -> dict:
    port = free_port("127.0.0.1")
    argv = pinned(scpu, [NODE, SERVER, SERVERS[name], "127.0.0.1", str(port)])
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(proc, port)
        if warmup > 0:
            wrk(port, conns, warmup, lcpu)
        cpu0 = proc_cpu_secs(proc.pid)
        t0 = time.monotonic()
        rps, wrk_cpu, _ = wrk(port, conns, secs, lcpu)
        wall = time.monotonic() - t0
        server_cpu = proc_cpu_secs(proc.pid) - cpu0
    finally:
        stop(proc)
    requests = rps * wall
    return {
        "server": name,
        "conns": conns,
        "rps": rps,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_req": server_cpu / requests * 1e6 if requests else None,
        "server_cpu_pct": 100 * server_cpu / wall,
        "wrk_cpu_pct": 100 * wrk_cpu / wall,
    }


def main() -> int:
    if shutil.which("wrk") is None:
        print("http_run.py: wrk not found (make deps-bench installs it)", file=sys.stderr)
        return 1
    secs = float(os.environ.get("BENCH_HTTP_SECS", "5"))
    warmup = float(os.environ.get("BENCH_HTTP_WARMUP", "1"))
    conns_list = [int(c) for c in env_words("BENCH_HTTP_CONNS", "10 100")]
    repeats = int(os.environ.get("BENCH_HTTP_REPEATS", "3"))
    servers = env_words("BENCH_HTTP_SERVERS", " ".join(SERVERS))
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        print(f"http_run.py: unknown servers {unknown}; known: {list(SERVERS)}", file=sys.stderr)
        return 1
    pin = shutil.which("taskset") is not None
    scpu = os.environ.get("BENCH_SERVER_CPU", "0") if pin else None
    lcpu = os.environ.get("BENCH_LOADGEN_CPU", "1") if pin else None
    rounds: list[dict] = []
    for r in range(repeats):
        order = servers[r % len(servers):] + servers[: r % len(servers)]
        for conns in conns_list:
            for name in order:
                cell = run_cell(name, conns, secs, warmup, scpu, lcpu)
                cell["round"] = r + 1
                rounds.append(cell)
                print(
                    f"round {r + 1} c={conns:<4} {name:<18} {cell['rps']:>10.0f} req/s  "
                    f"server {cell['server_cpu_us_per_req']:.1f} µs CPU/req ({cell['server_cpu_pct']:.0f}%)  "
                    f"wrk {cell['wrk_cpu_pct']:.0f}%",
                    flush=True,
                )
    md = markdown(rounds, servers, conns_list, repeats, secs)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "http.json").write_text(json.dumps({"secs": secs, "rounds": rounds}, indent=2) + "\n")
    (OUT / "http.md").write_text(md)
    print()
    print(md)
    print(f"written: {OUT / 'http.json'}, {OUT / 'http.md'}")
    return 0


def markdown(rounds: list[dict], servers: list[str], conns_list: list[int], repeats: int, secs: float) -> str:
    lines = [
        f"HTTP hello, keep-alive, wrk -t1; {repeats} round(s) of {secs:g} s per cell; "
        "server and wrk pinned to their own CPUs. `*`: wrk at >= 95% CPU (req/s capped).",
        "",
        "| conns | round | server | req/s | × net | server CPU µs/req | server CPU | wrk CPU |",
        "|------:|------:|--------|------:|------:|------------------:|-----------:|--------:|",
    ]
    for conns in conns_list:
        for r in range(1, repeats + 1):
            cells = {c["server"]: c for c in rounds if c["conns"] == conns and c["round"] == r}
            base = cells.get(BASELINE)
            for name in servers:
                c = cells.get(name)
                if c is None:
                    continue
                ratio = f"{c['rps'] / base['rps']:.2f}" if base else "-"
                star = "*" if c["wrk_cpu_pct"] >= 95 else ""
                lines.append(
                    f"| {conns} | {r} | {name} | {c['rps']:.0f}{star} | {ratio} | "
                    f"{c['server_cpu_us_per_req']:.1f} | {c['server_cpu_pct']:.0f}% | {c['wrk_cpu_pct']:.0f}% |"
                )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
