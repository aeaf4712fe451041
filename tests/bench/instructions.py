#!/usr/bin/env python3
"""User-space instructions per request of echo servers, counted by valgrind's callgrind.

    python3 tests/bench/instructions.py [--transport tcp|udp] [SERVER ...]
                                          (default: tcp and the four Python servers)

Req/s and CPU time on a shared VM move by tens of percent between runs (hypervisor steal,
neighbours); an instruction count does not. Each server from tests/bench/run.py's SERVERS
runs under callgrind, is warmed up by the load generator, has its counters zeroed, serves
BENCH_SECS (default 5) seconds of 1 KiB echoes over BENCH_CONNS (default 10) connections
(with `--transport udp`, or BENCH_TRANSPORT=udp: datagrams from as many sockets, to its
argv_udp twin), and has its counters dumped: the result is the instructions it executed per request, in
total and by shared object, plus the top functions with TOP=N. Under callgrind a server runs
~50x slower, so batching per wakeup differs from a real run: use it to compare designs and
find costs, and `make bench` for speed. Kernel work is not counted. Needs valgrind.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

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


def measure(name: str, transport: str, secs: float, conns: int, top: int) -> None:
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
        with log.open("wb") as logf:
            srv = subprocess.Popen(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            bench.READY_TIMEOUT_S = max(bench.READY_TIMEOUT_S, 60)  # valgrind starts slowly
            bench.wait_ready(srv, ep, log)
            lg = [str(bench.ROOT / "target/release/polyio-loadgen"), *ep.loadgen_args(),
                  "--conns", str(conns), "--size", "1024", "--warmup-secs", "0"]  # fmt: skip
            subprocess.run([*lg, "--secs", "1"], stdout=subprocess.DEVNULL, check=True)
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
    by_obj: collections.Counter[str] = collections.Counter()
    for f, c in costs.items():
        by_obj[Path(fn_obj.get(f, "?")).name] += c
    print(f"{name:>20} {sum(costs.values()) / n:9.0f} instructions/request ({n} requests)")
    for o, c in by_obj.most_common(5):
        print(f"{'':>22}{c / n:9.0f}  {o}")
    for f, c in costs.most_common(top):
        print(f"{'':>26}{c / n:7.0f}  {f[:100]}")


def main() -> int:
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("instructions.py: valgrind (with callgrind_control) is needed", file=sys.stderr)
        return 2
    args = sys.argv[1:]
    transport = os.environ.get("BENCH_TRANSPORT", "tcp")
    if args[:1] == ["--transport"] and len(args) >= 2:
        transport, args = args[1], args[2:]
    elif args[:1] and args[0].startswith("--transport="):
        transport, args = args[0].split("=", 1)[1], args[1:]
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
    conns = int(os.environ.get("BENCH_CONNS", "10"))
    top = int(os.environ.get("TOP", "0"))
    for name in names:
        measure(name, transport, secs, conns, top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
