#!/usr/bin/env python3
"""User-space instructions per request of echo servers, counted by valgrind's callgrind.

    python3 tests/bench/instructions.py [--transport tcp|udp] [--syscalls[=strace|perf]] [SERVER ...]
                                          (default: tcp and the four Python servers)

Req/s and CPU time on a shared VM move by tens of percent between runs (hypervisor steal,
neighbours); an instruction count does not. Each server from tests/bench/run.py's SERVERS
runs under callgrind, is warmed up by the load generator, has its counters zeroed, serves
BENCH_SECS (default 5) seconds of BENCH_SIZE-byte (default 1 KiB) echoes over each of
BENCH_CONNS (default "1 10") connection counts (with `--transport udp`, or BENCH_TRANSPORT=udp: datagrams from as many
sockets, to its argv_udp twin), and has its counters dumped: the result is the instructions
it executed per request, in total and by shared object, plus the top functions with TOP=N.
Under callgrind a server runs ~50x slower, so batching per wakeup differs from a real run:
use it to compare designs and find costs, and `make bench` for speed. Kernel work is not
counted. Needs valgrind.

With `--syscalls` the server runs natively instead, and `strace -c -f` attached after the
warm-up counts the system calls it makes per request over the same run, by name (a count,
steady under load like the instructions; strace slows the server, which changes batching
at 10 connections a little). Needs strace.

With `--syscalls=perf` the same count comes from the kernel's syscall tracepoints through
`perf stat` instead, which does not stop the server at each call: batching stays what it is
in a real run. Use it where a server's syscall count depends on how fast it returns (an
io_uring loop whose next completion may already be there when a submit returns). Needs perf
and permission to trace (root, or a low `kernel.perf_event_paranoid`).
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

# The echo size in bytes (BENCH_SIZE, default 1 KiB).
SIZE = int(os.environ.get("BENCH_SIZE", "1024"))

DEFAULT = ["polyio-py-streams", "uvloop-streams", "polyio-py-protocol", "uvloop-protocol"]


def exclusive_costs(path: Path) -> tuple[collections.Counter[str], dict[str, str]]:
    """Instructions per function (exclusive) and each function's object, from a callgrind
    output file (name compression: "fn=(id) name" once, "fn=(id)" after)."""
    names: dict[str, str] = {}
    objs: dict[str, str] = {}
    costs: collections.Counter[str] = collections.Counter()
    fn_obj: dict[str, str] = {}
    fn, obj, in_call = "?", "?", False
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"(c?)(fn|ob)=\((\d+)\)(?: (.*))?", line)
        if m:
            table = names if m.group(2) == "fn" else objs
            if m.group(4):
                table[m.group(3)] = m.group(4)
            if not m.group(1):
                if m.group(2) == "fn":
                    fn = names.get(m.group(3), m.group(3))
                    fn_obj[fn] = obj
                else:
                    obj = objs.get(m.group(3), m.group(3))
            continue
        if line.startswith("calls="):
            in_call = True
            continue
        if line[:1].isdigit() or line[:1] in "+-*":
            parts = line.split()
            if in_call:
                in_call = False  # the inclusive cost of a call: not this function's own
            elif len(parts) >= 2:
                costs[fn] += int(parts[1])
    return costs, fn_obj


def measure(
    name: str, transport: str, secs: float, conns: int, top: int, syscalls: str | None
) -> None:
    spec = bench.SERVERS[name]
    host = bench.HOST
    port = bench.free_port(host, socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)
    ep = bench.Endpoint(transport, host, port)
    argv = [bench.expand(a, host, port) for a in spec[bench.ARGV_KEYS[transport][0]]]
    argv[0] = bench.resolve_program(argv[0]) or argv[0]
    env = dict(os.environ)
    env.update({k: bench.expand(str(v), host, port) for k, v in spec.get("env", {}).items()})
    cwd = bench.ROOT / spec["cwd"] if spec.get("cwd") else bench.ROOT
    with tempfile.TemporaryDirectory() as tmp:
        out, log = Path(tmp) / "cg.out", Path(tmp) / "server.log"
        tool = [] if syscalls else ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        with log.open("wb") as logf:
            srv = subprocess.Popen(
                [*tool, *argv],
                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if syscalls:
            try:
                bench.wait_ready(srv, ep, log)
                count = count_syscalls_perf if syscalls == "perf" else count_syscalls
                count(name, srv, ep, secs, conns, Path(tmp) / "syscalls.out")
            finally:
                bench.stop(srv)
            return
        try:
            bench.READY_TIMEOUT_S = max(bench.READY_TIMEOUT_S, 60)  # valgrind starts slowly
            bench.wait_ready(srv, ep, log)
            lg = warmed_loadgen(ep, conns)
            subprocess.run(["callgrind_control", "-z", str(srv.pid)], capture_output=True)
            res = json.loads(
                subprocess.run([*lg, "--secs", str(secs)], capture_output=True, text=True,
                               check=True).stdout.strip().splitlines()[-1]
            )  # fmt: skip
            subprocess.run(["callgrind_control", "-d", str(srv.pid)], capture_output=True)
        finally:
            bench.stop(srv)
        dumps = sorted(Path(tmp).glob("cg.out.*"))
        if not dumps or not res.get("requests"):
            raise SystemExit(f"{name}: no callgrind dump, or no request served")
        costs, fn_obj = exclusive_costs(dumps[0])
    n = res["requests"]
    name = f"{name} x{conns}"
    by_obj: collections.Counter[str] = collections.Counter()
    for f, c in costs.items():
        by_obj[Path(fn_obj.get(f, "?")).name] += c
    print(f"{name:>24} {sum(costs.values()) / n:9.0f} instructions/request ({n} requests)")
    for o, c in by_obj.most_common(5):
        print(f"{'':>26}{c / n:9.0f}  {o}")
    for f, c in costs.most_common(top):
        print(f"{'':>30}{c / n:7.0f}  {f[:100]}")


def warmed_loadgen(ep: bench.Endpoint, conns: int) -> list[str]:
    """The load generator's command for `conns` connections of BENCH_SIZE-byte echoes to
    `ep` (add `--secs`), once it has warmed the server up for 2 s."""
    lg = [str(bench.ROOT / "target/release/polyio-loadgen"), *ep.loadgen_args(),
          "--conns", str(conns), "--size", str(SIZE), "--warmup-secs", "0"]  # fmt: skip
    subprocess.run([*lg, "--secs", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return lg


def count_syscalls(
    name: str, srv: subprocess.Popen[bytes], ep: bench.Endpoint, secs: float, conns: int, out: Path
) -> None:
    """Prints the system calls `srv` makes per request while serving `secs` seconds of
    BENCH_SIZE-byte echoes over `conns` connections, counted by `strace -c -f` attached after a warm-up."""
    lg = warmed_loadgen(ep, conns)
    tracer = subprocess.Popen(
        ["strace", "-c", "-f", "-o", str(out), "-p", str(srv.pid)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert tracer.stderr is not None
    # strace says "Process N attached" for each thread once it traces them.
    tracer.stderr.readline()
    res = json.loads(
        subprocess.run([*lg, "--secs", str(secs)], capture_output=True, text=True,
                       check=True).stdout.strip().splitlines()[-1]
    )  # fmt: skip
    tracer.send_signal(signal.SIGINT)  # detaches and writes the summary
    tracer.wait()
    calls: dict[str, int] = {}
    for line in out.read_text().splitlines():
        # "% time  seconds  usecs/call  calls  [errors]  syscall", the errors column may be blank
        parts = line.split()
        if len(parts) >= 5 and parts[0][:1].isdigit() and not parts[-1].startswith("total"):
            calls[parts[-1]] = int(parts[3])
    print_syscalls(name, conns, res["requests"], calls)


def count_syscalls_perf(
    name: str, srv: subprocess.Popen[bytes], ep: bench.Endpoint, secs: float, conns: int, out: Path
) -> None:
    """As `count_syscalls`, counted by `perf stat` on the `syscalls:sys_enter_*` tracepoints
    (the server is not stopped at each call, so its batching is a real run's)."""
    lg = warmed_loadgen(ep, conns)
    tracer = subprocess.Popen(
        ["perf", "stat", "-x,", "-o", str(out), "-e", "syscalls:sys_enter_*", "-p", str(srv.pid)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # perf prints nothing once it counts; the idle server makes no calls meanwhile, so a
    # generous pause before the load loses nothing and adds nothing.
    time.sleep(2)
    res = json.loads(
        subprocess.run([*lg, "--secs", str(secs)], capture_output=True, text=True,
                       check=True).stdout.strip().splitlines()[-1]
    )  # fmt: skip
    tracer.send_signal(signal.SIGINT)  # stops counting and writes the counts
    tracer.wait()
    calls: dict[str, int] = {}
    for line in out.read_text().splitlines():
        # "count,unit,syscalls:sys_enter_NAME,..."; "<not counted>" where it could not count
        parts = line.split(",")
        if len(parts) >= 3 and parts[0].isdigit() and parts[2].startswith("syscalls:sys_enter_"):
            calls[parts[2].removeprefix("syscalls:sys_enter_")] = int(parts[0])
    if not calls:
        raise SystemExit(f"{name}: perf counted no syscalls (permission? {out.read_text()[:200]})")
    print_syscalls(name, conns, res["requests"], calls)


def print_syscalls(name: str, conns: int, n: int, calls: dict[str, int]) -> None:
    """Prints the syscalls per request, in total and the six most frequent by name."""
    if not n:
        raise SystemExit(f"{name}: no request served")
    calls = {s: c for s, c in calls.items() if c}
    total = sum(calls.values())
    top = ", ".join(f"{c / n:.2f} {s}" for s, c in sorted(calls.items(), key=lambda x: -x[1])[:6])
    print(f"{name + f' x{conns}':>24} {total / n:6.2f} syscalls/request ({n} requests): {top}")


def main() -> int:
    args = sys.argv[1:]
    transport = os.environ.get("BENCH_TRANSPORT", "tcp")
    if args[:1] == ["--transport"] and len(args) >= 2:
        transport, args = args[1], args[2:]
    elif args[:1] and args[0].startswith("--transport="):
        transport, args = args[0].split("=", 1)[1], args[1:]
    syscalls = next((a.removeprefix("--syscalls") for a in args if a.startswith("--syscalls")), None)
    if syscalls not in (None, "", "=strace", "=perf"):
        print(f"instructions.py: --syscalls{syscalls}: strace or perf", file=sys.stderr)
        return 2
    syscalls = None if syscalls is None else syscalls.removeprefix("=") or "strace"
    args = [a for a in args if not a.startswith("--syscalls")]
    tools = [syscalls] if syscalls else ["valgrind", "callgrind_control"]
    if not all(shutil.which(t) for t in tools):
        print(f"instructions.py: {' and '.join(tools)} are needed", file=sys.stderr)
        return 2
    if transport not in ("tcp", "udp"):
        print(f"instructions.py: transport {transport!r} is not tcp or udp", file=sys.stderr)
        return 2
    names = args or DEFAULT
    key, lacks = bench.ARGV_KEYS[transport]
    for name in names:
        if name not in bench.SERVERS:
            print(f"instructions.py: unknown server {name!r}", file=sys.stderr)
            return 2
        if key not in bench.SERVERS[name]:
            print(f"instructions.py: {name} has no {lacks}", file=sys.stderr)
            return 2
    secs = float(os.environ.get("BENCH_SECS", "5"))
    conns = [int(c) for c in os.environ.get("BENCH_CONNS", "1 10").replace(",", " ").split()]
    top = int(os.environ.get("TOP", "0"))
    for c in conns:
        for name in names:
            measure(name, transport, secs, c, top, syscalls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
