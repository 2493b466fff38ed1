"""The benchmark prints every metric it measures (bench/__main__.py ORDER lists the table's rows)."""
from __future__ import annotations

import re
from pathlib import Path

from bench.__main__ import ORDER

ROOT = Path(__file__).resolve().parent.parent


def test_every_metric_the_runner_measures_is_a_row_of_the_table():
    source = (ROOT / "bench" / "runner.py").read_text(encoding="utf-8")
    literal = set(re.findall(r'(?:self\.measure|Result|self\.missing)\(\s*"(\w+)"', source))
    # (name, "blueprint.endpoint") or (name, "/path") pairs measured in a loop
    looped = set(re.findall(r'\("(\w+)",\s*(?:"\w+\.\w+"|"/)', source)) - {"GET", "POST"}
    formatted = {f"export_{fmt}_50k" for fmt in ("csv", "xlsx")} if 'f"export_{fmt}_50k"' in source else set()
    measured = literal | looped | formatted
    assert {"dashboard_records", "follow_ups_mine", "follow_ups_overdue", "export_csv_50k",
            "dashboard_unfiltered_after_write"} <= measured
    assert sorted(measured - set(ORDER)) == []


def test_the_calibration_times_both_fixed_workloads_in_a_fresh_interpreter():
    from bench.__main__ import calibrate

    got = calibrate()
    assert set(got) == {"python_ms", "sqlite_ms"}, got
    assert all(isinstance(v, float) and v > 0 for v in got.values())
