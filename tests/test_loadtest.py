"""Load with faults, briefly, in CI (issue 7, item 9): scripts/loadtest.py under gunicorn (2 workers), 4 clients
for 8 s, one worker SIGKILLed midway, on SQLite and on the throwaway PostgreSQL. The script checks its own
invariants (no 500, no "database is locked", no lost or duplicated edit, the worker replaced) and prints its
figures; this test fails when it reports a problem.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: operation -> reason: a known 500 of another owner's route; the run is xfailed when it is the only problem
KNOWN_500 = {
    "visit-edit": "POST /visits/<id>/edit (visits.edit) -> crm.visits.services.refresh_account -> "
                  "crm.firms.services.ensure_account: concurrent edits race on the check-then-insert of FirmAccount and "
                  "hit UniqueViolation uq_firm_account_bank_id_firm_id, a 500 on PostgreSQL (SECURITY.md DB-6)",
}


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_load_with_a_killed_worker_loses_nothing(engine):
    if os.environ.get("CRM_TEST_DB") == "postgres":
        pytest.skip("runs on both engines in the default (SQLite) run already")
    if engine == "postgresql":
        from tests.pgserver import require_pg

        require_pg()
    result = subprocess.run([sys.executable, "scripts/loadtest.py", "--db", engine, "--duration", "8",
                             "--clients", "4"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    lines = [line for line in result.stdout.splitlines() if line.startswith("LOADTEST ")]
    assert lines, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads(lines[-1][len("LOADTEST "):])
    print(result.stdout.splitlines()[-1])
    known = set(figures.get("server_errors_by_operation", {})) & set(KNOWN_500)
    only_known_500s = (known and set(figures["server_errors_by_operation"]) <= set(KNOWN_500)
                       and all(p.startswith(f"{figures['status'].get('500')} responses were 500")
                               for p in figures["problems"]))
    if only_known_500s:
        pytest.xfail("; ".join(KNOWN_500[op] for op in sorted(known)))
    assert figures["problems"] == [], figures
    assert result.returncode == 0
    assert figures["killed_worker"] and figures["replacement_workers"]
    assert figures["edits"]["acknowledged"] > 0 and figures["status"].get("500", 0) == 0
