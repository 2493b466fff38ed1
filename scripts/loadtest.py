"""Load with faults: the app under gunicorn (2 workers) on 127.0.0.1, N concurrent clients for a bounded time,
one worker SIGKILLed midway (gunicorn starts a new one), then the invariants are checked against the database.

    .venv/bin/python scripts/loadtest.py                       # 60 s, 20 clients, SQLite
    .venv/bin/python scripts/loadtest.py --db postgresql --duration 20 --clients 8

Each client is its own user with its own visit. It loops: sign in, home page, visit page, edit its visit
(the edit form's version and a per-client counter), the firm export (CSV), the import page and a spreadsheet
template, the language switch, the password page, sometimes a password change, sign out. A request whose
connection broke (the killed worker) is "uncertain": it may or may not have been applied.

Invariants (exit 1 when one fails):
- no 500 and no "database is locked" reached a client, and the server log has no OperationalError;
- edits neither lost nor duplicated: for each client, acknowledged <= applied (= version - 1) <= acknowledged +
  uncertain, and the stored text is the one of an edit the client made, at least the last acknowledged one;
- sign-ins and password changes likewise, counted in the append-only audit trail;
- the killed worker was replaced (2 workers again).
"""
from __future__ import annotations

import argparse
import collections
import http.client
import http.cookiejar
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORDS = ("Load-Test-Phrase-1", "Load-Test-Phrase-2")
SECRET = "loadtest-only-secret-0123456789abcdef0123456789"


def app_factory():
    """The WSGI app gunicorn runs: production settings except plain HTTP on 127.0.0.1 and a fast hash."""
    from crm import create_app

    return create_app("config.Config", {
        "SECRET_KEY": SECRET,
        "SQLALCHEMY_DATABASE_URI": os.environ["LOADTEST_DATABASE_URL"],
        "WTF_CSRF_ENABLED": True,
        "RATELIMIT_ENABLED": False,  # 20 clients share 127.0.0.1; the limits have their own tests
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
    })


# -- set-up --------------------------------------------------------------------------------------------------


def prepare_database(url: str, clients: int) -> dict:
    """Migrate and seed: one bank, one firm, and per client a user with one visit."""
    import flask_migrate

    os.environ["LOADTEST_DATABASE_URL"] = url
    app = app_factory()
    with app.app_context():
        from crm.auth import passwords
        from crm.extensions import db
        from tests import factories

        flask_migrate.upgrade()
        world = factories.World.build()
        seeded = {}
        for i in range(clients):
            user = factories.user(f"load{i:02d}", factories.Role.RM, world.branch_a, f"压测{i}")
            user.password_hash = passwords.hash_password(PASSWORDS[0])
            visit = factories.visit(world.firm, user, world.campaign, next_step="edit #0")
            seeded[i] = {"username": user.username, "user_id": user.id, "visit_id": visit.id}
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return seeded


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return sorted(out)


def wait_ready(base: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not answer /healthz")


# -- a client ------------------------------------------------------------------------------------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    def __init__(self, cid: int, base: str, seed: dict, stats: "Stats"):
        self.cid, self.base, self.seed, self.stats = cid, base, seed, stats
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect())
        self.password = PASSWORDS[0]
        self.n_edit = 0
        self.counts = collections.Counter()
        self.edits_made: list[int] = []
        self.last_acked_edit = 0
        self.rng = random.Random(cid)

    def request(self, method: str, path: str, data: dict | list | None = None, op: str = ""):
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, method=method)
        started = time.monotonic()
        try:
            with self.opener.open(req, timeout=30) as resp:
                status, text = resp.status, resp.read().decode("utf-8", "replace")
                headers = resp.headers
        except urllib.error.HTTPError as e:
            status, text, headers = e.code, e.read().decode("utf-8", "replace"), e.headers
        except (OSError, http.client.HTTPException) as e:
            self.stats.record(op or path, None, time.monotonic() - started, error=type(e).__name__)
            return None, "", {}
        self.stats.record(op or path, status, time.monotonic() - started)
        if "database is locked" in text:
            self.stats.locked += 1
        return status, text, headers

    def token(self, html: str) -> str | None:
        m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"', html)
        return (m.group(1) or m.group(2)) if m else None

    def sign_in(self) -> bool:
        status, html, _ = self.request("GET", "/login", op="login-page")
        if status != 200:
            return False
        for password in (self.password, *[p for p in PASSWORDS if p != self.password]):
            status, html2, headers = self.request("POST", "/login", {
                "username": self.seed["username"], "password": password, "csrf_token": self.token(html) or ""},
                op="login")
            if status is None:
                self.counts["login_uncertain"] += 1
                return False
            if status == 302:
                self.counts["login_ok"] += 1
                self.password = password
                return True
            status, html, _ = self.request("GET", "/login", op="login-page")
        return False

    def edit_visit(self) -> None:
        from tests.security_payloads import parse_forms

        path = f"/visits/{self.seed['visit_id']}/edit"
        status, html, _ = self.request("GET", path, op="visit-edit-page")
        if status != 200:
            return
        forms = [f for f in parse_forms(html) if f.method == "post" and "next_step" in f.fields]
        if not forms:
            self.counts["edit_form_missing"] += 1
            return
        self.n_edit += 1
        data = [(k, v) for k, v in forms[0].current if k != "next_step"]
        data.append(("next_step", f"edit #{self.n_edit}"))
        status, _, _ = self.request("POST", path, data, op="visit-edit")
        self.edits_made.append(self.n_edit)
        if status is None:
            self.counts["edit_uncertain"] += 1
        elif status == 302:
            self.counts["edit_ok"] += 1
            self.last_acked_edit = self.n_edit
        elif status == 409:
            self.counts["edit_conflict"] += 1
        else:
            self.counts[f"edit_{status}"] += 1

    def change_password(self) -> None:
        status, html, _ = self.request("GET", "/password", op="password-page")
        if status != 200:
            return
        new = PASSWORDS[1] if self.password == PASSWORDS[0] else PASSWORDS[0]
        status, _, _ = self.request("POST", "/password", {"current": self.password, "new": new, "confirm": new,
                                                          "csrf_token": self.token(html) or ""}, op="password")
        self.counts[f"password_status_{status}"] += 1
        if status is None:
            self.counts["password_uncertain"] += 1
        elif status == 302:
            self.counts["password_ok"] += 1
            self.password = new

    def cycle(self) -> None:
        if not self.sign_in():
            return
        self.request("GET", "/", op="home")
        self.request("GET", f"/visits/{self.seed['visit_id']}", op="visit")
        for _ in range(3):
            self.edit_visit()
        self.request("GET", "/firms/export.csv", op="export")
        self.request("GET", "/imports/", op="import-page")
        status, html, _ = self.request("GET", "/", op="home")
        token = self.token(html) if status == 200 else None
        if token:
            self.request("POST", "/language/en", {"csrf_token": token, "next": "/"}, op="language")
            self.request("POST", "/language/zh", {"csrf_token": token, "next": "/"}, op="language")
        if self.rng.random() < 0.2:
            self.change_password()
        status, html, _ = self.request("GET", "/", op="home")
        token = self.token(html) if status == 200 else None
        if token:
            self.request("POST", "/logout", {"csrf_token": token}, op="logout")
        self.jar.clear()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = collections.Counter()
        self.errors = collections.Counter()
        self.latency: list[float] = []
        self.per_op = collections.Counter()
        self.op_status = collections.Counter()
        self.server_errors = collections.Counter()  # 500s by operation
        self.locked = 0

    def record(self, op, status, seconds, error=None):
        with self.lock:
            self.per_op[op] += 1
            self.op_status[f"{op} {status or error}"] += 1
            if status is None:
                self.errors[error] += 1
            else:
                self.status[status] += 1
                self.latency.append(seconds)
                if status >= 500:
                    self.server_errors[op] += 1


# -- run -----------------------------------------------------------------------------------------------------


def run(db_kind: str, duration: float, clients: int, workers: int, kill: bool) -> int:
    pg = None
    tmp = Path(tempfile.mkdtemp(prefix="crm-load-"))
    if db_kind == "sqlite":
        url = f"sqlite:///{tmp / 'load.sqlite3'}"
    else:
        from tests.pgserver import PgServer

        pg = PgServer().start()
        url = pg.create_database("crm_load")
    seeds = prepare_database(url, clients)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp / "gunicorn.log"
    env = {**os.environ, "LOADTEST_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    with open(log_path, "wb") as log:
        server = subprocess.Popen([gunicorn, "-w", str(workers), "-b", f"127.0.0.1:{port}", "--timeout", "30",
                                   "--graceful-timeout", "5", "scripts.loadtest:app_factory()"],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stats = Stats()
    killed, replacement = None, None
    try:
        wait_ready(base)
        workers_before = children_of(server.pid)
        stop_at = time.monotonic() + duration
        pool = [Client(i, base, seeds[i], stats) for i in range(clients)]

        def loop(client):
            while time.monotonic() < stop_at:
                client.cycle()

        threads = [threading.Thread(target=loop, args=(c,)) for c in pool]
        started = time.monotonic()
        for t in threads:
            t.start()
        if kill:
            time.sleep(duration / 2)
            current = children_of(server.pid)
            if current:
                killed = current[0]
                os.kill(killed, signal.SIGKILL)
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 20
        while kill and time.monotonic() < deadline:
            now_workers = children_of(server.pid)
            if len(now_workers) >= workers and killed not in now_workers:
                replacement = sorted(set(now_workers) - set(workers_before))
                break
            time.sleep(0.2)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    problems = check(url, pool, stats, killed, replacement, kill, log_path.read_text(errors="replace"))
    report(db_kind, clients, workers, elapsed, stats, pool, killed, replacement, problems)
    if pg is not None:
        pg.stop()
    return 1 if problems else 0


def check(url, pool, stats, killed, replacement, kill, server_log) -> list[str]:
    import sqlalchemy as sa

    problems = []
    if stats.status.get(500):
        problems.append(f"{stats.status[500]} responses were 500 ({dict(stats.server_errors)})")
    if stats.locked:
        problems.append(f"{stats.locked} responses said 'database is locked'")
    if "OperationalError" in server_log or "database is locked" in server_log:
        problems.append("the server log has an OperationalError / 'database is locked'")
    if kill and not replacement:
        problems.append("the killed worker was not replaced")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for c in pool:
            version, next_step = conn.execute(sa.text("SELECT version, next_step FROM visit WHERE id = :id"),
                                              {"id": c.seed["visit_id"]}).one()
            applied = version - 1
            ok, unsure = c.counts["edit_ok"], c.counts["edit_uncertain"]
            if not ok <= applied <= ok + unsure:
                problems.append(f"client {c.cid}: {ok} acknowledged + {unsure} uncertain edits, {applied} applied")
            n = int(next_step.split("#")[1]) if "#" in (next_step or "") else 0
            if n < c.last_acked_edit or (n and n not in c.edits_made):
                problems.append(f"client {c.cid}: stored {next_step!r}, last acknowledged edit #{c.last_acked_edit}")
            for action, key in (("auth.login", "login"), ("user.password_change", "password")):
                rows = conn.execute(sa.text("SELECT count(*) FROM audit_entry WHERE action = :a AND user_id = :u"),
                                    {"a": action, "u": c.seed["user_id"]}).scalar()
                ok, unsure = c.counts[f"{key}_ok"], c.counts[f"{key}_uncertain"]
                if not ok <= rows <= ok + unsure:
                    seen = {k: v for k, v in c.counts.items() if k.startswith(key)}
                    problems.append(f"client {c.cid}: {action}: {ok} acknowledged + {unsure} uncertain, {rows} audited "
                                    f"({seen})")
    engine.dispose()
    return problems


def report(db_kind, clients, workers, elapsed, stats, pool, killed, replacement, problems) -> None:
    total = sum(stats.status.values()) + sum(stats.errors.values())
    lat = sorted(stats.latency) or [0.0]
    counts = collections.Counter()
    for c in pool:
        counts.update(c.counts)
    figures = {
        "database": db_kind, "clients": clients, "workers": workers, "seconds": round(elapsed, 1),
        "requests": total, "requests_per_second": round(total / elapsed, 1) if elapsed else 0,
        "status": dict(sorted(stats.status.items())), "connection_errors": dict(stats.errors),
        "latency_ms": {"p50": round(statistics.median(lat) * 1000), "p95": round(lat[int(len(lat) * 0.95) - 1] * 1000),
                       "max": round(lat[-1] * 1000)},
        "edits": {"acknowledged": counts["edit_ok"], "uncertain": counts["edit_uncertain"],
                  "conflicts_409": counts["edit_conflict"]},
        "sign_ins": counts["login_ok"], "password_changes": counts["password_ok"],
        "server_errors_by_operation": dict(stats.server_errors), "killed_worker": killed, "replacement_workers": replacement, "database_is_locked": stats.locked,
        "operations": dict(sorted(stats.op_status.items())), "problems": problems,
    }
    print("LOADTEST " + json.dumps(figures, ensure_ascii=False))
    print(f"{db_kind}: {total} requests in {elapsed:.1f} s ({figures['requests_per_second']}/s) by {clients} clients "
          f"on {workers} workers; statuses {figures['status']}; p50 {figures['latency_ms']['p50']} ms, "
          f"p95 {figures['latency_ms']['p95']} ms; edits {counts['edit_ok']} ok + {counts['edit_uncertain']} "
          f"uncertain; worker {killed} killed, replaced by {replacement}; "
          + ("ALL INVARIANTS HOLD" if not problems else "PROBLEMS: " + "; ".join(problems)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--no-kill", action="store_true", help="do not kill a worker midway")
    args = parser.parse_args(argv)
    return run(args.db, args.duration, args.clients, args.workers, kill=not args.no_kill)


if __name__ == "__main__":
    sys.exit(main())
