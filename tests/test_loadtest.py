"""Load with faults, briefly, in CI (issue 7, item 9): scripts/loadtest.py under gunicorn (2 workers), 4 clients
for 8 s editing visits, importing ledgers (upload, preview, commit) and exporting lists, one worker SIGKILLed
midway, on SQLite and on the throwaway PostgreSQL. The script checks its own invariants (no 500, no "database is
locked", no lost or duplicated edit, no half-applied import, every firm account created and audited once, the
worker replaced) and prints its figures; this test fails when it reports a problem.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
    assert figures["problems"] == [], figures
    assert result.returncode == 0
    assert figures["killed_worker"] and figures["replacement_workers"]
    assert figures["status"].get("500", 0) == 0 and figures["database_is_locked"] == 0
    assert figures["edits"]["acknowledged"] > 0
    assert figures["imports"]["acknowledged"] > 0  # ledgers really went through preview and commit


def test_a_response_whose_body_breaks_off_is_uncertain_even_a_redirect():
    """The killed worker may die while a redirect (an edit's 302, raised by urllib as HTTPError under NoRedirect) is
    being read: that request is uncertain, not an exception that silently stops the client (CI once saw a client
    stop after its edit was committed, which the invariants then reported as an edit it never made)."""
    import io
    import urllib.error

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import loadtest
    finally:
        sys.path.remove(str(ROOT / "scripts"))

    class Breaks(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            raise ConnectionResetError("worker killed")

    client = loadtest.Client(1, "http://127.0.0.1:9", {}, loadtest.Stats())
    redirect = urllib.error.HTTPError("http://127.0.0.1:9/visits/1/edit", 302, "Found", {},
                                      io.BufferedReader(Breaks()))

    def open_(req, timeout=None):
        raise redirect

    client.opener.open = open_
    assert client.request("POST", "/visits/1/edit", {"next_step": "x"}, op="visit-edit") == (None, "", {})
