"""Run every benchmark (each against its own baseline in the same run), print the ratios, and
write them as a table to bench/RESULTS.md with the machine and the date.

    python bench/run_all.py [--quick] [--no-servers] [--out bench/RESULTS.md]

`make bench` runs this. It takes a few minutes (under 10 on the 2-core test machine);
--quick uses smaller samples. --no-servers skips the runs on PostgreSQL + Redis + RabbitMQ
(otherwise they are expected on 127.0.0.1, as on the dev/CI machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def run(script: str, *args: str, timeout: float = 600) -> dict[str, Any]:
    """One benchmark with --json; its figures, or {'error': ...} (the others still run)."""
    cmd = [sys.executable, str(BENCH / script), *args, "--json"]
    print(f"bench: {script} {' '.join(args)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {res.returncode}: {' / '.join(tail)}"}
    try:
        figures = json.loads(res.stdout[res.stdout.index("{"):])
    except ValueError:
        return {"error": "no JSON in its output"}
    figures["_seconds"] = round(time.monotonic() - started, 1)
    return figures


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}){mem}, Python {platform.python_version()}, " \
           f"{platform.system()} {platform.release()}"


Row = tuple[str, str, str, str]  # what, figure, baseline, ratio


def rows(results: dict[str, dict[str, Any]]) -> list[Row]:
    out: list[Row] = []

    def add(key: str, fn: Callable[[dict[str, Any]], list[Row]]) -> None:
        r = results.get(key)
        if r is None:
            return
        if "error" in r:
            out.append((key, f"failed: {r['error']}", "", ""))
            return
        out.extend(fn(r))

    add("triage", lambda r: [
        ("triage engine (rules + learned model), µs/signal", f"{r['engine_us_per_message']:.0f} µs "
         f"({r['engine_messages_per_second']}/s)", f"naive re.search loop {r['naive_us_per_message']:.0f} µs",
         f"{r['speedup_vs_naive']}x faster"),
        ("triage rules: RE2 set prefilter vs Python re per rule", f"{r['engine_us_per_message']:.0f} µs",
         f"{r['engine_without_re2_us_per_message']:.0f} µs", f"{r['prefilter_speedup']}x faster, "
         f"agreement {r['prefilter_agreement']}"),
    ])
    add("language", lambda r: [
        ("language detection (combined), µs/text; accuracy all/short",
         f"{r['detectors']['combined']['us_per_text']:.0f} µs; "
         f"{r['detectors']['combined']['accuracy']:.1%} / {r['detectors']['combined']['short_accuracy']:.1%}",
         f"langdetect alone {r['detectors']['langdetect alone']['us_per_text']:.0f} µs; "
         f"{r['detectors']['langdetect alone']['accuracy']:.1%} / "
         f"{r['detectors']['langdetect alone']['short_accuracy']:.1%}",
         f"{r['speedup_vs_langdetect']}x faster"),
    ])
    add("directory", lambda r: [
        ("referral search over the 3,200-organisation directory, searches/s",
         f"{r['directory_searches_per_s']:.0f}/s", f"naive full scan {r['naive_searches_per_s']:.0f}/s",
         f"{r['speedup_vs_naive']}x faster"),
    ])
    add("webhook", lambda r: [
        ("signed SMS webhook (gunicorn, embedded default), req/s",
         f"{r['app']['req_per_s']:.0f}/s, p50 {r['app']['p50_ms']:.1f} ms, p99 {r['app']['p99_ms']:.1f} ms",
         f"bare Flask {r['baseline']['req_per_s']:.0f}/s, p50 {r['baseline']['p50_ms']:.1f} ms, "
         f"p99 {r['baseline']['p99_ms']:.1f} ms",
         f"throughput {r['ratio']['throughput_app_over_baseline']}x, "
         f"p50 {r['ratio']['p50_app_over_baseline']}x"),
    ])
    for key, label in (("route_embedded", "embedded default"), ("route_servers", "PostgreSQL + Redis + RabbitMQ")):
        add(key, lambda r, label=label: [
            (f"crisis accepted -> routed ({label}), under {r['background_signals']} background signals",
             f"p50 {r['loaded_p50_ms']} ms, p99 {r['loaded_p99_ms']} ms",
             f"idle p50 {r['idle_p50_ms']} ms, p99 {r['idle_p99_ms']} ms",
             f"{r['loaded_vs_idle_p50']}x idle p50"),
        ])
    e, s = results.get("route_embedded", {}), results.get("route_servers", {})
    if "idle_p50_ms" in e and "idle_p50_ms" in s:
        out.append(("crisis accepted -> routed: real servers vs embedded (idle p50)", f"{s['idle_p50_ms']} ms",
                    f"{e['idle_p50_ms']} ms", f"{s['idle_p50_ms'] / max(e['idle_p50_ms'], 0.001):.2f}x"))
    return out


def markdown(results: dict[str, dict[str, Any]], started: datetime, took: float) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`bench/run_all.py`) on {started:%Y-%m-%d %H:%M} UTC, in {took:.0f} s.",
        "",
        f"Machine: {machine()}.",
        "",
        "Every figure is measured against a baseline in the same run: these machines are small and",
        "noisy, so compare the ratios between runs, not the absolute figures.",
        "",
        "| what | figure | baseline (same run) | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(results)]
    lines += ["", "Raw figures:", "", "```json", json.dumps(results, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller samples (a minute or two)")
    ap.add_argument("--no-servers", action="store_true", help="skip the runs on PostgreSQL/Redis/RabbitMQ")
    ap.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    args = ap.parse_args()
    started, t0 = datetime.now(UTC), time.monotonic()
    q = args.quick
    results: dict[str, dict[str, Any]] = {
        "triage": run("triage.py", "--repeat", "1" if q else "3"),
        "language": run("language.py", "--rounds", "1" if q else "3"),
        "directory": run("directory.py", "--queries", "300" if q else "2000", "--repeat", "1" if q else "3"),
        "webhook": run("webhook.py", "--requests", "200" if q else "1200", "--warmup", "50" if q else "100"),
        "route_embedded": run("route.py", "--crisis", "10" if q else "40", "--background", "60" if q else "400"),
    }
    if not args.no_servers:
        results["route_servers"] = run("route.py", "--backend", "servers", "--crisis", "10" if q else "40",
                                       "--background", "60" if q else "400")
    took = time.monotonic() - t0
    args.out.write_text(markdown(results, started, took), encoding="utf-8")
    print(f"\n{'what':<78} ratio")
    for what, figure, baseline, ratio in rows(results):
        print(f"{what:<78} {ratio}\n    {figure}  vs  {baseline}")
    print(f"\nwritten to {args.out} ({took:.0f} s)")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
