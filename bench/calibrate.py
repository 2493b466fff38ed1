"""python -m bench.calibrate: the machine's speed on two fixed workloads, as JSON (ms, median of five runs).

Pure Python (a dict of strings built, sorted and summed: what rendering a page and counting rows in Python cost)
and SQLite in memory (100,000 rows inserted and grouped). Two runs of the benchmark compare only when these
compare: the same code on the same kind of machine measured 1.3x slower in one session than in the one before
(docs/performance.md 3.0). The benchmark runs this in a fresh interpreter at its start and at its end, so a
neighbour's load during a run shows as a difference between the two.
"""
from __future__ import annotations

import gc
import json
import sqlite3
import time


def _python_work():
    d = {f"firm-{i}": i % 97 for i in range(100_000)}
    return sorted(d, key=d.__getitem__)[:10], sum(len(k) for k in d)


def _sqlite_work():
    con = sqlite3.connect(":memory:")
    try:
        con.execute("CREATE TABLE v (firm INTEGER, bank INTEGER, month TEXT)")
        con.executemany("INSERT INTO v VALUES (?, ?, ?)",
                        ((i % 5_000, i % 7, f"2026-{i % 12 + 1:02d}") for i in range(100_000)))
        return con.execute("SELECT bank, month, COUNT(DISTINCT firm) FROM v GROUP BY bank, month").fetchall()
    finally:
        con.close()


def calibrate(repeats: int = 5) -> dict:
    """{"python_ms": ..., "sqlite_ms": ...}: the median of ``repeats`` runs of each workload, the collector off."""
    out = {}
    for name, work in (("python_ms", _python_work), ("sqlite_ms", _sqlite_work)):
        times = []
        for _ in range(repeats):
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                work()
                times.append((time.perf_counter() - t0) * 1000)
            finally:
                gc.enable()
        out[name] = round(sorted(times)[len(times) // 2], 1)
    return out


if __name__ == "__main__":
    print(json.dumps(calibrate()))
