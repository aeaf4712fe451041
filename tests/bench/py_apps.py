#!/usr/bin/env python3
"""Real Python applications on three event loops: polyio's loop (polyio.new_event_loop),
uvloop and asyncio's default loop.

- aiohttp: a "hello" server on each loop, loaded by wrk (every response checked by status:
  a non-2xx response or a socket error fails the run); requests per second.
- redis: redis-py's asyncio client on each loop, 10 tasks each running SET then GET on its
  own keys against one redis-server, every reply verified; commands per second.

Each process is pinned: the server under test to BENCH_SERVER_CPU, wrk and redis-server to
BENCH_LOADGEN_CPU. A cell is the median of BENCH_REPEATS rounds (loops in rotated order).
Results: target/bench/py_apps.json and py_apps.md, and the table printed.

Environment: BENCH_PY_SECS (measured seconds per run, default 10), BENCH_PY_CONNS (wrk
connections, default 50), BENCH_REPEATS (default 3), BENCH_PY_LOOPS (default
"polyio uvloop asyncio"), BENCH_PY_WORKLOADS (default "aiohttp redis").

Run with the repository's venv Python (it imports aiohttp, redis and polyio):
    .venv/bin/python tests/bench/py_apps.py

``py_apps.py instructions`` counts user-space instructions instead (valgrind's callgrind,
repeatable on a loaded machine): per aiohttp request (the server under callgrind, 4
keep-alive connections from a plain socket client) and per redis-py command (the client
under callgrind), each the difference between a short and a long run, so that start-up
cancels out.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "target", "bench")
LOOPS = ["polyio", "uvloop", "asyncio"]
REDIS_TASKS = 10


def env_list(name: str, default: list[str]) -> list[str]:
    v = os.environ.get(name)
    return v.replace(",", " ").split() if v else default


def run_on(loop: str, coro: Coroutine[Any, Any, Any]) -> Any:
    if loop == "polyio":
        import polyio

        return polyio.run(coro)
    if loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    if loop == "asyncio":
        return asyncio.run(coro)
    raise SystemExit(f"unknown loop {loop!r}: polyio, uvloop or asyncio")


def pin(cpu: str) -> Callable[[], None]:
    def go() -> None:
        try:
            os.sched_setaffinity(0, {int(cpu)})
        except (OSError, ValueError):
            pass  # fewer CPUs than asked for: run unpinned

    return go


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any], secs: float = 20) -> None:
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


# ---- the processes under test ----------------------------------------------------------


def serve_aiohttp(loop: str, port: int) -> None:
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="Hello, World!")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    run_on(loop, main())


def redis_client(loop: str, port: int, secs: float) -> None:
    import redis.asyncio as aioredis

    async def main() -> float:
        r = aioredis.Redis(host="127.0.0.1", port=port)
        await r.ping()
        deadline = time.monotonic() + secs
        counts = [0] * REDIS_TASKS

        async def worker(n: int) -> None:
            i = 0
            while time.monotonic() < deadline:
                key, value = f"bench:{n}:{i % 1000}", f"{loop}-{n}-{i}".encode()
                if await r.set(key, value) is not True:
                    raise SystemExit(f"SET {key}: unexpected reply")
                if await r.get(key) != value:
                    raise SystemExit(f"GET {key}: wrong value")
                counts[n] += 2
                i += 1

        start = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(REDIS_TASKS)))
        elapsed = time.monotonic() - start
        await r.aclose()
        return sum(counts) / elapsed

    print(f"ops/s {run_on(loop, main()):.1f}", flush=True)


def redis_ops(loop: str, port: int, n: int) -> None:
    """`n` SET+GET pairs in each of REDIS_TASKS tasks, every reply checked."""
    import redis.asyncio as aioredis

    async def main() -> None:
        r = aioredis.Redis(host="127.0.0.1", port=port)
        await r.ping()

        async def worker(k: int) -> None:
            for i in range(n):
                if await r.set(f"i{k}:{i % 100}", b"v") is not True:
                    raise SystemExit("SET: unexpected reply")
                if await r.get(f"i{k}:{i % 100}") != b"v":
                    raise SystemExit("GET: wrong value")

        await asyncio.gather(*(worker(k) for k in range(REDIS_TASKS)))
        await r.aclose()

    run_on(loop, main())


def http_client(port: int, k: int, conns: int = 4) -> None:
    """`k` rounds of one keep-alive GET on each of `conns` connections, each answer read."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    for _ in range(k):
        for s in socks:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        for s in socks:
            buf = b""
            while not buf.endswith(b"Hello, World!"):
                data = s.recv(4096)
                if not data:
                    raise SystemExit("the server closed the connection")
                buf += data
    for s in socks:
        s.close()


def callgrind(argv: list[str], wait_port_of: int = 0, client: list[str] | None = None) -> int:
    """Instructions callgrind counted for `argv` (a server when `client` is given: the
    client runs once it listens, then the server gets SIGTERM)."""
    with tempfile.TemporaryDirectory() as d:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/out"] + argv
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if client is not None:
            wait_port(wait_port_of, proc, 120)
            subprocess.run(client, check=True)
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=600)
    m = re.search(r"Collected : (\d+)", err)
    if m is None:
        raise SystemExit(f"callgrind counted nothing:\n{err}")
    return int(m.group(1))


def instructions(loops: list[str], workloads: list[str]) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: run 'make deps-test'")
    me = [sys.executable, __file__]
    results: dict[str, dict[str, float]] = {w: {} for w in workloads}
    with tempfile.TemporaryDirectory() as workdir:
        redis_proc, redis_port = start_redis("0", workdir) if "redis" in workloads else (None, 0)
        try:
            for lp in loops:
                if "aiohttp" in workloads:
                    counts = []
                    for k in (200, 1000):
                        port = free_port()
                        client = me + ["http-client", str(port), str(k)]
                        counts.append(callgrind(me + ["serve-aiohttp", lp, str(port)], port, client))
                    results["aiohttp"][lp] = (counts[1] - counts[0]) / (800 * 4)
                if "redis" in workloads:
                    counts = [callgrind(me + ["redis-ops", lp, str(redis_port), str(n)]) for n in (100, 300)]
                    results["redis"][lp] = (counts[1] - counts[0]) / (200 * REDIS_TASKS * 2)
                print(f"py-apps instructions on {lp}: {({w: round(results[w][lp]) for w in workloads})}", flush=True)
        finally:
            if redis_proc is not None:
                redis_proc.terminate()
                redis_proc.wait(10)
    lines = ["| instructions per request | " + " | ".join(loops) + " |", "|---" + "|---:" * len(loops) + "|"]
    for w, cells in results.items():
        lines.append(f"| {w} | " + " | ".join(f"{cells[lp]:,.0f}" for lp in loops) + " |")
    md = "\n".join(lines)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "py_apps_instructions.md"), "w") as f:
        f.write(md + "\n")
    print("\n" + md)


# ---- the driver -------------------------------------------------------------------------


def bench_aiohttp(loop: str, secs: float, conns: int, server_cpu: str, load_cpu: str) -> float:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "serve-aiohttp", loop, str(port)], preexec_fn=pin(server_cpu)
    )
    try:
        wait_port(port, server)
        out = subprocess.run(
            ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(secs))}s", f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, check=True, preexec_fn=pin(load_cpu),
        ).stdout  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk against aiohttp on {loop} saw errors:\n{out}")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise SystemExit(f"no Requests/sec in wrk's output:\n{out}")
    return float(m.group(1))


def bench_redis(loop: str, secs: float, port: int, server_cpu: str) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "redis-client", loop, str(port), str(secs)],
        capture_output=True, text=True, check=True, preexec_fn=pin(server_cpu),
    ).stdout  # fmt: skip
    m = re.search(r"ops/s ([\d.]+)", out)
    if m is None:
        raise SystemExit(f"no ops/s from the redis client on {loop}:\n{out}")
    return float(m.group(1))


def start_redis(load_cpu: str, workdir: str) -> tuple[subprocess.Popen[Any], int]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed: run 'make deps-bench'")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir],
        stdout=subprocess.DEVNULL, preexec_fn=pin(load_cpu),
    )  # fmt: skip
    wait_port(port, proc)
    return proc, port


def table(results: dict[str, dict[str, float]], loops: list[str]) -> str:
    units = {"aiohttp": "aiohttp hello, wrk req/s", "redis": "redis-py SET+GET ×10 tasks, cmd/s"}
    head = "| workload | " + " | ".join(loops)
    ratios = [("polyio", "uvloop"), ("polyio", "asyncio")]
    ratios = [r for r in ratios if r[0] in loops and r[1] in loops]
    head += "".join(f" | {a} / {b}" for a, b in ratios) + " |"
    lines = [head, "|---" + "|---:" * (len(loops) + len(ratios)) + "|"]
    for w, cells in results.items():
        row = f"| {units.get(w, w)} | " + " | ".join(f"{cells[lp]:,.0f}" for lp in loops)
        row += "".join(f" | {cells[a] / cells[b]:.2f}" for a, b in ratios) + " |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve-aiohttp":
        return serve_aiohttp(sys.argv[2], int(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "redis-client":
        return redis_client(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "redis-ops":
        return redis_ops(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "http-client":
        return http_client(int(sys.argv[2]), int(sys.argv[3]))
    if len(sys.argv) > 1 and sys.argv[1] == "instructions":
        return instructions(
            env_list("BENCH_PY_LOOPS", LOOPS), env_list("BENCH_PY_WORKLOADS", ["aiohttp", "redis"])
        )
    secs = float(os.environ.get("BENCH_PY_SECS", "10"))
    conns = int(os.environ.get("BENCH_PY_CONNS", "50"))
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    loops = env_list("BENCH_PY_LOOPS", LOOPS)
    workloads = env_list("BENCH_PY_WORKLOADS", ["aiohttp", "redis"])
    server_cpu = os.environ.get("BENCH_SERVER_CPU", "0")
    load_cpu = os.environ.get("BENCH_LOADGEN_CPU", "1")
    if "aiohttp" in workloads and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run 'make deps-bench'")
    samples: dict[str, dict[str, list[float]]] = {w: {lp: [] for lp in loops} for w in workloads}
    with tempfile.TemporaryDirectory() as workdir:
        redis_proc, redis_port = start_redis(load_cpu, workdir) if "redis" in workloads else (None, 0)
        try:
            for rnd in range(repeats):
                order = loops[rnd % len(loops):] + loops[: rnd % len(loops)]
                for w in workloads:
                    for lp in order:
                        if w == "aiohttp":
                            v = bench_aiohttp(lp, secs, conns, server_cpu, load_cpu)
                        else:
                            v = bench_redis(lp, secs, redis_port, server_cpu)
                        samples[w][lp].append(v)
                        print(f"py-apps: round {rnd + 1}/{repeats} {w} on {lp}: {v:,.0f}/s", flush=True)
        finally:
            if redis_proc is not None:
                redis_proc.terminate()
                redis_proc.wait(10)
    results = {w: {lp: statistics.median(v) for lp, v in c.items()} for w, c in samples.items()}
    md = table(results, loops)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "py_apps.json"), "w") as f:
        json.dump({"secs": secs, "wrk_conns": conns, "repeats": repeats, "samples": samples,
                   "median": results}, f, indent=1)  # fmt: skip
    with open(os.path.join(OUT, "py_apps.md"), "w") as f:
        f.write(md + "\n")
    print("\n" + md)


if __name__ == "__main__":
    main()
