#!/usr/bin/env python3
"""Slow readers and memory: a server writes N MiB in fixed chunks to a client that does not
read, then the client reads everything. The writer's RSS is sampled every ~50 ms beside the
bytes it handed over, for polyio's Python streams and protocols, asyncio and uvloop (streams
and protocols), polyio's Node binding and Node's net.

Mode `ignore` writes every chunk without waiting (write() in a loop, no drain()): memory
should grow by what the caller handed over and the kernel did not take, not several times
that, and come back once the client has read it all. Mode `drain` awaits drain() /
resume_writing / the write promise / 'drain' after each write: memory should stay flat near
the high-water mark while the client does not read.

    slow_reader.py [--mib 64] [--chunk 64] [--hold 1.0] [--modes ignore,drain]
                   [--servers polyio-streams,...] [--out target/bench]

Writes slow_reader.json, slow_reader.md (the table) and slow_reader.svg (RSS over time in
mode ignore, one line per server). Memory figures do not depend on the machine's load.
Python writers run under .venv/bin/python (PYTHON overrides), Node writers under node (NODE).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/soak"))
import soak  # noqa: E402  (its RSS reader and its SVG line chart)

HERE = Path(__file__).resolve().parent / "slow_reader"
PY = os.environ.get("PYTHON", str(ROOT / ".venv/bin/python"))
NODE = os.environ.get("NODE", "node")

# name -> (short label for the chart, colour)
SERVERS = {
    "polyio-streams": ("polyio st", "#2ca02c"),
    "polyio-protocol": ("polyio pr", "#98df8a"),
    "asyncio-streams": ("asyncio st", "#1f77b4"),
    "asyncio-protocol": ("asyncio pr", "#aec7e8"),
    "uvloop-streams": ("uvloop st", "#9467bd"),
    "uvloop-protocol": ("uvloop pr", "#c5b0d5"),
    "polyio-node": ("polyio node", "#d62728"),
    "node-net": ("node net", "#ff7f0e"),
}
MIB = 1 << 20


def writer_argv(name: str, mode: str, mib: int, chunk: int) -> list[str]:
    if name == "polyio-node":
        return [NODE, str(HERE / "writer.js"), "polyio", mode, str(mib), str(chunk)]
    if name == "node-net":
        return [NODE, str(HERE / "writer.js"), "net", mode, str(mib), str(chunk)]
    args = ["--impl", name, "--mode", mode, "--mib", str(mib), "--chunk", str(chunk)]
    return [PY, str(HERE / "writer.py"), *args]


def check(data: bytes, offset: int, chunk: int) -> bool:
    """Whether `data`, read at stream offset `offset`, is what the writer wrote there (chunk
    i is the byte i % 251, repeated)."""
    pos = 0
    while pos < len(data):
        i = (offset + pos) // chunk
        end = min(len(data), (i + 1) * chunk - offset)
        if data[pos:end] != bytes([i % 251]) * (end - pos):
            return False
        pos = end
    return True


def run_one(name: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    chunk = args.chunk << 10
    total = (args.mib << 20) // chunk * chunk
    proc = subprocess.Popen(
        writer_argv(name, mode, args.mib, args.chunk),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    if first[:1] != ["port"]:
        proc.kill()
        raise RuntimeError(f"{name}: no port from the writer: {first} {proc.stderr.read() if proc.stderr else ''}")
    port = int(first[1])
    t0 = time.monotonic()
    samples: list[dict[str, Any]] = []
    events: dict[str, float] = {}
    handed: list[tuple[float, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def lines() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            w = line.split()
            with lock:
                if w[:1] == ["handed"]:
                    handed.append((float(w[2]) - t0, int(w[1])))
                elif w:
                    events[w[0]] = float(w[1]) - t0

    def sample() -> None:
        while not stop.is_set():
            rss = soak.rss_kb(proc.pid)
            with lock:
                h = handed[-1][1] if handed else 0
            samples.append({"t": round(time.monotonic() - t0, 3), "rss_kb": rss, "handed": h})
            time.sleep(0.05)

    threads = [threading.Thread(target=lines, daemon=True), threading.Thread(target=sample, daemon=True)]
    for t in threads:
        t.start()
    time.sleep(args.hold / 2)  # the baseline, before the connection
    baseline = min(s["rss_kb"] for s in samples if s["rss_kb"])
    client = socket.create_connection(("127.0.0.1", port))
    t_connect = time.monotonic() - t0

    # The client does not read: wait until the writer handed everything over (ignore) or
    # stopped handing over (drain, blocked), then hold a while.
    last_change, last_handed = time.monotonic(), -1
    while time.monotonic() - last_change < args.hold and time.monotonic() - t0 < 120:
        with lock:
            h = handed[-1][1] if handed else 0
            if "handed_all" in events and time.monotonic() - last_change > 0.2:
                break
        if h != last_handed:
            last_handed, last_change = h, time.monotonic()
        time.sleep(0.05)
    time.sleep(args.hold)
    t_read = time.monotonic() - t0
    with lock:
        handed_still = handed[-1][1] if handed else 0
        still = [s for s in samples if t_connect <= s["t"] <= t_read and s["rss_kb"]]

    # The client reads everything, checking every byte.
    got, ok = 0, True
    buf = bytearray(1 << 20)
    while got < total:
        n = client.recv_into(buf)
        if n == 0:
            break
        ok &= check(bytes(buf[:n]), got, chunk)
        got += n
    t_got = time.monotonic() - t0
    while "drained" not in events and time.monotonic() - t0 < t_got + 30:
        time.sleep(0.05)
    time.sleep(args.hold)
    t_end = time.monotonic() - t0
    client.close()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    stop.set()
    for t in threads:
        t.join(5)
    after = [s["rss_kb"] for s in samples if t_end - args.hold / 2 <= s["t"] <= t_end and s["rss_kb"]]
    peak_still = max((s["rss_kb"] for s in still), default=baseline)
    peak = max((s["rss_kb"] for s in samples if s["rss_kb"]), default=baseline)
    rss_after = min(after) if after else None
    growth = (peak_still - baseline) * 1024
    report = {
        "server": name,
        "mode": mode,
        "conns": 1,
        "mib": args.mib,
        "chunk_kib": args.chunk,
        "baseline_kib": baseline,
        "handed_while_still": handed_still,
        "peak_while_still_kib": peak_still,
        "growth_while_still": growth,
        "growth_per_byte_handed": round(growth / handed_still, 3) if handed_still else None,
        "peak_kib": peak,
        "after_drain_kib": rss_after,
        "kept_after_drain": (rss_after - baseline) * 1024 if rss_after else None,
        "bytes_read": got,
        "bytes_ok": ok and got == total,
        "writer_status": proc.returncode,
        "times": {"connect": t_connect, "read": t_read, "all_read": t_got, "end": t_end, **events},
        "samples": samples,
    }
    if proc.returncode != 0 and proc.stderr is not None:
        report["stderr"] = proc.stderr.read()[-2000:]
    return report


def mib(b: float | None) -> str:
    return "-" if b is None else f"{b / MIB:.1f}"


def table(reports: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in reports:
        rows.append(
            [
                r["server"],
                r["mode"],
                mib(r["baseline_kib"] * 1024),
                mib(r["handed_while_still"]),
                mib(r["growth_while_still"]),
                "-" if r["growth_per_byte_handed"] is None else f"{r['growth_per_byte_handed']:.2f}",
                mib(r["peak_kib"] * 1024),
                mib(r["kept_after_drain"]),
                "yes" if r["bytes_ok"] else "NO",
            ]
        )
    return rows


HEADER = [
    "server",
    "mode",
    "RSS before (MiB)",
    "handed over, peer still (MiB)",
    "RSS growth (MiB)",
    "growth / handed",
    "RSS peak (MiB)",
    "kept after drain (MiB)",
    "every byte",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=int(os.environ.get("SLOW_READER_MIB", 64)))
    ap.add_argument("--chunk", type=int, default=64, help="KiB per write")
    ap.add_argument("--hold", type=float, default=float(os.environ.get("SLOW_READER_HOLD", 1.0)))
    ap.add_argument("--modes", default="ignore,drain")
    ap.add_argument("--servers", default=os.environ.get("SLOW_READER_SERVERS", ",".join(SERVERS)))
    ap.add_argument("--out", default=str(ROOT / "target/bench"))
    args = ap.parse_args()
    reports = []
    for mode in args.modes.split(","):
        for name in args.servers.split(","):
            r = run_one(name, mode, args)
            print(
                f"{name:16} {mode:6} handed {mib(r['handed_while_still']):>6} MiB while the client did not read, "
                f"RSS {mib(r['baseline_kib'] * 1024)} -> peak {mib(r['peak_while_still_kib'] * 1024)} MiB "
                f"(growth {mib(r['growth_while_still'])}), after drain {mib(r['after_drain_kib'] and r['after_drain_kib'] * 1024)} MiB, "
                f"bytes {'ok' if r['bytes_ok'] else 'WRONG'}, exit {r['writer_status']}",
                flush=True,
            )
            reports.append(r)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = table(reports)
    md = [
        f"Slow reader: {args.mib} MiB in {args.chunk} KiB writes to a client that reads nothing, then everything "
        f"(`python3 tests/bench/slow_reader.py --mib {args.mib} --chunk {args.chunk}`).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]
    (out / "slow_reader.md").write_text("\n".join(md))
    (out / "slow_reader.json").write_text(json.dumps(reports, indent=1))
    ignore = [dict(r, server=SERVERS[r["server"]][0]) for r in reports if r["mode"] == "ignore"]
    if ignore:
        colors = {label: color for label, color in SERVERS.values()}
        title = f"Writer RSS (MiB), {args.mib} MiB written without waiting to a client that reads late"
        (out / "slow_reader.svg").write_text(soak.svg_chart(ignore, "rss_kb", "RSS", 1024.0, title, colors))
    print("\n".join(md))
    print(f"wrote {out / 'slow_reader.json'}, {out / 'slow_reader.md'}, {out / 'slow_reader.svg'}")
    return 0 if all(r["bytes_ok"] and r["writer_status"] == 0 for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
