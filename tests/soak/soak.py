#!/usr/bin/env python3
"""The echo soak: many concurrent connections echoing through a polyio server (the C, Python
and Node examples) for a set time, every byte verified by polyio-loadgen, the server's RSS
and open fds sampled every second. Writes soak.json and soak.svg (RSS and fds over time).

    soak.py [--conns N] [--secs S] [--size B] [--servers c,python,node] [--out DIR]

Servers: c, python, node (polyio's echo examples); asyncio and node-net (the same job
without polyio, as baselines for RSS). SOAK_C_SERVER and SOAK_LOADGEN override the paths of
the C server and the load generator (release builds by default).

Raises RLIMIT_NOFILE for itself and its children (the servers hold one fd per connection,
the load generator another). Exit status 0 when every server echoed without an error or a
mismatch, returned to its fd count after the connections closed, and stopped cleanly.
"""

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent.parent


def server_cmd(name: str) -> List[str]:
    if name == "c":
        c_server = os.environ.get("SOAK_C_SERVER", str(ROOT / "build/release/examples/echo_server"))
        return [c_server, "--quiet", "127.0.0.1", "0"]
    if name == "python":
        return [str(ROOT / ".venv/bin/python"), str(ROOT / "examples/python/echo_server.py"), "127.0.0.1", "0"]
    if name == "node":
        return [os.environ.get("NODE", "node"), str(ROOT / "examples/node/echo_server.js"), "127.0.0.1", "0"]
    # Reference peers doing the same job without polyio: what their RSS does is the baseline.
    if name == "asyncio":
        return [str(ROOT / ".venv/bin/python"), str(ROOT / "tests/bench/py_echo.py"), "asyncio-streams", "127.0.0.1", "0"]
    if name == "node-net":
        return [os.environ.get("NODE", "node"), str(ROOT / "tests/bench/node_net_echo.js"), "127.0.0.1", "0"]
    raise SystemExit(f"unknown server {name!r} (c, python, node; references: asyncio, node-net)")


def raise_fd_limit(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def rss_kb(pid: int) -> Optional[int]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid: int) -> Optional[int]:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def listening_port(server: "subprocess.Popen[str]", name: str) -> int:
    """The port in the first line an echo example prints ("... listening on HOST:PORT");
    without one, kills the server and exits with what it printed."""
    assert server.stdout is not None
    line = server.stdout.readline()
    m = re.search(r"listening on [^ ]*:(\d+)", line)
    if not m:
        server.kill()
        raise SystemExit(f"{name}: no 'listening on' line: {line!r} {server.stdout.read()}")
    return int(m.group(1))


def soak_one(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    server = subprocess.Popen(server_cmd(name), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port = listening_port(server, name)
    tail: List[str] = []
    drain = threading.Thread(target=lambda: tail.extend(server.stdout or []), daemon=True)
    drain.start()
    time.sleep(0.5)
    fds_before = fd_count(server.pid)
    samples: List[Dict[str, Any]] = []
    start = time.monotonic()
    loadgen = subprocess.Popen(
        [
            os.environ.get("SOAK_LOADGEN", str(ROOT / "target/release/polyio-loadgen")),
            "--port", str(port),
            "--conns", str(args.conns),
            "--size", str(args.size),
            "--secs", str(args.secs),
            "--warmup-secs", "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while loadgen.poll() is None:
        samples.append({"t": round(time.monotonic() - start, 1), "rss_kb": rss_kb(server.pid), "fds": fd_count(server.pid)})
        time.sleep(1.0)
    out, err = loadgen.communicate()
    try:
        result = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = {"error": f"no JSON from the load generator: {out!r} {err!r}"}
    # The connections are closed: the server's fd count comes back (allow it a few seconds).
    fds_after = fd_count(server.pid)
    for _ in range(50):
        if fds_after is not None and fds_before is not None and fds_after <= fds_before:
            break
        time.sleep(0.1)
        fds_after = fd_count(server.pid)
    server.send_signal(signal.SIGTERM)
    try:
        server_status: Optional[int] = server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server_status = None
    drain.join(timeout=2)
    rss = [s["rss_kb"] for s in samples if s["rss_kb"]]
    # After warm-up (the first quarter, at least 3 s): the spread of RSS in % of its first value.
    warm = [s["rss_kb"] for s in samples if s["rss_kb"] and s["t"] >= max(3.0, args.secs / 4)]
    growth = (max(warm) - warm[0]) * 100.0 / warm[0] if len(warm) > 1 else None
    peak_fds = max((s["fds"] or 0) for s in samples) if samples else None
    report = {
        "server": name,
        "conns": args.conns,
        "size": args.size,
        "secs": args.secs,
        "loadgen": result,
        "loadgen_status": loadgen.returncode,
        "fds_before": fds_before,
        "fds_peak": peak_fds,
        "fds_after": fds_after,
        "leaked_fds": (fds_after - fds_before) if fds_after is not None and fds_before is not None else None,
        "rss_kb_peak": max(rss) if rss else None,
        "rss_growth_after_warmup_pct": round(growth, 2) if growth is not None else None,
        "server_status": server_status,
        "server_tail": "".join(tail)[-500:],
        "samples": samples,
    }
    report["ok"] = (
        loadgen.returncode == 0
        and result.get("errors", 1) == 0
        and report["leaked_fds"] == 0
        and server_status == 0
    )
    return report


def svg_chart(
    reports: List[Dict[str, Any]],
    key: str,
    label: str,
    scale: float,
    title: Optional[str] = None,
    colors: Optional[Dict[str, str]] = None,
) -> str:
    """A small line chart of `key` over time, one line per server (`title` replaces the
    default "LABEL over time (N connections)"; `colors` maps server names to colours)."""
    w, h, pad = 640, 280, 50
    if colors is None:
        colors = {"c": "#1f77b4", "python": "#2ca02c", "node": "#d62728", "asyncio": "#98df8a", "node-net": "#ff9896"}
    if title is None:
        title = f"{label} over time ({reports[0]['conns']} connections)"
    pts = [(s["t"], (s[key] or 0) / scale) for r in reports for s in r["samples"]]
    tmax = max((t for t, _ in pts), default=1) or 1
    vmax = max((v for _, v in pts), default=1) * 1.1 or 1
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="18" text-anchor="middle">{title}</text>',
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="30" x2="{pad}" y2="{h - pad}" stroke="black"/>',
        f'<text x="{w / 2}" y="{h - 15}" text-anchor="middle">seconds</text>',
    ]
    for i in range(5):
        v = vmax * i / 4
        y = h - pad - (h - pad - 30) * i / 4
        out.append(f'<text x="{pad - 4}" y="{y + 4:.0f}" text-anchor="end">{v:.0f}</text>')
        t = tmax * i / 4
        x = pad + (w - pad - 10) * i / 4
        out.append(f'<text x="{x:.0f}" y="{h - pad + 15}" text-anchor="middle">{t:.0f}</text>')
    for n, r in enumerate(reports):
        line = " ".join(
            f"{pad + (w - pad - 10) * s['t'] / tmax:.1f},{h - pad - (h - pad - 30) * ((s[key] or 0) / scale) / vmax:.1f}"
            for s in r["samples"]
        )
        color = colors.get(r["server"], "black")
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{line}"/>')
        out.append(f'<text x="{w - 80}" y="{40 + 15 * n}" fill="{color}">{r["server"]}</text>')
    out.append("</svg>")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--secs", type=float, default=600)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--servers", default="c,python,node")
    ap.add_argument("--out", default=str(ROOT / "target/soak"))
    args = ap.parse_args()
    limit = raise_fd_limit(2 * args.conns + 1024)
    print(f"soak: {args.conns} connections x {args.secs:g} s, {args.size}-byte echoes, fd limit {limit}")
    reports = []
    for name in args.servers.split(","):
        r = soak_one(name, args)
        lg = r["loadgen"]
        print(
            f"{name:7} requests {lg.get('requests')} bytes {lg.get('bytes')} errors {lg.get('errors')} "
            f"loadgen status {r['loadgen_status']} | RSS peak {r['rss_kb_peak']} KiB, growth after warm-up "
            f"{r['rss_growth_after_warmup_pct']}% | fds {r['fds_before']} -> peak {r['fds_peak']} -> "
            f"{r['fds_after']} (leaked {r['leaked_fds']}) | server exit {r['server_status']} | "
            f"{'ok' if r['ok'] else 'FAILED'}"
        )
        reports.append(r)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(reports, indent=1))
    (out / "soak.svg").write_text(svg_chart(reports, "rss_kb", "Server RSS (MiB)", 1024.0))
    (out / "soak-fds.svg").write_text(svg_chart(reports, "fds", "Server open fds", 1.0))
    print(f"wrote {out / 'soak.json'}, {out / 'soak.svg'}, {out / 'soak-fds.svg'}")
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
