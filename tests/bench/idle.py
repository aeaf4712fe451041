#!/usr/bin/env python3
"""Memory per idle connection of echo servers: server RSS delta per connection.

    python3 tests/bench/idle.py [SERVER ...]       (default: the pairs in PAIRS)

Each server from tests/bench/run.py's SERVERS (the same echo handlers as `make bench`) is
started on TCP, its RSS read once it accepts, then it is given BENCH_IDLE_CONNS (default
4000) connections, each with one 1 KiB round trip (so every connection has been read from
and written to once, and its read is armed again), and left idle for BENCH_IDLE_SECS
(default 1) seconds; the RSS grown since, divided by the connections, is the memory an
idle connection holds (kernel socket buffers are not in RSS). The median of
BENCH_IDLE_REPEATS (default 3) fresh servers is kept. RSS does not depend on CPU load, so
unlike req/s this can run on a busy machine. Writes target/bench/idle.json and idle.md.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

# (polyio server, its peer), compared side by side.
PAIRS = [
    ("polyio-py-streams", "uvloop-streams"),
    ("polyio-py-protocol", "uvloop-protocol"),
    ("polyio-node", "node-net"),
    ("polyio-c", "libuv"),
]
MESSAGE = b"x" * 1024
# Connections opened (and echoed once) before the next batch: keeps the listen backlog
# from overflowing, whatever the server's.
BATCH = 100


def rss_bytes(pid: int) -> int:
    """The resident set of process `pid`, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def recv_exactly(s: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = s.recv(n - got)
        if not chunk:
            raise ConnectionError("the server closed a connection")
        got += len(chunk)


def open_idle(port: int, conns: int) -> list[socket.socket]:
    """`conns` connections to 127.0.0.1:`port`, each echoed 1 KiB once, left open."""
    socks: list[socket.socket] = []
    while len(socks) < conns:
        batch = [
            socket.create_connection((bench.HOST, port), timeout=30)
            for _ in range(min(BATCH, conns - len(socks)))
        ]
        for s in batch:
            s.sendall(MESSAGE)
        for s in batch:
            recv_exactly(s, len(MESSAGE))
        socks.extend(batch)
    return socks


def measure_once(name: str, conns: int, idle_secs: float) -> float:
    """One fresh server's RSS growth per idle connection, in bytes."""
    spec = bench.SERVERS[name]
    port = bench.free_port(bench.HOST)
    ep = bench.Endpoint("tcp", bench.HOST, port)
    argv = [bench.expand(a, bench.HOST, port) for a in spec["argv"]]
    argv[0] = bench.resolve_program(argv[0]) or argv[0]
    env = dict(os.environ)
    env.update({k: bench.expand(str(v), bench.HOST, port) for k, v in spec.get("env", {}).items()})
    cwd = bench.ROOT / spec["cwd"] if spec.get("cwd") else bench.ROOT
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as logf:
            srv = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        socks: list[socket.socket] = []
        try:
            bench.wait_ready(srv, ep, log)
            # One connection's round trip first, so that what every server allocates once
            # (first-use buffers, lazily loaded code) is in the baseline, not the delta.
            for s in open_idle(port, 1):
                s.close()
            time.sleep(idle_secs)
            before = rss_bytes(srv.pid)
            socks = open_idle(port, conns)
            time.sleep(idle_secs)
            after = rss_bytes(srv.pid)
        finally:
            for s in socks:
                s.close()
            bench.stop(srv)
    return (after - before) / conns


def main() -> int:
    names = sys.argv[1:] or [n for pair in PAIRS for n in pair]
    for n in names:
        if n not in bench.SERVERS or "argv" not in bench.SERVERS[n]:
            print(f"idle.py: unknown TCP server {n!r}", file=sys.stderr)
            return 2
    conns = int(os.environ.get("BENCH_IDLE_CONNS", "4000"))
    idle_secs = float(os.environ.get("BENCH_IDLE_SECS", "1"))
    repeats = int(os.environ.get("BENCH_IDLE_REPEATS", "3"))
    # The client holds every connection; the server inherits the raised limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = conns + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            print(f"idle.py: {conns} connections need {want} fds, the limit is {hard}",
                  file=sys.stderr)  # fmt: skip
            return 2
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    results: dict[str, dict[str, object]] = {}
    for name in names:
        missing = bench.missing_parts(bench.SERVERS[name])
        if missing:
            print(f"{name:>20}  skipped: missing {', '.join(missing)}")
            continue
        samples = [measure_once(name, conns, idle_secs) for _ in range(repeats)]
        per = statistics.median(samples)
        results[name] = {"bytes_per_conn": per, "samples": samples}
        print(f"{name:>20}  {per / 1000:7.2f} KB per idle connection "
              f"(samples {', '.join(f'{s / 1000:.2f}' for s in samples)})")  # fmt: skip
    out = bench.ROOT / "target" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"conns": conns, "idle_secs": idle_secs, "repeats": repeats}
    (out / "idle.json").write_text(json.dumps({**meta, "servers": results}, indent=2) + "\n")
    rows = []
    for a, b in PAIRS:
        if a in results and b in results:
            pa = float(results[a]["bytes_per_conn"])  # type: ignore[arg-type]
            pb = float(results[b]["bytes_per_conn"])  # type: ignore[arg-type]
            ratio = f"{pa / pb:.2f}" if pb > 0 else "-"
            rows.append([a, f"{pa / 1000:.2f}", b, f"{pb / 1000:.2f}", ratio])
    header = ["polyio", "KB/conn", "peer", "KB/conn", "polyio / peer"]
    md = (
        f"# Memory per idle connection\n\n{conns} connections, one 1 KiB round trip each, "
        f"then {idle_secs:g} s idle; server RSS delta / connections, median of {repeats}.\n\n"
        + bench.markdown_table(header, rows)
    )
    (out / "idle.md").write_text(md)
    print()
    print(bench.text_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
