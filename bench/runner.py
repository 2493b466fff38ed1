"""The benchmark: generate (or reuse) data, then time the pages that must stay fast as data grows.

Server-side timings come from the Flask test client in this process (time to last byte, SQL statements and SQL
time counted with SQLAlchemy cursor events, memory from /proc/self/status). The mixed workload runs against
gunicorn on 127.0.0.1 with 8 concurrent clients, bounded by time and request count.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Optional

from bench import htmlforms

ROOT = Path(__file__).resolve().parent.parent
TARGETS_MS = {  # issue 8, scale 1, server-side p95 (at scale 0.1 every page ≤ 50 ms)
    "dashboard_unfiltered": 150, "dashboard_filtered": 30, "dashboard_unfiltered_after_visit": 150,
    "dashboard_filtered_after_visit": 30, "dashboard_unfiltered_after_new_visit": 150,
    "dashboard_filtered_after_new_visit": 30, "dashboard_unfiltered_after_event_edit": 150,
    "dashboard_filtered_after_event_edit": 30, "dashboard_unfiltered_after_event_status": 150,
    "dashboard_filtered_after_event_status": 30, "dashboard_unfiltered_after_planned_event_edit": 150,
    "dashboard_filtered_after_planned_event_edit": 30, "dashboard_unfiltered_after_write": 150,
    "dashboard_filtered_after_write": 30, "firms_page_1": 50, "firms_page_1000": 50,
    "firm_search": 100, "visit_save": 30, "export_csv_50k": 500, "export_xlsx_50k": 2000,
    "import_firms_10k": 10_000,
}
MISSING = "n/a (endpoint missing)"


# --------------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> Optional[float]:
    """Nearest-rank percentile."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def median(values: list[float]) -> Optional[float]:
    if not values:
        return None
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


class SqlMeter:
    """Counts statements and their time on an engine (all threads of this process)."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.count = 0
        self.seconds = 0.0
        self._starts: dict = {}
        self._lock = threading.Lock()

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn, cursor, statement, parameters, context, executemany):
            self._starts[id(cursor)] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn, cursor, statement, parameters, context, executemany):
            t0 = self._starts.pop(id(cursor), None)
            with self._lock:
                self.count += 1
                if t0 is not None:
                    self.seconds += time.perf_counter() - t0

    def snapshot(self) -> tuple[int, float]:
        return self.count, self.seconds


def proc_status() -> dict[str, int]:
    """VmRSS / VmHWM of this process in KiB (Linux /proc; empty elsewhere)."""
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+: echo 5 > /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@dataclass
class Result:
    name: str
    status: str = "ok"
    samples_ms: list[float] = field(default_factory=list)
    sql_statements: Optional[int] = None
    sql_ms: Optional[float] = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {"status": self.status, "n": len(self.samples_ms),
             "median_ms": _r(median(self.samples_ms)), "p95_ms": _r(pct(self.samples_ms, 95)),
             "sql_statements": self.sql_statements, "sql_median_ms": _r(self.sql_ms),
             "target_p95_ms": TARGETS_MS.get(self.name)}
        d.update(self.extra)
        return d


def _r(v):
    return None if v is None else round(v, 2)


# --------------------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------------------


def schema_key(seed: int, scale: float) -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "migrations" / "versions").glob("*.py")) + [ROOT / "crm" / "perf" / "generate.py"]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return f"s{scale:g}-seed{seed}-{h.hexdigest()[:10]}"


def bench_app(url: str, **extra):
    from crm import create_app, freeze_loaded_objects, freeze_survivors

    cfg = {"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": secrets.token_urlsafe(32), "WTF_CSRF_ENABLED": False,
           "RATELIMIT_ENABLED": False, "TESTING": False, "DEBUG": False}
    cfg.update(extra)
    app = create_app("config.Config", cfg)
    freeze_loaded_objects()  # as gunicorn.conf.py's when_ready does before the workers fork: measure what runs
    freeze_survivors()  # and its post_fork in each worker (settle_heap: its post_request, Bench.timed)
    return app


def migrate_and_generate(url: str, scale: float, seed: int, log) -> dict:
    import flask_migrate

    from crm.auth import passwords
    from crm.extensions import db
    from crm.perf import generate as gen

    app = bench_app(url)
    with app.app_context():
        t0 = time.perf_counter()
        flask_migrate.upgrade(directory=str(ROOT / "migrations"))
        migrate_s = time.perf_counter() - t0
        res = gen.generate(db.engine, scale, seed, password_hash=passwords.hash_password(gen.BENCH_PASSWORD),
                           log=lambda s: log("   " + s))
        db.session.remove()
        db.engine.dispose()
    return {"migrate_s": round(migrate_s, 2), "generate_s": round(res.total_seconds, 2),
            "generate_cpu_s": round(res.cpu_seconds, 2), "rows": sum(res.counts.values()),
            "counts": dict(sorted(res.counts.items())), "firm_code_checksum": res.firm_code_checksum[:16]}


def prepare_sqlite(scale: float, seed: int, cache_dir: Path, work_dir: Path, log) -> tuple[str, dict]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = schema_key(seed, scale)
    cached = cache_dir / f"crm-{key}.sqlite3"
    meta_path = cache_dir / f"crm-{key}.json"
    if cached.exists() and meta_path.exists():
        log(f"  sqlite scale {scale}: cached {cached.name}")
        meta = json.loads(meta_path.read_text())
        meta["cached"] = True
    else:
        tmp = cache_dir / f"tmp-{key}.sqlite3"
        tmp.unlink(missing_ok=True)
        log(f"  sqlite scale {scale}: generating")
        meta = migrate_and_generate(f"sqlite:///{tmp}", scale, seed, log)
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        tmp.rename(cached)
        meta_path.write_text(json.dumps(meta, sort_keys=True))
        meta["cached"] = False
    work = work_dir / f"work-{key}.sqlite3"
    shutil.copyfile(cached, work)
    return f"sqlite:///{work}", meta


# --------------------------------------------------------------------------------------------------------
# The measurements
# --------------------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, url: str, engine_name: str, scale: float, seed: int, log, *, reps: int = 20,
                 budget_s: float = 12.0, only: Optional[list[str]] = None):
        from crm.extensions import db

        self.url, self.engine_name, self.scale, self.seed, self.log = url, engine_name, scale, seed, log
        self.reps, self.budget_s = reps, budget_s
        self.only = tuple(only or ())  # metric names or prefixes to run (``--only``); empty: all
        self.app = bench_app(url)
        with self.app.app_context():
            self.meter = SqlMeter(db.engine)
            self.rules = {r.endpoint: r for r in self.app.url_map.iter_rules()}
            self._load_facts()
        self.results: dict[str, Result] = {}
        self.clients: dict = {}
        self.read_urls: list[tuple[str, str]] = []  # (user role, url) for the mixed workload

    def _load_facts(self):
        import sqlalchemy as sa

        from crm.extensions import db
        from crm.perf.generate import BENCH_PASSWORD

        s = db.session
        self.password = BENCH_PASSWORD
        self.users = {}
        for role, pattern in (("bureau", "bureau1"), ("manager", "mgr1_1"), ("rm", "rm1_01_1"), ("admin", "admin")):
            self.users[role] = s.execute(sa.text('SELECT username FROM "user" WHERE username = :u'),
                                         {"u": pattern}).scalar()
        self.bank1 = s.execute(sa.text("SELECT id FROM organisation WHERE kind='bank' AND parent_id IS NULL "
                                       "ORDER BY id LIMIT 1")).scalar()
        rm_id = s.execute(sa.text('SELECT id FROM "user" WHERE username = :u'), {"u": self.users["rm"]}).scalar()
        self.rm_firm = s.execute(sa.text("SELECT firm_id FROM firm_account WHERE owner_id = :u ORDER BY id LIMIT 1"),
                                 {"u": rm_id}).scalar()
        self.firm_ids = [r[0] for r in s.execute(sa.text("SELECT id FROM firm ORDER BY id LIMIT 2000"))]
        self.n_firms = s.execute(sa.text("SELECT COUNT(*) FROM firm")).scalar()
        # a name fragment that matches a handful of firms (two brand characters)
        names = [r[0] for r in s.execute(sa.text("SELECT name FROM firm ORDER BY id LIMIT 500"))]
        self.search_term = names[len(names) // 2][3:5] if names else "科技"
        self.event_ids = [r[0] for r in s.execute(sa.text("SELECT id FROM event ORDER BY id LIMIT 200"))]
        db.session.remove()

    # -- clients ---------------------------------------------------------------------------------------------
    def client(self, role: str):
        c = self.clients.get(role)
        if c is None:
            c = self.app.test_client()
            resp = c.post("/login", data={"username": self.users[role], "password": self.password})
            if resp.status_code not in (302, 303):
                raise RuntimeError(f"login as {self.users[role]} failed: {resp.status_code}")
            self.clients[role] = c
        return c

    def wanted(self, name: str) -> bool:
        """Whether ``--only`` selects this metric (every metric when it is empty)."""
        return not self.only or name.startswith(self.only)

    def wants_group(self, prefix: str) -> bool:
        """Whether ``--only`` selects any metric of a group (``dashboard_`` for ``--only dashboard_filtered``)."""
        return not self.only or any(o.startswith(prefix) or prefix.startswith(o) for o in self.only)

    def has(self, endpoint: str) -> bool:
        return endpoint in self.rules

    def find_rule(self, pred: Callable) -> Optional[object]:
        return next((r for r in sorted(self.app.url_map.iter_rules(), key=lambda r: r.rule) if pred(r)), None)

    def timed(self, role: str, method: str, url: str, **kw):
        from crm import settle_heap, settle_wal

        c = self.client(role)
        n0, s0 = self.meter.snapshot()
        t0 = time.perf_counter()
        resp = c.open(url, method=method, **kw)
        body = resp.get_data()
        dt = (time.perf_counter() - t0) * 1000
        n1, s1 = self.meter.snapshot()
        settle_heap()  # as gunicorn.conf.py's post_request does after the response was sent
        settle_wal()
        return resp, body, dt, n1 - n0, (s1 - s0) * 1000

    def measure(self, name: str, role: str, url: str, *, reps: Optional[int] = None, ok=(200,),
                mix: bool = True, before: Optional[Callable[[], None]] = None) -> Result:
        res = Result(name)
        if not self.wanted(name):
            return res
        reps = reps or self.reps
        start = time.perf_counter()
        sqls, sql_ms = [], []
        resp = None
        for i in range(reps + 1):  # one warm-up request
            if before is not None:
                before()  # untimed: e.g. a write that invalidates the dashboard's snapshots
            resp, _body, dt, n, sms = self.timed(role, "GET", url)
            if resp.status_code not in ok:
                res.status = f"HTTP {resp.status_code}"
                break
            if i:
                res.samples_ms.append(dt)
                sqls.append(n)
                sql_ms.append(sms)
            if i >= 3 and time.perf_counter() - start > self.budget_s:
                break
        if sqls:
            res.sql_statements = max(sqls)
            res.sql_ms = median(sql_ms)
            res.extra["url"] = url
            if mix:
                self.read_urls.append((role, url))
        self.results[name] = res
        return res

    def save_a_visit(self) -> None:
        """Edit one visit of the newest campaign through the ORM, as the visit form's service does (a different
        firm each time, in the filtered view's bank and industry every other time)."""
        import sqlalchemy as sa

        from crm.core.scoping import SYSTEM, scoped
        from crm.extensions import db
        from crm.firms.models import Firm
        from crm.orgs.models import Campaign
        from crm.visits.models import Visit

        self._visit_edits = getattr(self, "_visit_edits", 0) + 1
        with self.app.app_context(), scoped(SYSTEM):
            s = db.session
            campaign = s.scalar(sa.select(Campaign.id).order_by(Campaign.start_on.desc()).limit(1))
            stmt = sa.select(Visit).where(Visit.campaign_id == campaign, Visit.is_deleted.is_(False))
            if self._visit_edits % 2:
                stmt = stmt.join(Firm, Firm.id == Visit.firm_id).where(Visit.bank_id == self.bank1,
                                                                      Firm.industry_code == "ai")
            visit = s.scalar(stmt.order_by(Visit.id).offset(self._visit_edits * 97 % 500).limit(1))
            if visit is not None:
                _ = visit.version, visit.companions  # loaded, as the edit form's service loads them
                visit.need_amount_fen = None if visit.need_amount_fen else 1_000_000_00
                s.commit()
            db.session.remove()

    def record_a_visit(self) -> None:
        """Record a new visit (with a companion) through the visit service, as the visit form does: its firm's
        visits and firms reached and its people's staff numbers move."""
        import sqlalchemy as sa

        from crm.auth.models import User
        from crm.core.scoping import scope_for, scoped
        from crm.extensions import db
        from crm.firms.models import Firm
        from crm.orgs.models import Campaign
        from crm.visits import services as visit_services

        self._new_visits = getattr(self, "_new_visits", 0) + 1
        with self.app.app_context():
            s = db.session
            rm = s.scalar(sa.select(User).where(User.username == self.users["rm"]))
            with scoped(scope_for(rm)):
                campaign = s.scalar(sa.select(Campaign).order_by(Campaign.start_on.desc()).limit(1))
                colleague = s.scalar(sa.select(User.id).where(User.bank_id == rm.bank_id, User.id != rm.id,
                                                              User.is_active_flag.is_(True)).limit(1))
                firm = s.get(Firm, self.firm_ids[self._new_visits * 7919 % len(self.firm_ids)])
                data = {"campaign_id": campaign.id, "visited_on": date(2026, 5, 1 + self._new_visits % 28),
                        "mode_code": "on_site", "summary": f"基准测试新走访 {self._new_visits}",
                        "need_amount_fen": None, "companion_ids": [colleague] if colleague else []}
                visit_services.create_visit(firm, data, user=rm)
                s.commit()
            db.session.remove()

    def edit_an_event(self, planned: bool = False, status: bool = False) -> None:
        """Move an event by a day through the ORM, as the event form's service does (a different event each time;
        each one forward, then back on the next round): a held event of the newest campaign (any of its events when
        none is held), or (``planned``) an event still planned, people registered and none checked in yet.

        Moved by a day, a held event mostly stays in its month and its campaign's window, where it moves no firm's
        check-in in the dashboard's views (``shards._event_moves``): only its staff and the events held are read
        again. With ``status`` it is marked planned instead (and held again on the next round), which moves its
        firms' check-ins and reach in every view."""
        import sqlalchemy as sa

        from crm.core.scoping import SYSTEM, scoped
        from crm.events.models import Event, EventStatus
        from crm.extensions import db
        from crm.orgs.models import Campaign

        counter = "_planned_event_edits" if planned else "_status_edits" if status else "_event_edits"
        n = getattr(self, counter, 0)
        setattr(self, counter, n + 1)
        with self.app.app_context(), scoped(SYSTEM):
            s = db.session
            if planned:  # (not those the status row left planned: they have people checked in)
                ids = list(s.scalars(sa.select(Event.id).where(Event.status == EventStatus.PLANNED,
                                                               Event.id.not_in(getattr(self, "_status_event_ids", [])))
                                     .order_by(Event.id).limit(40)))
            elif status and hasattr(self, "_status_event_ids"):
                ids = self._status_event_ids  # (the same events each round: held, planned, held again)
            else:
                campaign = s.scalar(sa.select(Campaign.id).order_by(Campaign.start_on.desc()).limit(1))
                events = sa.select(Event.id).where(Event.campaign_id == campaign).order_by(Event.id).limit(40)
                ids = list(s.scalars(events.where(Event.status == EventStatus.HELD))) or list(s.scalars(events))
                if status:
                    self._status_event_ids = ids
            if not ids:
                raise RuntimeError("no event to edit" if planned else "the newest campaign has no event to edit")
            event = s.get(Event, ids[n % len(ids)])
            _ = event.version, event.organisers, event.industries, event.staff  # (loaded, as the form's are)
            if status:
                event.status = EventStatus.PLANNED if event.status == EventStatus.HELD else EventStatus.HELD
            else:
                event.held_on += timedelta(days=1 if (n // len(ids)) % 2 == 0 else -1)
            s.commit()
            db.session.remove()

    def edit_a_planned_event(self) -> None:
        self.edit_an_event(planned=True)

    def hold_or_unhold_an_event(self) -> None:
        self.edit_an_event(status=True)

    def invalidate_snapshots(self) -> None:
        """Bump the dashboard's write version, as any committed write does (crm/dashboard/snapshots.py)."""
        from crm.dashboard import snapshots
        from crm.extensions import db

        with self.app.app_context():
            snapshots.bump_write_version(db.engine)

    def missing(self, name: str, why: str = MISSING) -> None:
        self.results[name] = Result(name, status=why)

    # -- pages -----------------------------------------------------------------------------------------------
    def run_reads(self):
        self.log("  dashboard")
        if not self.wants_group("dashboard_"):
            pass
        elif self.has("dashboard.index"):
            r = self.measure("dashboard_unfiltered", "bureau", "/dashboard/")
            if r.samples_ms and r.sql_ms:
                r.extra["page_to_sql_ratio"] = round(median(r.samples_ms) / r.sql_ms, 2) if r.sql_ms else None
            url = self.dashboard_filter_url()
            r = self.measure("dashboard_filtered", "bureau", url)
            if r.samples_ms and r.sql_ms:
                r.extra["page_to_sql_ratio"] = round(median(r.samples_ms) / r.sql_ms, 2)
            # The same pages when every request follows a write (a snapshot miss each time): after a visit is
            # saved (the shards it touched are recomputed), after a held event's date is moved by a day (its staff's
            # shards and the events held; the shards of the firms checked in at it in the views the move moves: by
            # month across a month's end), after a held event is marked planned or held again (those firms' shards
            # in every view), after a planned event's date (its staff's shards and the events held), and after a
            # write no flush can place (an import, an organisation: every shard is recomputed, in one pass).
            for name, page, write in (("dashboard_unfiltered_after_visit", "/dashboard/", self.save_a_visit),
                                      ("dashboard_filtered_after_visit", url, self.save_a_visit),
                                      ("dashboard_unfiltered_after_new_visit", "/dashboard/", self.record_a_visit),
                                      ("dashboard_filtered_after_new_visit", url, self.record_a_visit),
                                      ("dashboard_unfiltered_after_event_edit", "/dashboard/", self.edit_an_event),
                                      ("dashboard_filtered_after_event_edit", url, self.edit_an_event),
                                      ("dashboard_unfiltered_after_event_status", "/dashboard/",
                                       self.hold_or_unhold_an_event),
                                      ("dashboard_filtered_after_event_status", url, self.hold_or_unhold_an_event),
                                      ("dashboard_unfiltered_after_planned_event_edit", "/dashboard/",
                                       self.edit_a_planned_event),
                                      ("dashboard_filtered_after_planned_event_edit", url, self.edit_a_planned_event),
                                      ("dashboard_unfiltered_after_write", "/dashboard/", self.invalidate_snapshots),
                                      ("dashboard_filtered_after_write", url, self.invalidate_snapshots)):
                r = self.measure(name, "bureau", page, mix=False, before=write)
                if r.samples_ms and r.sql_ms:
                    r.extra["page_to_sql_ratio"] = round(median(r.samples_ms) / r.sql_ms, 2)
        else:
            self.missing("dashboard_unfiltered")
            self.missing("dashboard_filtered")
        self.log("  firm list")
        if self.has("firms.index"):
            self.measure("firms_page_1", "manager", "/firms/")
            if self.wanted("firms_page_1000"):
                url, page = self.firm_page_url(1000)
                r = self.measure("firms_page_1000", "manager", url)
                r.extra["page_reached"] = page
            r = self.measure("firm_search", "manager", "/firms/?" + urllib.parse.urlencode({"q": self.search_term}))
            r.extra["term"] = self.search_term
            if self.has("firms.show") and self.firm_ids:
                self.measure("firm_detail", "manager", f"/firms/{self.firm_ids[len(self.firm_ids) // 2]}")
        else:
            for n in ("firms_page_1", "firms_page_1000", "firm_search"):
                self.missing(n)
        for name, endpoint, url in (("events_list", "events.index", "/events/"),
                                    ("credit_list", "credit.index", "/credit/")):
            if self.has(endpoint):
                self.measure(name, "bureau" if name == "events_list" else "manager", url)
        for name, endpoint in (("follow_ups_mine", "visits.my_followups"), ("follow_ups_overdue", "visits.overdue")):
            if self.has(endpoint):
                self.measure(name, "manager" if "overdue" in name else "rm", self.rules[endpoint].rule)
        if self.has("dashboard.records"):
            # the records behind the headline number (firms reached in the current campaign): a number is a link
            self.measure("dashboard_records", "bureau", "/dashboard/records?metric=firms_reached")
        if self.has("visits.index"):
            self.measure("visits_list", "manager", "/visits/")

    def dashboard_filter_url(self) -> str:
        """One bank, one industry, one quarter, using the dashboard form's own field names when it has a form."""
        c = self.client("bureau")
        html = c.get("/dashboard/").get_data(as_text=True)
        forms, _links = htmlforms.parse(html)
        params = {}
        q_from, q_to = date(2026, 4, 1), date(2026, 6, 30)
        form = next((f for f in forms if f.method == "get" and f.fields), None)
        if form:
            for f in form.fields:
                if f.tag == "select" and f.selected:
                    params[f.name] = f.selected[0]
            bank = form.find("bank", "bank_id")
            if bank is not None:
                params[bank.name] = str(self.bank1)
            ind = form.find("industry", "industry_code")
            if ind is not None:
                params[ind.name] = "ai"
            frm = form.find("from", "date_from", "start", "start_on")
            to = form.find("to", "date_to", "end", "end_on")
            if frm is not None and to is not None:
                params[frm.name], params[to.name] = q_from.isoformat(), q_to.isoformat()
            else:
                quarter = form.find("quarter", "period")
                if quarter is not None:
                    opts = [o for o in quarter.options if "2026" in o and ("Q2" in o or "-2" in o or o.endswith("2"))]
                    params[quarter.name] = opts[0] if opts else (quarter.options[-1] if quarter.options else "")
        if not params:
            params = {"bank": str(self.bank1), "industry": "ai", "from": q_from.isoformat(), "to": q_to.isoformat()}
        return "/dashboard/?" + urllib.parse.urlencode(params)

    def firm_page_url(self, page: int) -> tuple[str, int]:
        """Page ``page`` of 50: walk rel=next links with per=200 (keyset), or use ?page= if the list has it."""
        c = self.client("manager")
        target_offset = (page - 1) * 50
        url, offset, reached = "/firms/?per=200", 0, 1
        while offset + 200 <= target_offset:
            html = c.get(url).get_data(as_text=True)
            _forms, links = htmlforms.parse(html)
            nxt = next((a["href"] for a in links if a.get("rel") == "next"), None)
            if not nxt:
                break
            url, offset = nxt, offset + 200
        # finish with per=50 pages
        parts = urllib.parse.urlsplit(url)
        q = dict(urllib.parse.parse_qsl(parts.query))
        q["per"] = "50"
        url = "/firms/?" + urllib.parse.urlencode(q)
        reached = offset // 50 + 1
        while reached < page:
            html = c.get(url).get_data(as_text=True)
            _forms, links = htmlforms.parse(html)
            nxt = next((a["href"] for a in links if a.get("rel") == "next"), None)
            if not nxt:
                break
            url, reached = nxt, reached + 1
        return url, reached

    # -- writes ----------------------------------------------------------------------------------------------
    def run_visit_save(self):
        if not self.wanted("visit_save"):
            return
        self.log("  visit save")
        rule = self.rules.get("visits.create") or self.find_rule(
            lambda r: r.rule.startswith("/visits") and "POST" in r.methods and "new" in r.rule
            and "follow" not in r.rule)
        if rule is None or self.rm_firm is None:
            self.missing("visit_save")
            return
        args = {a: self.rm_firm for a in rule.arguments}
        path = rule.rule
        for a, v in args.items():
            path = path.replace(f"<int:{a}>", str(v)).replace(f"<{a}>", str(v))
        page_url = path + ("?" + urllib.parse.urlencode({"firm": self.rm_firm, "firm_id": self.rm_firm})
                           if not args else "")
        c = self.client("rm")
        html = c.get(page_url).get_data(as_text=True)
        forms, _links = htmlforms.parse(html)
        form = max((f for f in forms if f.method == "post"), key=lambda f: len(f.fields), default=None)
        if form is None:
            self.missing("visit_save", "n/a (no visit form found)")
            return
        data = fill_form(form, firm_id=self.rm_firm, today=date(2026, 11, 20))
        action = form.action or page_url
        res = Result("visit_save")
        start = time.perf_counter()
        sqls = []
        for i in range(self.reps):
            data_i = dict(data)
            for k in list(data_i):
                if "summary" in k:
                    data_i[k] = f"基准测试走访 {i}"
            resp, body, dt, n, _sms = self.timed("rm", "POST", action, data=data_i)
            if resp.status_code not in (302, 303):
                res.status = f"HTTP {resp.status_code} (fields: {','.join(sorted(data))})"
                self.log(f"    visit save refused: {resp.status_code} {body[:300]!r}")
                break
            res.samples_ms.append(dt)
            sqls.append(n)
            if i >= 3 and time.perf_counter() - start > self.budget_s:
                break
        res.sql_statements = max(sqls) if sqls else None
        self.results["visit_save"] = res

    def run_exports(self, n_rows: int = 50_000):
        if not self.wants_group("export_"):
            return
        self.log(f"  attendee export ({n_rows} rows)")
        if not self.has("events.export"):
            self.missing("export_csv_50k")
            self.missing("export_xlsx_50k")
            return
        from crm.extensions import db
        from crm.perf.generate import add_big_event

        with self.app.app_context():
            eid = add_big_event(db.engine, n_rows, self.seed)
            db.session.remove()
        for fmt in ("csv", "xlsx"):
            name = f"export_{fmt}_50k"
            res = Result(name)
            for role in ("manager", "bureau"):
                self.client(role)  # sign in first: scrypt's 128 MiB must not count as the export's memory
                before = proc_status()
                peak_ok = reset_peak_rss()
                resp, body, dt, n, _ = self.timed(role, "GET", f"/events/{eid}/export.{fmt}")
                after = proc_status()
                if resp.status_code == 200:
                    res.samples_ms.append(dt)
                    res.sql_statements = n
                    res.extra["bytes"] = len(body)
                    res.extra["rows_in_file"] = body.count(b"\n") - 1 if fmt == "csv" else None
                    res.extra["rss_growth_mib"] = round((after.get("VmHWM", 0) - before.get("VmRSS", 0)) / 1024, 1) \
                        if peak_ok else None
                    res.extra["as"] = role
                    # two more runs for a median
                    for _ in range(2):
                        resp, body, dt, _n, _ = self.timed(role, "GET", f"/events/{eid}/export.{fmt}")
                        res.samples_ms.append(dt)
                    break
                res.status = f"HTTP {resp.status_code}"
            if res.samples_ms:
                res.status = "ok"
            self.results[name] = res

    def run_import(self, n_rows: int = 10_000):
        if not self.wants_group("import_"):
            return
        self.log(f"  firm ledger import ({n_rows} rows)")
        rule = self.find_rule(lambda r: r.rule.startswith("/imports") and "POST" in r.methods)
        if rule is None:
            self.missing("import_firms_10k")
            return
        from crm.perf.generate import firm_ledger_rows

        headers, rows = firm_ledger_rows(n_rows, self.seed)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(headers)
        w.writerows(rows)
        payload = ("\ufeff" + buf.getvalue()).encode("utf-8")
        c = self.client("manager")
        index = self.find_rule(lambda r: r.rule.startswith("/imports") and "GET" in r.methods and not r.arguments)
        html = c.get(index.rule if index else rule.rule).get_data(as_text=True)
        forms, _links = htmlforms.parse(html)
        form = next((f for f in forms if any(x.type == "file" for x in f.fields)), None)
        if form is None:
            self.missing("import_firms_10k", "n/a (no upload form found)")
            return
        data = {}
        for f in form.fields:
            if f.type == "file":
                data[f.name] = (io.BytesIO(payload), "firms.csv")
            elif f.tag == "select":
                opts = [o for o in f.options if o]
                opt = next((o for o in opts if "firm" in o.lower()), None) if "kind" in f.name else None
                data[f.name] = opt or (f.selected[0] if f.selected and f.selected[0] else (opts[0] if opts else ""))
            elif f.type in ("hidden", "text") and f.value:
                data[f.name] = f.value
        action = form.action or (index.rule if index else rule.rule)
        res = Result("import_firms_10k")
        n0, _ = self.meter.snapshot()
        t0 = time.perf_counter()
        resp = c.post(action, data=data, content_type="multipart/form-data")
        body = resp.get_data(as_text=True)
        steps = 1
        preview_ms = (time.perf_counter() - t0) * 1000
        if resp.status_code == 200:  # a preview page with a commit form: submit it
            forms, _ = htmlforms.parse(body)
            confirm = next((f for f in forms if f.method == "post" and "commit" in f.action), None) or \
                next((f for f in forms if f.method == "post" and not any(x.type == "file" for x in f.fields)), None)
            if confirm is not None:
                cdata = {f.name: f.value for f in confirm.fields
                         if f.value and f.type not in ("checkbox", "submit")}
                resp = c.post(confirm.action or action, data=cdata)
                body = resp.get_data(as_text=True)
                steps += 1
        res.extra["preview_ms"] = round(preview_ms, 1)
        res.extra["committed"] = resp.status_code in (302, 303)
        if resp.status_code not in (302, 303):
            self.log(f"    import not committed: HTTP {resp.status_code}")
        dt = (time.perf_counter() - t0) * 1000
        n1, _ = self.meter.snapshot()
        res.samples_ms.append(dt)
        res.sql_statements = n1 - n0
        res.extra["http_steps"] = steps
        res.extra["rows"] = n_rows
        res.status = "ok" if res.extra["committed"] else f"HTTP {resp.status_code} (not committed)"
        self.results["import_firms_10k"] = res

    # -- the mixed workload under gunicorn --------------------------------------------------------------------
    def run_mixed(self, clients: int = 8, seconds: float = 15.0, max_requests: int = 4000) -> None:
        if not self.wants_group("mixed_"):
            return
        self.log(f"  mixed read workload: gunicorn, {clients} clients, ≤{seconds:g} s / ≤{max_requests} requests")
        urls = [(role, u) for role, u in self.read_urls]
        if not urls:
            self.missing("mixed_read_rps", "n/a (no read endpoint)")
            return
        # firm detail pages of many firms make the mix less cache-friendly
        if self.has("firms.show"):
            urls += [("manager", f"/firms/{fid}") for fid in self.firm_ids[::max(1, len(self.firm_ids) // 50)]]
        port = _free_port()
        workers = max(2, 2 * (os.cpu_count() or 1))
        env = dict(os.environ, CRM_BENCH_DATABASE_URL=self.url, PYTHONPATH=str(ROOT),
                   CRM_BENCH_SECRET=secrets.token_urlsafe(32))
        gunicorn = Path(sys.executable).parent / "gunicorn"
        # production's gunicorn.conf.py (its collection settings and hooks; its access log, to the discarded
        # stdout), with the benchmark's address and worker count: 4 workers serve 8 clients on 2 cores faster
        # than its default 2 x cores + 1 (about 10% more requests per second measured)
        proc = subprocess.Popen([str(gunicorn), "-c", str(ROOT / "gunicorn.conf.py"), "-w", str(workers),
                                 "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT), "--log-level", "warning",
                                 "bench.wsgi_app:app"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        res = Result("mixed_read_rps")
        try:
            if not _wait_port(port, 30):
                res.status = "gunicorn did not start: " + (proc.stderr.read(500).decode(errors="replace")
                                                           if proc.poll() is not None else "timeout")
                self.results["mixed_read_rps"] = res
                return
            cookies = {role: _http_login(port, self.users[role], self.password) for role in {r for r, _ in urls}}
            lat: list[float] = []
            errors = [0, 0]  # measured, warm-up
            lock = threading.Lock()

            def run(seconds: float, limit: int, record: bool) -> float:
                """``clients`` threads requesting random URLs for ``seconds`` or ``limit`` requests; the elapsed
                time."""
                stop_at = time.perf_counter() + seconds
                counter = iter(range(limit))

                def worker(k):
                    rng = random.Random(k if record else -1 - k)
                    while time.perf_counter() < stop_at:
                        with lock:
                            if next(counter, None) is None:
                                return
                        role, u = urls[rng.randrange(len(urls))]
                        t0 = time.perf_counter()
                        status = _http_get(port, u, cookies[role])
                        dt = (time.perf_counter() - t0) * 1000
                        with lock:
                            if record:
                                lat.append(dt)
                            if status != 200:
                                errors[0 if record else 1] += 1

                t0 = time.perf_counter()
                threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                return time.perf_counter() - t0

            # Warm up with the same clients first, not measured: every worker has then compiled the templates and
            # statements and read the kept dashboard views its requests need (one sequential pass over the URLs
            # reached some workers only: their first requests fell in the measured seconds).
            run(seconds, 3 * len(urls), record=False)
            elapsed = run(seconds, max_requests, record=True)
            res.samples_ms = lat
            res.extra.update({"rps": round(len(lat) / elapsed, 1), "requests": len(lat), "errors": errors[0],
                              "warm_up_errors": errors[1],
                              "seconds": round(elapsed, 1), "workers": workers, "clients": clients,
                              "target_rps": 200, "urls": len(urls)})
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.results["mixed_read_rps"] = res


def fill_form(form: htmlforms.Form, *, firm_id: int, today: date) -> dict:
    """Plausible values for every field of a create form, keeping what the page pre-filled."""
    data: dict = {}
    for f in form.fields:
        n = f.name.lower()
        if f.type in ("submit", "button", "file", "reset", "image"):
            continue
        if f.type == "checkbox":
            if f.checked:
                data[f.name] = f.value or "y"
            continue
        if f.type == "radio":
            if f.checked or f.name not in data:
                data[f.name] = f.value
            continue
        if f.tag == "select":
            if f.selected and f.selected[0]:
                data[f.name] = f.selected[0]
            elif "firm" in n:
                data[f.name] = str(firm_id)
            else:
                opts = [o for o in f.options if o]
                if "willing" in n and "some" in opts:
                    data[f.name] = "some"
                elif opts:
                    data[f.name] = opts[0]
            continue
        if f.value:
            data[f.name] = f.value
            continue
        if "firm" in n:
            data[f.name] = str(firm_id)
        elif f.type == "date" or n.endswith("_on") or "date" in n:
            data[f.name] = today.isoformat() if "due" not in n and "next" not in n else ""
        elif "amount" in n or "wan" in n:
            data[f.name] = "300"
        elif "term" in n:
            data[f.name] = "12"
        elif "summary" in n:
            data[f.name] = "基准测试走访"
        elif f.required:
            data[f.name] = "基准测试"
    return data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _http_login(port: int, username: str, password: str) -> str:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = urllib.parse.urlencode({"username": username, "password": password})
    conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    cookies = [h[1].split(";", 1)[0] for h in resp.getheaders() if h[0].lower() == "set-cookie"]
    conn.close()
    return "; ".join(cookies)


def _http_get(port: int, url: str, cookie: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", url, headers={"Cookie": cookie})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return 0
    finally:
        conn.close()
