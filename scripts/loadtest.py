"""Load with faults: the app under gunicorn (2 workers) on 127.0.0.1, N concurrent clients for a bounded time,
one worker SIGKILLed midway (gunicorn starts a new one), then the invariants are checked against the database.

    .venv/bin/python scripts/loadtest.py                       # 60 s, 20 clients, SQLite
    .venv/bin/python scripts/loadtest.py --db postgresql --duration 20 --clients 8

Each client is its own user with its own visit. It loops: sign in, home page, visit page, edit its visit
(the edit form's version and a per-client counter), the firm export (CSV), a ledger import through the web flow
(a small firms or visits ledger generated for this client and round: upload, preview, commit), the language
switch, the password page, sometimes a password change, sign out. Every import also carries a row for one firm
shared by all clients that has no account of their bank yet, so the first imports race to create that account.
A request whose connection broke (the killed worker), before or while its response was read, is "uncertain": it may
or may not have been applied. A client that stops on an error is itself a failure.

Invariants (exit 1 when one fails):
- no 500 and no "database is locked" reached a client, and the server log has no OperationalError;
- edits neither lost nor duplicated: for each client, acknowledged <= applied (= version - 1) <= acknowledged +
  uncertain, and the stored text is the one of an edit the client made, at least the last acknowledged one;
- sign-ins and password changes likewise, counted in the append-only audit trail;
- no import half-applied: each import's rows (firms with their contacts and accounts, or visits) are all in the
  database or none; all when the commit was acknowledged, none when it was refused or never sent (a preview
  writes nothing), either when uncertain; committed imports are audited likewise;
- every firm account is audited as created exactly once (no duplicate, no lost creation under the race);
- the killed worker was replaced (2 workers again).
"""
from __future__ import annotations

import argparse
import collections
import csv
import http.client
import http.cookiejar
import io
import json
import os
import random
import re
import shutil
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
from datetime import date, timedelta
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
        **({"IMPORT_UPLOAD_DIR": os.environ["LOADTEST_UPLOAD_DIR"]} if os.environ.get("LOADTEST_UPLOAD_DIR") else {}),
    })


# -- set-up --------------------------------------------------------------------------------------------------


#: the firm every client's imports carry (no account of the clients' bank until the first import creates one)
SHARED_FIRM_NAME = "深圳压测共享台账科技有限公司"
SHARED_FIRM_CODE_N = 999_001
#: rows per generated ledger besides the shared firm's row
IMPORT_ROWS = 3
FIRST_VISIT_DAY = date(2026, 1, 1)


def prepare_database(url: str, clients: int) -> dict:
    """Migrate and seed: one bank, one firm, per client a user with one visit, and the shared import firm."""
    import flask_migrate

    os.environ["LOADTEST_DATABASE_URL"] = url
    app = app_factory()
    with app.app_context():
        from crm.auth import passwords
        from crm.extensions import db
        from tests import factories

        flask_migrate.upgrade()
        world = factories.World.build()
        shared = factories.firm(SHARED_FIRM_NAME, credit_code=factories.credit_code(SHARED_FIRM_CODE_N))
        seeded = {}
        for i in range(clients):
            user = factories.user(f"load{i:02d}", factories.Role.RM, world.branch_a, f"压测{i}")
            user.password_hash = passwords.hash_password(PASSWORDS[0])
            visit = factories.visit(world.firm, user, world.campaign, next_step="edit #0")
            seeded[i] = {"username": user.username, "user_id": user.id, "visit_id": visit.id,
                         "campaign_id": world.campaign.id, "shared_firm_id": shared.id,
                         "shared_code": shared.credit_code, "bank_id": world.bank_a.id}
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


def multipart(fields, files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body (what a browser sends for a file upload) and its Content-Type."""
    boundary = f"----crm-load-{random.getrandbits(64):016x}"
    items = fields.items() if isinstance(fields, dict) else fields
    out = []
    for name, value in items:
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content) in files.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                   f"Content-Type: text/csv\r\n\r\n".encode() + content + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def csv_bytes(headers: list[str], rows: list[list]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


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
        self.n_import = 0
        self.imports: list[dict] = []
        self.rng = random.Random(cid)

    def request(self, method: str, path: str, data: dict | list | None = None, op: str = "",
                files: dict[str, tuple[str, bytes]] | None = None):
        headers = {}
        if files is not None:
            body, headers["Content-Type"] = multipart(data or [], files)
        else:
            body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        started = time.monotonic()
        try:
            try:
                with self.opener.open(req, timeout=30) as resp:
                    status, text = resp.status, resp.read().decode("utf-8", "replace")
                    headers = resp.headers
            except urllib.error.HTTPError as e:  # (a redirect too: NoRedirect) its body can break off as well
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

    def import_ledger(self) -> None:
        """Generate a small ledger, upload it, check the preview, commit; record what must now be stored."""
        from tests.security_payloads import parse_forms

        kind = "visits" if self.n_import % 2 and self.visit_days_left() else "firms"
        status, html, _ = self.request("GET", f"/imports/?kind={kind}", op="import-page")
        if status != 200:
            return
        forms = [f for f in parse_forms(html) if f.method == "post" and "file" in f.fields]
        if not forms:
            self.counts["import_form_missing"] += 1
            return
        self.n_import += 1
        n = self.n_import
        record = {"kind": kind, "n": n, "outcome": "not_committed"}
        if kind == "firms":
            content, record["codes"] = self.firms_ledger(n)
        else:
            content, record["days"] = self.visits_ledger(n)
        self.imports.append(record)
        data = [(k, v) for k, v in forms[0].current if k not in ("kind", "campaign_id")]
        data += [("kind", kind), ("campaign_id", str(self.seed["campaign_id"]))]
        status, html, _ = self.request("POST", "/imports/preview", data, op="import-preview",
                                       files={"file": (f"{kind}_c{self.cid:02d}_{n}.csv", content)})
        if status != 200:
            self.counts[f"import_preview_{status}"] += 1
            return
        commit = [f for f in parse_forms(html) if f.method == "post" and (f.action or "").endswith("/commit")]
        if not commit or 'data-count="rejected">0<' not in html:
            self.counts["import_preview_rejected"] += 1
            reasons = re.findall(r"<tr><td>\d+</td><td>[^<]*</td><td[^>]*>[^<]*</td><td[^>]*>([^<]*)</td></tr>", html)
            self.stats.note(f"preview of {kind} ledger #{n} by client {self.cid} refused rows: {reasons[:3]}")
            return
        data = [(k, v) for k, v in commit[0].current if k != "valid_only"]
        status, _, _ = self.request("POST", commit[0].action, data, op="import-commit")
        if status is None:
            record["outcome"] = "uncertain"
            self.counts["import_uncertain"] += 1
        elif status == 302:
            record["outcome"] = "acknowledged"
            self.counts["import_ok"] += 1
        else:
            record["outcome"] = f"refused_{status}"
            self.counts[f"import_{status}"] += 1

    def visit_days_left(self) -> bool:
        return (FIRST_VISIT_DAY + timedelta(days=(self.n_import + 1) * IMPORT_ROWS)) <= date.today()

    def firms_ledger(self, n: int) -> tuple[bytes, list[str]]:
        """New firms (each with a contact) unique to this client and round, plus the shared firm unchanged."""
        from tests.factories import credit_code

        rows, codes = [], []
        for r in range(IMPORT_ROWS):
            code = credit_code(100_000 + self.cid * 20_000 + n * 10 + r)
            codes.append(code)
            rows.append([f"压测导入科技有限公司{self.cid:02d}{n:04d}{r}", code, "龙岗区", "人工智能", f"联系人{r}",
                         f"138{self.cid:02d}{n:04d}{r:02d}"])
        rows.append([SHARED_FIRM_NAME, self.seed["shared_code"], "", "", "", ""])
        return csv_bytes(["企业名称", "统一社会信用代码", "所属区", "重点产业", "联系人", "联系电话"], rows), codes

    def visits_ledger(self, n: int) -> tuple[bytes, list[str]]:
        """Visits of the shared firm by this client's user on days no other round of this client uses."""
        rows, days = [], []
        for r in range(IMPORT_ROWS):
            day = (FIRST_VISIT_DAY + timedelta(days=(n - 1) * IMPORT_ROWS + r)).isoformat()
            days.append(day)
            rows.append([self.seed["shared_code"], day, "实地走访", self.seed["username"],
                         f"LOAD c{self.cid} i{n} r{r}"])
        return csv_bytes(["统一社会信用代码", "走访日期", "走访方式", "走访人", "走访纪要"], rows), days

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
        self.import_ledger()
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
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        with self.lock:
            if len(self.notes) < 20:
                self.notes.append(text)

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
    if db_kind == "postgresql":
        from tests.pgserver import PgServer

        pg = PgServer().start()
    try:
        code = _run(pg, tmp, db_kind, duration, clients, workers, kill)
    finally:
        if pg is not None:
            pg.stop()
    if code == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"database, uploads and gunicorn log kept in {tmp}")
    return code


def _run(pg, tmp: Path, db_kind: str, duration: float, clients: int, workers: int, kill: bool) -> int:
    url = f"sqlite:///{tmp / 'load.sqlite3'}" if pg is None else pg.create_database("crm_load")
    seeds = prepare_database(url, clients)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp / "gunicorn.log"
    env = {**os.environ, "LOADTEST_DATABASE_URL": url, "LOADTEST_UPLOAD_DIR": str(tmp / "imports"),
           "PYTHONPATH": str(ROOT)}
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

        crashed: list[str] = []

        def loop(client):
            try:
                while time.monotonic() < stop_at:
                    client.cycle()
            except Exception as exc:  # a client that stops early would hide what it sent last
                crashed.append(f"client {client.cid} stopped: {type(exc).__name__}: {exc}")
                raise

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

    problems = crashed + check(url, pool, stats, killed, replacement, kill, log_path.read_text(errors="replace"))
    report(db_kind, clients, workers, elapsed, stats, pool, killed, replacement, problems)
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
            problems += check_imports(conn, c)
            refused = {k: v for k, v in c.counts.items()
                       if re.fullmatch(r"import_\d+|import_preview_\d+|import_preview_rejected|import_form_missing", k)}
            if refused:
                problems.append(f"client {c.cid}: valid ledgers refused: {refused}")
        twice = conn.execute(sa.text(
            "SELECT object_id, count(*) FROM audit_entry WHERE action = 'create' AND object_type = 'firm_account' "
            "GROUP BY object_id HAVING count(*) <> 1")).all()
        unaudited = conn.execute(sa.text(
            "SELECT count(*) FROM firm_account WHERE id NOT IN (SELECT object_id FROM audit_entry WHERE "
            "action = 'create' AND object_type = 'firm_account' AND object_id IS NOT NULL)")).scalar()
        if twice:
            problems.append(f"firm accounts audited as created more than once: {twice}")
        if unaudited:
            problems.append(f"{unaudited} firm accounts without their creation in the audit trail")
        shared = pool[0].seed if pool else None
        if shared and any(r["outcome"] == "acknowledged" for c in pool for r in c.imports):
            n = conn.execute(sa.text("SELECT count(*) FROM firm_account WHERE firm_id = :f AND bank_id = :b"),
                             {"f": shared["shared_firm_id"], "b": shared["bank_id"]}).scalar()
            if n != 1:
                problems.append(f"the shared firm has {n} accounts of the bank, expected 1")
    if stats.notes:
        problems += stats.notes
    engine.dispose()
    return problems


def check_imports(conn, c: "Client") -> list[str]:
    """Each import is all or nothing: every row stored, or none; which one the client's answer allows."""
    import sqlalchemy as sa

    problems = []
    for rec in c.imports:
        if rec["kind"] == "firms":
            codes = sa.bindparam("codes", expanding=True)
            firms = conn.execute(sa.text("SELECT count(*) FROM firm WHERE credit_code IN :codes").bindparams(codes),
                                 {"codes": rec["codes"]}).scalar()
            contacts = conn.execute(sa.text(
                "SELECT count(*) FROM contact JOIN firm ON firm.id = contact.firm_id WHERE firm.credit_code IN :codes"
            ).bindparams(codes), {"codes": rec["codes"]}).scalar()
            accounts = conn.execute(sa.text(
                "SELECT count(*) FROM firm_account JOIN firm ON firm.id = firm_account.firm_id "
                "WHERE firm.credit_code IN :codes AND firm_account.bank_id = :b").bindparams(codes),
                {"codes": rec["codes"], "b": c.seed["bank_id"]}).scalar()
            stored = {firms, contacts, accounts}
        else:
            visits = conn.execute(sa.text(
                "SELECT count(*) FROM visit WHERE rm_id = :u AND summary LIKE :marker AND is_deleted = :no"),
                {"u": c.seed["user_id"], "marker": f"LOAD c{c.cid} i{rec['n']} r%", "no": False}).scalar()
            stored = {visits}
        allowed = {"acknowledged": {IMPORT_ROWS}, "uncertain": {0, IMPORT_ROWS}}.get(rec["outcome"], {0})
        if len(stored) != 1 or not stored <= allowed:
            problems.append(f"client {c.cid}: {rec['kind']} import #{rec['n']} ({rec['outcome']}) half-applied or "
                            f"wrong: stored {sorted(stored)} of {IMPORT_ROWS} rows")
    rows = conn.execute(sa.text("SELECT count(*) FROM audit_entry WHERE action = 'import.commit' AND user_id = :u"),
                        {"u": c.seed["user_id"]}).scalar()
    ok, unsure = c.counts["import_ok"], c.counts["import_uncertain"]
    if not ok <= rows <= ok + unsure:
        problems.append(f"client {c.cid}: import.commit: {ok} acknowledged + {unsure} uncertain, {rows} audited")
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
        "imports": {"acknowledged": counts["import_ok"], "uncertain": counts["import_uncertain"],
                    "refused": sum(v for k, v in counts.items() if re.fullmatch(r"import_\d+", k)),
                    "not_committed": sum(1 for c in pool for r in c.imports if r["outcome"] == "not_committed"),
                    "rows_each": IMPORT_ROWS},
        "sign_ins": counts["login_ok"], "password_changes": counts["password_ok"],
        "server_errors_by_operation": dict(stats.server_errors), "killed_worker": killed, "replacement_workers": replacement, "database_is_locked": stats.locked,
        "operations": dict(sorted(stats.op_status.items())), "problems": problems,
    }
    print("LOADTEST " + json.dumps(figures, ensure_ascii=False))
    print(f"{db_kind}: {total} requests in {elapsed:.1f} s ({figures['requests_per_second']}/s) by {clients} clients "
          f"on {workers} workers; statuses {figures['status']}; p50 {figures['latency_ms']['p50']} ms, "
          f"p95 {figures['latency_ms']['p95']} ms; edits {counts['edit_ok']} ok + {counts['edit_uncertain']} "
          f"uncertain; imports {counts['import_ok']} ok + {counts['import_uncertain']} uncertain; worker {killed} killed, replaced by {replacement}; "
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
