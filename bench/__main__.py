"""python -m bench [--scales 0.01,0.1] [--engines sqlite,postgresql] [--seed 1] [--quick]

Prints one table and merges the results into bench/results.json (keyed by engine and scale, sorted keys).
SQLite data sets are cached under $CRM_BENCH_CACHE (default instance/bench-cache, git-ignored) by scale, seed
and a hash of the migrations and the generator; PostgreSQL runs on a throwaway server (tests/pgserver.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import runner  # noqa: E402

ORDER = ["dashboard_unfiltered", "dashboard_filtered", "dashboard_unfiltered_after_visit",
         "dashboard_filtered_after_visit", "dashboard_unfiltered_after_new_visit",
         "dashboard_filtered_after_new_visit", "dashboard_unfiltered_after_event_edit",
         "dashboard_filtered_after_event_edit", "dashboard_unfiltered_after_event_status",
         "dashboard_filtered_after_event_status", "dashboard_unfiltered_after_planned_event_edit",
         "dashboard_filtered_after_planned_event_edit", "dashboard_unfiltered_after_write",
         "dashboard_filtered_after_write", "firms_page_1", "firms_page_1000", "firm_search",
         "firm_detail", "events_list", "credit_list", "follow_ups_mine", "follow_ups_overdue", "dashboard_records",
         "visits_list", "visit_save", "export_csv_50k", "export_xlsx_50k", "import_firms_10k", "mixed_read_rps"]


def machine_info(pg_version: str | None) -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(), "memory_gib": mem,
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "postgresql": pg_version,
            "platform": platform.platform(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def calibrate() -> dict:
    """``bench.calibrate`` in a fresh interpreter: the machine's speed, not this process's (at the end of a run the
    same pure-Python workload took 47 ms in the benchmark's process, with the collector off, against 29 at its
    start: a heap of millions of objects slows allocation)."""
    try:
        out = subprocess.run([sys.executable, "-m", "bench.calibrate"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120, check=True)
        return json.loads(out.stdout)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return {"error": str(exc)[:200]}


def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def print_table(runs: list[dict]) -> str:
    lines = []
    head = f"{'metric':<32} {'engine':<10} {'scale':>5} {'median ms':>10} {'p95 ms':>10} {'n':>4} {'SQL':>5} " \
           f"{'target':>8}  notes"
    lines += [head, "-" * len(head)]
    for name in ORDER:
        for run in runs:
            r = run["results"].get(name)
            if r is None:
                continue
            notes = []
            if r["status"] != "ok":
                notes.append(r["status"])
            for key in ("rows", "page_to_sql_ratio", "rss_growth_mib", "rps", "errors", "page_reached", "bytes"):
                if r.get(key) is not None:
                    notes.append(f"{key}={r[key]}")
            target = r.get("target_p95_ms") or (f"{r['target_rps']}/s" if r.get("target_rps") else "")
            lines.append(f"{name:<32} {run['engine']:<10} {run['scale']:>5g} {fmt_ms(r.get('median_ms')):>10} "
                         f"{fmt_ms(r.get('p95_ms')):>10} {r.get('n', 0):>4} {r.get('sql_statements') or '-':>5} "
                         f"{target!s:>8}  {' '.join(notes)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="0.01,0.1", help="comma-separated; scale 1 is the issue's target size")
    ap.add_argument("--engines", default="sqlite,postgresql")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions per page (bounded by --budget)")
    ap.add_argument("--budget", type=float, default=12.0, help="seconds per page at most")
    ap.add_argument("--mixed-seconds", type=float, default=15.0)
    ap.add_argument("--no-mixed", action="store_true", help="skip the gunicorn mixed workload")
    ap.add_argument("--no-writes", action="store_true", help="skip visit save, exports and import")
    ap.add_argument("--import-rows", type=int, default=10_000,
                    help="rows of the firm ledger import (the target is for 10,000; smaller runs are extrapolated "
                         "in the notes, not in the number)")
    ap.add_argument("--only", default="",
                    help="comma-separated metric names or prefixes to run (e.g. firm,visit_save); default: all")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    ap.add_argument("--cache-dir", default=os.environ.get("CRM_BENCH_CACHE", str(ROOT / "instance" / "bench-cache")))
    args = ap.parse_args(argv)
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid> prints every thread's stack (a stuck page)
    scales = [float(s) for s in args.scales.split(",") if s.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]

    def log(msg):
        print(msg, flush=True)

    pg = None
    pg_version = None
    runs = []
    work_dir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    try:
        if "postgresql" in engines:
            from tests.pgserver import PgServer, reason_unavailable

            why = reason_unavailable()
            if why:
                log(f"PostgreSQL skipped: {why}")
                engines.remove("postgresql")
            else:
                pg = PgServer()
                pg.start()
                out = subprocess.run([str(pg.bin_dir / "postgres"), "--version"], capture_output=True, text=True)
                pg_version = out.stdout.strip()
        info = machine_info(pg_version)
        log(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']}, "
            f"SQLite {info['sqlite']}, {pg_version or 'no PostgreSQL'}; load {info['load_average_at_start']}")
        info["calibration_at_start"] = calibrate()
        log(f"calibration at the start: {info['calibration_at_start']}")
        for scale in scales:
            for engine in engines:
                log(f"== {engine} scale {scale:g}")
                t0 = time.perf_counter()
                if engine == "sqlite":
                    url, meta = runner.prepare_sqlite(scale, args.seed, Path(args.cache_dir).resolve(), work_dir, log)
                else:
                    name = f"bench_{str(scale).replace('.', '_')}_{args.seed}"
                    url = pg.create_database(name)
                    log(f"  postgresql scale {scale}: generating")
                    meta = runner.migrate_and_generate(url, scale, args.seed, log)
                    meta["cached"] = False
                log(f"  data ready in {time.perf_counter() - t0:.1f} s "
                    f"(generator {meta['generate_s']} s wall, {meta['generate_cpu_s']} s CPU, {meta['rows']} rows)")
                b = runner.Bench(url, engine, scale, args.seed, log, reps=args.reps, budget_s=args.budget,
                                 only=[o.strip() for o in args.only.split(",") if o.strip()])
                b.run_reads()
                if not args.no_writes:
                    b.run_visit_save()
                    b.run_exports()
                    b.run_import(args.import_rows)
                if not args.no_mixed:
                    b.run_mixed(seconds=args.mixed_seconds)
                runs.append({"engine": engine, "scale": scale, "seed": args.seed, "data": meta,
                             "results": {k: v.as_dict() for k, v in sorted(b.results.items())}})
                if engine == "postgresql":
                    pg.drop_database(name)
        info["calibration_at_end"] = calibrate()
    finally:
        if pg is not None:
            pg.stop()
        import shutil

        shutil.rmtree(work_dir, ignore_errors=True)

    table = print_table(runs)
    print()
    print(table)
    if "calibration_at_end" in info:
        print(f"\ncalibration (ms, median of 5): at the start {info['calibration_at_start']}, "
              f"at the end {info['calibration_at_end']}")
    out = Path(args.out)
    previous = {}
    if out.exists():
        try:
            previous = json.loads(out.read_text())
        except ValueError:
            previous = {}
    merged = {f"{r['engine']}@{r['scale']:g}": r for r in previous.get("runs", {}).values()} \
        if isinstance(previous.get("runs"), dict) else {}
    run_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for r in runs:
        key = f"{r['engine']}@{r['scale']:g}"
        if args.only and key in merged:
            # a partial run (--only) replaces just the metrics it measured, each stamped with its own run
            results = dict(merged[key].get("results", {}))
            for name, res in r["results"].items():
                results[name] = dict(res, run_at=run_at, machine_load_at_start=info["load_average_at_start"],
                                     machine_calibration=info.get("calibration_at_start"))
            merged[key] = dict(merged[key], results=dict(sorted(results.items())))
        else:
            merged[key] = dict(r, machine=info, run_at=run_at)
    out.write_text(json.dumps({"runs": dict(sorted(merged.items())),
                               "about": "make bench; see docs/performance.md"},
                              sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    print(f"\nresults merged into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
