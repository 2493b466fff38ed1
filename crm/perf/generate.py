"""Synthetic province-scale data: deterministic for a seed, skewed like real data, loaded in bulk.

Scale 1 is 5 banks with 40 branches, 100,000 firms, 1,000,000 visits, 10,000 events, 300,000 registrations
(80% checked in) and 50,000 credit applications (20% IP pledge) with their stage history, spread over four
years (2023-01-01 .. 2026-11-25, one campaign per year). Every other count scales with it.

How it stays fast (scale 1 in well under two minutes on two cores):

* pure Python rows from one ``random.Random(seed)``, categorical draws through precomputed cumulative
  weights and ``bisect``, dates and timestamps shared from small caches;
* rows go to the database in chunks through the DBAPI connection: ``executemany`` on SQLite, ``COPY ...
  FROM STDIN`` (psycopg ``cursor.copy()``) on PostgreSQL, after dropping the secondary indexes of the big
  tables (recreated afterwards from the database's own definitions: sorted index builds are far cheaper than
  a million random B-tree inserts) and with foreign-key checks off for the load (SQLite
  ``PRAGMA foreign_keys=OFF``, PostgreSQL ``session_replication_role = replica`` when permitted);
* explicit ids, so no round trip per row; PostgreSQL sequences are moved past them at the end.

What it guarantees (tests/test_perf_generate.py checks it): valid credit codes (GB 32100 check character and
GB 11714 organisation-code check), valid mainland mobiles, unique (event, mobile) registrations, one active
pledge per patent, every CHECK constraint, stage histories that follow ``crm.credit.stages``, and FirmAccount
rows whose last visit, willingness and open need are those of the bank's latest visit to the firm.

Only ``generate()`` touches the database; everything before it is deterministic arithmetic.
"""
from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
import time as _time
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable, Optional

import sqlalchemy as sa

from crm.core.validators import credit_code_check_char, patent_check_char

__all__ = ["generate", "Plan", "DatabaseNotEmpty", "credit_code_for", "has_data", "add_big_event",
           "BENCH_PASSWORD", "START", "END"]

#: the password of every generated user (the data is synthetic; never load it into a real deployment)
BENCH_PASSWORD = "Bench-Gen-2026!"
START = date(2023, 1, 1)
END = date(2026, 11, 25)
YEARS = (2023, 2024, 2025, 2026)
UTC = timezone.utc
SZ_OFFSET_MIN = 8 * 60  # Shenzhen is UTC+8 all year
CHUNK = 10_000

SCALE1 = {
    "branches": 40, "firms": 100_000, "visits": 1_000_000, "events": 10_000, "registrations": 300_000,
    "credits": 50_000,
}
CHECKED_IN_SHARE = 0.80
IP_PLEDGE_SHARE = 0.20

# (code, name, short name): a few large banks and a tail (weights are Zipf-like, see Plan)
BANKS = [
    ("SZRCB", "深圳农村商业银行", "深圳农商银行"),
    ("ICBC-SZ", "中国工商银行深圳市分行", "工商银行"),
    ("CCB-SZ", "中国建设银行深圳市分行", "建设银行"),
    ("CMB-SZ", "招商银行深圳分行", "招商银行"),
    ("BOC-SZ", "中国银行深圳市分行", "中国银行"),
]
BUREAU = ("LG-KCJ", "深圳市龙岗区科技创新局", "龙岗区科创局")

INDUSTRY_WEIGHTS = [("electronic_info", 30), ("ai", 22), ("other", 16), ("biomedicine", 11),
                    ("smart_driving", 9), ("low_carbon", 7), ("low_altitude", 5)]
SECTION_WEIGHTS = [("C", 46), ("I", 24), ("M", 14), ("F", 6), ("L", 3), ("D", 2), ("E", 1), ("N", 1), ("Q", 1),
                   ("R", 1), ("G", 1)]
AREA_WEIGHTS = [("longgang", 30), ("nanshan", 22), ("baoan", 14), ("longhua", 10), ("futian", 8),
                ("guangming", 5), ("pingshan", 4), ("luohu", 3), ("yantian", 1.5), ("dapeng", 1), ("shenshan", 0.5)]
MODE_WEIGHTS = [("on_site", 52), ("phone", 24), ("online", 10), ("event", 8), ("firm_came", 6)]
WILLINGNESS_WEIGHTS = [("strong", 14), ("some", 30), ("wait", 34), ("refused", 12), ("unreachable", 10)]
SIZE_WEIGHTS = [("micro", 30), ("small", 45), ("medium", 20), ("large", 5)]
SME_WEIGHTS = [("none", 70), ("innovative", 17), ("specialised", 10), ("little_giant", 3)]
EVENT_KIND_WEIGHTS = [("industry", 35), ("park", 25), ("bank", 20), ("policy", 12), ("online", 8)]
PRODUCT_OTHER_WEIGHTS = [("working_capital", 45), ("rnd_loan", 25), ("equipment_renewal", 20), ("other", 10)]
DECLINE_WEIGHTS = [("insufficient_cashflow", 25), ("high_leverage", 18), ("collateral", 16), ("credit_record", 10),
                   ("ip_value_low", 10), ("policy", 8), ("materials", 7), ("ip_ownership", 3), ("other", 3)]
REQUESTED_WAN = [(100, 12), (200, 16), (300, 16), (500, 18), (800, 10), (1000, 10), (1500, 6), (2000, 5),
                 (3000, 4), (5000, 2), (8000, 1)]
NEED_WAN = [(50, 10), (100, 18), (200, 18), (300, 15), (500, 15), (800, 8), (1000, 8), (2000, 5), (3000, 2),
            (5000, 1)]
MOBILE_PREFIXES = ["130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
                   "156", "157", "158", "159", "166", "177", "180", "181", "182", "185", "186", "187", "188",
                   "189", "191", "198", "199"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵万覃武钱"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰涛明超秀霞平刚桂英华玉兰萍建国志红文斌宇浩凯鹏飞俊晨欣怡子涵梓轩雨嘉思博晓东海波"
BRAND = "华中科创新信达通联汇智云天海腾龙源盛泰嘉宏瑞鑫安康恒金德利博远星光图微芯数电能航迈锐思捷峰昊宸睿禾朗维拓"
FIELD_WORDS = {
    "electronic_info": ["电子", "芯片", "半导体", "光电", "通信", "微电子"],
    "ai": ["智能", "人工智能", "数据", "视觉", "机器人", "算法"],
    "biomedicine": ["生物", "医药", "基因", "医疗器械", "生命科学"],
    "smart_driving": ["智驾", "汽车电子", "车联网", "激光雷达"],
    "low_carbon": ["新能源", "储能", "环保", "氢能", "光伏"],
    "low_altitude": ["无人机", "航空", "飞行器", "低空"],
    "other": ["实业", "信息", "材料", "精密", "软件"],
}
SUFFIXES = [("科技有限公司", 55), ("技术有限公司", 20), ("股份有限公司", 8), ("电子有限公司", 7),
            ("实业有限公司", 5), ("信息技术有限公司", 5)]
TITLES = ["总经理", "财务总监", "董事长", "副总经理", "财务经理", "行政经理", "董事会秘书", "研发总监"]
SUMMARY_A = ["了解企业经营情况", "介绍知识产权质押贷款", "对接研发贷需求", "宣讲贴息与风险补偿政策", "回访上次融资需求",
             "协助准备授信材料", "沟通设备更新贷款", "了解订单与回款", "企业反馈扩产资金需求", "与科创局联合走访"]
SUMMARY_B = ["企业有意向，待财务测算", "暂无融资需求", "已约定下周提交材料", "需进一步评估专利价值", "企业希望利率优惠",
             "已转授信审批", "企业正在比较多家银行方案", "关注政策贴息申请进度", "待企业董事会决议", "建议参加下期对接会"]
PURPOSES = ["流动资金周转", "研发投入", "设备采购", "扩大产能", "原材料采购", "项目建设"]
GUARANTEES = ["知识产权质押", "信用", "保证担保", "抵押", "政策性担保"]
NEXT_STEPS = ["提交授信材料", "安排专利评估", "二次走访", "邀请参加对接会", "电话回访", "跟进审批进度"]
PATENT_NOUNS = ["图像识别", "电池管理", "无人机避障", "芯片封装", "基因检测", "激光雷达标定", "储能控制", "柔性显示",
                "自动驾驶路径规划", "医疗影像分割"]


class DatabaseNotEmpty(RuntimeError):
    """The target database already holds organisations, users or firms."""


# ----------------------------------------------------------------------------------------------------------
# Deterministic helpers
# ----------------------------------------------------------------------------------------------------------


class Cat:
    """A categorical distribution sampled with one ``random()`` and a C-level bisect."""

    __slots__ = ("values", "cum", "total")

    def __init__(self, pairs):
        self.values = [v for v, _w in pairs]
        acc, cum = 0.0, []
        for _v, w in pairs:
            acc += w
            cum.append(acc)
        self.cum = cum
        self.total = acc

    def draw(self, rnd: Callable[[], float]):
        return self.values[bisect.bisect_right(self.cum, rnd() * self.total)]

    def index(self, rnd: Callable[[], float]) -> int:
        i = bisect.bisect_right(self.cum, rnd() * self.total)
        return i if i < len(self.cum) else len(self.cum) - 1


def zipf_weights(n: int, s: float = 1.0) -> list[float]:
    return [1.0 / (k + 1) ** s for k in range(n)]


def allocate(total: int, weights: list[float], minimum: int, rng: random.Random) -> list[int]:
    """Split ``total`` into len(weights) integer parts proportional to the weights, each at least ``minimum``."""
    n = len(weights)
    if n == 0:
        return []
    base = minimum * n
    rest = max(0, total - base)
    w_total = sum(weights) or 1.0
    parts = [minimum + int(rest * w / w_total) for w in weights]
    short = total - sum(parts)
    if short > 0:
        order = list(range(n))
        rng.shuffle(order)
        for i in itertools.islice(itertools.cycle(order), short):
            parts[i] += 1
    return parts


_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_OC_BODY_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # the credit-code charset (no I, O, S, V, Z)


def credit_code_for(n: int, seed: int = 0, region: str = "440307") -> str:
    """A valid unified social credit code (GB 32100 check character, GB 11714 organisation code) unique per n.

    n is mapped to an 8-character organisation-code body by an affine bijection modulo 31**8, so codes are
    unique for distinct n (and do not look sequential); the 9th character is the GB 11714 check digit.
    """
    space = 31 ** 8
    x = (n * 2_654_435_761 + (seed % 1_000_003) * 7_919 + 12_345) % space
    body = []
    for _ in range(8):
        x, r = divmod(x, 31)
        body.append(_OC_BODY_CHARS[r])
    body_s = "".join(body)
    s = sum(int(ch, 36) * w for ch, w in zip(body_s, _ORG_WEIGHTS))
    c = 11 - s % 11
    org_check = "X" if c == 10 else "0" if c == 11 else str(c)
    first17 = "91" + region + body_s + org_check
    return first17 + credit_code_check_char(first17)


def patent_no_for(n: int, year: int, type_digit: int) -> str:
    """A canonical CNIPA application number YYYYTNNNNNNN.C, unique per (n, year, type)."""
    serial = (n * 7_654_321 + 1_000_003) % 10_000_000
    digits = f"{year:04d}{type_digit}{serial:07d}"
    return f"{digits}.{patent_check_char(digits)}"


class Clock:
    """Working days and Shenzhen-local timestamps over the generator's window, precomputed."""

    def __init__(self, first: date = date(2022, 1, 1), last: date = date(2028, 12, 31)):
        from crm.core.workdays import is_workday

        self.first = first
        self.days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        self.workday = [is_workday(d)[0] for d in self.days]
        self.work_idx = [i for i, ok in enumerate(self.workday) if ok]
        self._dt_cache: dict = {}

    def idx(self, d: date) -> int:
        return (d - self.first).days

    def add_workdays(self, d: date, n: int) -> date:
        """The n-th working day strictly after d (n >= 1); same rule as crm.core.workdays.add_workdays."""
        k = bisect.bisect_right(self.work_idx, self.idx(d))
        return self.days[self.work_idx[k + n - 1]]

    def local(self, d: date, minute_of_day: int) -> datetime:
        """An aware UTC datetime for a Shenzhen wall-clock minute of a day (cached: few distinct values)."""
        key = (d, minute_of_day)
        v = self._dt_cache.get(key)
        if v is None:
            v = datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(minutes=minute_of_day - SZ_OFFSET_MIN)
            self._dt_cache[key] = v
        return v


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    y += d.year
    m += 1
    day = min(d.day, [31, 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28, 31, 30, 31, 30, 31, 31,
                      30, 31, 30, 31][m - 1])
    return date(y, m, day)


@dataclass
class Plan:
    """Row counts for a scale."""

    scale: float
    banks: int = 5
    branches: int = 0
    firms: int = 0
    visits: int = 0
    events: int = 0
    registrations: int = 0
    credits: int = 0
    rms_per_branch: int = 0
    bureau_users: int = 0

    @classmethod
    def for_scale(cls, scale: float) -> "Plan":
        if not (0 < scale <= 20):
            raise ValueError("scale must be in (0, 20]")

        def n(key, minimum):
            return max(minimum, int(round(SCALE1[key] * scale)))

        return cls(
            scale=scale, branches=n("branches", 5), firms=n("firms", 20), visits=n("visits", 60),
            events=n("events", 4), registrations=n("registrations", 40), credits=n("credits", 20),
            rms_per_branch=max(2, int(round(8 * math.sqrt(scale)))),
            bureau_users=max(2, int(round(10 * math.sqrt(scale)))),
        )


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------


#: the big tables whose secondary indexes are dropped during the load and rebuilt afterwards
BIG_TABLES = ("firm", "firm_account", "contact", "visit", "visit_companion", "follow_up", "registration",
              "credit_application", "stage_change", "event", "event_organiser", "event_industry", "event_staff",
              "pledge", "valuation", "ip_asset")


class Loader:
    """Writes rows (tuples in a given column order) through the raw DBAPI connection."""

    def __init__(self, engine: sa.Engine, metadata: sa.MetaData, log: Callable[[str], None],
                 drop_indexes: bool = True):
        self.drop_indexes = drop_indexes
        self.engine = engine
        self.dialect = engine.dialect
        self.metadata = metadata
        self.log = log
        insp = sa.inspect(engine)
        self.db_columns = {t: [c["name"] for c in insp.get_columns(t)] for t in insp.get_table_names()}
        if engine.dialect.name == "sqlite":
            engine.dispose()  # the journal mode can only change while no other connection is open
        self.raw = engine.raw_connection()
        self.dbapi = self.raw.driver_connection
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self._plans: dict = {}
        self.dropped: list[tuple[str, str, str]] = []  # (table, index name, create sql)

    # -- per-table column plan: which of our columns exist, what to fill for the others ---------------
    def _plan(self, table: str, columns: tuple[str, ...]):
        key = (table, columns)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        tbl = self.metadata.tables[table]
        db_cols = self.db_columns.get(table)
        if db_cols is None:
            raise RuntimeError(f"table {table} is missing: run `flask db upgrade` first")
        keep = [i for i, c in enumerate(columns) if c in db_cols]
        names = [columns[i] for i in keep]
        fills = []
        for c in db_cols:
            if c in columns:
                continue
            col = tbl.c.get(c)
            if col is None or col.server_default is not None or col.nullable or col.autoincrement is True:
                continue  # server default, NULL, or an id we do not set
            if col.default is not None and getattr(col.default, "is_scalar", False):
                fills.append((c, col.default.arg))
            elif col.default is not None and getattr(col.default, "is_callable", False):
                fills.append((c, col.default.arg))
            else:
                raise RuntimeError(f"{table}.{c} is NOT NULL without a default; teach crm/perf/generate.py about it")
        names += [c for c, _v in fills]
        procs = []
        if self.dialect.name == "sqlite":
            for pos, name in enumerate(names):
                col = tbl.c.get(name)
                if col is None:
                    continue
                proc = col.type._cached_bind_processor(self.dialect)
                if proc is not None:
                    procs.append((pos, proc))
        plan = (keep, names, fills, procs, len(keep) == len(columns), _shaper(keep, fills, procs))
        self._plans[key] = plan
        return plan

    def _shape(self, plan, rows):
        return plan[5](rows)

    def write(self, table: str, columns: tuple[str, ...], rows: list) -> None:
        if not rows:
            return
        t0 = _time.perf_counter()
        plan = self._plan(table, columns)
        names = plan[1]
        q = self.dialect.identifier_preparer.quote
        if self.dialect.name == "postgresql":
            keep, _names, fills, _procs, identity, _shaper_fn = plan
            with self.dbapi.cursor() as cur:
                with cur.copy(f"COPY {q(table)} ({', '.join(q(n) for n in names)}) FROM STDIN") as cp:
                    for r in (rows if identity and not fills else self._shape(plan, rows)):
                        cp.write_row(r)
        else:
            sql = f"INSERT INTO {q(table)} ({', '.join(q(n) for n in names)}) VALUES ({', '.join('?' * len(names))})"
            cur = self.dbapi.cursor()
            cur.executemany(sql, self._shape(plan, rows))
            cur.close()
        self.counts[table] = self.counts.get(table, 0) + len(rows)
        self.seconds[table] = self.seconds.get(table, 0.0) + _time.perf_counter() - t0

    # -- session setup, index drop/rebuild, finish --------------------------------------------------------
    def begin(self) -> None:
        cur = self.dbapi.cursor()
        if self.dialect.name == "sqlite":
            self.dbapi.commit()
            cur.execute("PRAGMA foreign_keys=OFF")
            # a rollback journal instead of WAL for the load: a WAL would grow to the size of the data
            try:
                cur.execute("PRAGMA journal_mode=DELETE")
            except Exception:  # another connection is open: keep WAL (slower for big loads, still correct)
                pass
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA cache_size=-262144")  # 256 MiB page cache for the load
            cur.execute("PRAGMA temp_store=MEMORY")
        else:
            try:
                cur.execute("SET session_replication_role = replica")  # no FK triggers while loading
            except Exception:  # not a superuser: keep the checks, just slower
                self.dbapi.rollback()
            cur.execute("SET synchronous_commit = off")
            cur.execute("SET maintenance_work_mem = '256MB'")
        cur.close()
        if self.drop_indexes:
            self._drop_indexes()

    def _drop_indexes(self) -> None:
        cur = self.dbapi.cursor()
        for table in BIG_TABLES:
            if table not in self.db_columns:
                continue
            if self.dialect.name == "sqlite":
                cur.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name=? AND sql IS NOT NULL",
                            (table,))
                found = [(table, n, s) for n, s in cur.fetchall()]
            else:
                cur.execute(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() "
                    "AND i.tablename = %s AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                    "WHERE c.conname = i.indexname AND c.connamespace = (SELECT oid FROM pg_namespace "
                    "WHERE nspname = current_schema()))", (table,))
                found = [(table, n, s) for n, s in cur.fetchall()]
            for t, name, sql in found:
                if " UNIQUE " in sql.upper():
                    continue  # keep unique indexes: they guard the data we write
                cur.execute(f"DROP INDEX {self.dialect.identifier_preparer.quote(name)}")
                self.dropped.append((t, name, sql))
        self.dbapi.commit()
        cur.close()

    def commit(self) -> None:
        self.dbapi.commit()

    def finish(self, analyze: bool = True) -> dict[str, float]:
        timings = {}
        cur = self.dbapi.cursor()
        t0 = _time.perf_counter()
        for _t, _name, sql in self.dropped:
            cur.execute(sql)
        self.dbapi.commit()
        timings["indexes"] = _time.perf_counter() - t0
        if self.dialect.name == "postgresql":
            t0 = _time.perf_counter()
            for table, cols in self.db_columns.items():
                if "id" in cols and table in self.counts:
                    cur.execute(f"SELECT pg_get_serial_sequence(%s, 'id')", (self.dialect.identifier_preparer.quote(table),))
                    seq = cur.fetchone()[0]
                    if seq:
                        cur.execute(f"SELECT setval(%s, (SELECT COALESCE(MAX(id), 0) + 1 FROM "
                                    f"{self.dialect.identifier_preparer.quote(table)}), false)", (seq,))
            self.dbapi.commit()
            timings["sequences"] = _time.perf_counter() - t0
        if analyze:
            t0 = _time.perf_counter()
            if self.dialect.name == "postgresql":
                self.dbapi.autocommit = True
                cur.execute("VACUUM ANALYZE")
                self.dbapi.autocommit = False
            else:
                cur.execute("ANALYZE")
                self.dbapi.commit()
            timings["analyze"] = _time.perf_counter() - t0
        if self.dialect.name == "sqlite":
            self.dbapi.commit()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()
        self._restore_session()
        self.raw.close()
        return timings

    def _restore_session(self) -> None:
        """PostgreSQL: undo the load's session settings before the connection goes back to the pool, where the
        application would otherwise run on it without foreign key checks (``session_replication_role``)."""
        if self.dialect.name != "postgresql":
            return
        self.dbapi.rollback()
        cur = self.dbapi.cursor()
        for name in ("session_replication_role", "synchronous_commit", "maintenance_work_mem"):
            cur.execute(f"RESET {name}")
        cur.close()
        self.dbapi.commit()

    def abort(self) -> None:
        try:
            self.dbapi.rollback()
            cur = self.dbapi.cursor()
            for _t, _name, sql in self.dropped:
                try:
                    cur.execute(sql)
                except Exception:
                    pass
            self.dbapi.commit()
            if self.dialect.name == "sqlite":
                cur.execute("PRAGMA foreign_keys=ON")
            self._restore_session()
        finally:
            self.raw.close()


class _Memo(dict):
    """value -> bind-processed value; a C-level dict hit for the few distinct dates and flags."""

    def __init__(self, proc):
        super().__init__({None: None})
        self.proc = proc

    def __missing__(self, key):
        value = self[key] = self.proc(key)
        return value


def _shaper(keep: list[int], fills: list, procs: list) -> Callable[[list], list]:
    """Compile ``rows -> rows`` that picks the kept columns, appends defaults and applies bind processors."""
    env: dict = {}
    by_pos = dict(procs)
    parts = []
    for pos, src in enumerate(keep):
        if pos in by_pos:
            env[f"_m{pos}"] = _Memo(by_pos[pos])
            parts.append(f"_m{pos}[r[{src}]]")
        else:
            parts.append(f"r[{src}]")
    for k, (_c, v) in enumerate(fills):
        pos = len(keep) + k
        env[f"_f{k}"] = v
        expr = f"_f{k}(None)" if callable(v) else f"_f{k}"
        if pos in by_pos:
            env[f"_m{pos}"] = _Memo(by_pos[pos])
            expr = f"_m{pos}[{expr}]"
        parts.append(expr)
    src = f"def shape(rows):\n    return [({', '.join(parts)},) for r in rows]\n"
    exec(src, env)  # noqa: S102  (built from column positions only)
    return env["shape"]


class Sink:
    """Buffers the rows of one table and writes them in chunks."""

    def __init__(self, loader: Loader, table: str, columns: tuple[str, ...]):
        self.loader, self.table, self.columns = loader, table, columns
        self.rows: list = []
        self.count = 0

    def add(self, row) -> None:
        self.rows.append(row)
        if len(self.rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.loader.write(self.table, self.columns, self.rows)
            self.count += len(self.rows)
            self.rows = []


# ----------------------------------------------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------------------------------------------


def has_data(conn) -> bool:
    """Whether the database holds anything beyond the migrations' reference data."""
    for table in ("organisation", '"user"', "firm"):
        if conn.exec_driver_sql(f"SELECT 1 FROM {table} LIMIT 1").first() is not None:
            return True
    return False


def _next_ids(conn) -> dict[str, int]:
    out = {}
    for table in ("organisation", "user", "campaign", "firm", "firm_account", "contact", "visit", "follow_up",
                  "event", "registration", "credit_application", "stage_change", "ip_asset", "pledge", "valuation",
                  "securitisation_pool"):
        q = conn.dialect.identifier_preparer.quote(table)
        out[table] = (conn.exec_driver_sql(f"SELECT COALESCE(MAX(id), 0) FROM {q}").scalar() or 0) + 1
    return out


@dataclass
class Result:
    plan: Plan
    seed: int
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    #: CPU time of this process (on SQLite that includes the database engine's own work)
    cpu_seconds: float = 0.0
    firm_code_checksum: str = ""
    logins: dict[str, str] = field(default_factory=dict)


def generate(engine: sa.Engine, scale: float, seed: int = 1, *, append: bool = False,
             password_hash: Optional[str] = None, analyze: bool = True, drop_indexes: bool = True,
             plan: Optional[Plan] = None, log: Callable[[str], None] = lambda s: None) -> Result:
    """Generate and load a data set of ``scale`` into the (migrated) database behind ``engine``.

    Refuses a database that already holds organisations, users or firms unless ``append`` is true (the new
    rows then get codes and user names prefixed with ``s<seed>-`` and ids after the existing ones; running
    the same seed twice is refused).
    """
    from crm.extensions import db

    t_start = _time.perf_counter()
    plan = plan or Plan.for_scale(scale)
    with engine.connect() as conn:
        nonempty = has_data(conn)
        if nonempty and not append:
            raise DatabaseNotEmpty("the database already has data (organisations, users or firms)")
        prefix = f"S{seed}-" if nonempty else ""
        if prefix and conn.exec_driver_sql(
                "SELECT 1 FROM organisation WHERE code = ?" if engine.dialect.name == "sqlite"
                else "SELECT 1 FROM organisation WHERE code = %s", (prefix + BANKS[0][0],)).first():
            raise DatabaseNotEmpty(f"data for seed {seed} was already appended; choose another --seed")
        ids = _next_ids(conn)
        streets = [(r[0], r[1]) for r in conn.exec_driver_sql("SELECT id, area_code FROM street ORDER BY id")]
    if password_hash is None:
        from werkzeug.security import generate_password_hash

        password_hash = generate_password_hash(BENCH_PASSWORD, method="pbkdf2:sha256:600000")

    loader = Loader(engine, db.metadata, log, drop_indexes=drop_indexes)
    res = Result(plan=plan, seed=seed)
    cpu0 = _time.process_time()
    try:
        loader.begin()
        g = _Gen(loader, plan, seed, prefix, ids, streets, password_hash, log)
        g.run()
        loader.commit()
        res.seconds.update(loader.finish(analyze=analyze))
    except BaseException:
        loader.abort()
        raise
    res.counts = dict(loader.counts)
    res.seconds.update({f"write:{k}": v for k, v in loader.seconds.items()})
    res.seconds.update(g.phase_seconds)
    res.total_seconds = _time.perf_counter() - t_start
    res.cpu_seconds = _time.process_time() - cpu0
    res.firm_code_checksum = g.code_digest.hexdigest()
    res.logins = g.logins
    return res


class _Gen:
    def __init__(self, loader, plan: Plan, seed, prefix, ids, streets, password_hash, log):
        self.L = loader
        self.plan = plan
        self.seed = seed
        self.P = prefix
        self.ids = ids
        self.rng = random.Random(seed)
        self.rnd = self.rng.random
        self.pw_hash = password_hash
        self.log = log
        self.clock = Clock()
        self.streets_by_area: dict[str, list[int]] = {}
        for sid, area in streets:
            self.streets_by_area.setdefault(area, []).append(sid)
        self.phase_seconds: dict[str, float] = {}
        self.code_digest = hashlib.sha256()
        self.logins: dict[str, str] = {}
        self.user_branch: dict[int, int] = {}
        # visit and event days: working days weigh 1, weekends 0.08, and activity grows 35% a year
        days, weights = [], []
        for i, d in enumerate(self.clock.days):
            if START <= d <= END:
                growth = 1.0 + 0.35 * (d - START).days / 365.0
                days.append(d)
                weights.append(growth * (1.0 if self.clock.workday[i] else 0.08))
        self.day_list = days
        self.day_cat = Cat(list(zip(range(len(days)), weights)))

    # -- ids ------------------------------------------------------------------------------------------------
    def nid(self, table: str) -> int:
        v = self.ids[table]
        self.ids[table] = v + 1
        return v

    def sink(self, table, columns):
        return Sink(self.L, table, tuple(columns))

    def phase(self, name, fn):
        t0 = _time.perf_counter()
        fn()
        self.L.commit()
        self.phase_seconds[f"gen:{name}"] = _time.perf_counter() - t0
        self.log(f"  {name:<14} {_time.perf_counter() - t0:6.2f} s")

    def run(self):
        self.phase("organisations", self.gen_orgs)
        self.phase("firms", self.gen_firms)
        self.phase("visits", self.gen_visits)
        self.phase("events", self.gen_events)
        self.phase("credit", self.gen_credit)

    # -- helpers --------------------------------------------------------------------------------------------
    def day(self) -> date:
        return self.day_list[self.day_cat.index(self.rnd)]

    def person_name(self) -> str:
        rnd = self.rnd
        given = GIVEN[int(rnd() * len(GIVEN))]
        if rnd() < 0.7:
            given += GIVEN[int(rnd() * len(GIVEN))]
        return SURNAMES[int(rnd() * len(SURNAMES))] + given

    def mobile(self) -> str:
        return MOBILE_PREFIXES[int(self.rnd() * len(MOBILE_PREFIXES))] + f"{int(self.rnd() * 100_000_000):08d}"

    def stamp(self, d: date) -> datetime:
        """A created_at on a business day: 09:00-17:45 Shenzhen in quarter hours (few distinct values)."""
        return self.clock.local(d, 540 + 15 * int(self.rnd() * 36))

    # -- organisations, users, campaigns ---------------------------------------------------------------------
    def gen_orgs(self):
        P, rnd = self.P, self.rnd
        orgs = self.sink("organisation", ("id", "code", "name", "short_name", "kind", "parent_id", "is_active",
                                          "created_at", "modified_at"))
        created = self.clock.local(date(2022, 12, 1), 600)
        bank_w = zipf_weights(self.plan.banks, 1.0)
        self.bank_weights = bank_w
        self.banks = []  # dicts: id, code, branches [ids], rms [ids], managers [ids]
        for code, name, short in BANKS[: self.plan.banks]:
            bid = self.nid("organisation")
            orgs.add((bid, P + code, name, short, "bank", None, True, created, created))
            self.banks.append({"id": bid, "code": P + code, "short": short, "branches": [], "rms": [],
                               "rms_by_branch": {}, "managers": []})
        branch_counts = allocate(self.plan.branches, bank_w, 1, self.rng)
        area_names = [a for a, _w in AREA_WEIGHTS]
        for b, n in zip(self.banks, branch_counts):
            for k in range(n):
                oid = self.nid("organisation")
                area = area_names[k % len(area_names)]
                orgs.add((oid, f"{b['code']}-{k + 1:02d}", f"{b['short']}{area}第{k // len(area_names) + 1}支行",
                          f"{b['short']}{k + 1:02d}支行", "bank", b["id"], True, created, created))
                b["branches"].append(oid)
        self.bureau_id = self.nid("organisation")
        orgs.add((self.bureau_id, P + BUREAU[0], BUREAU[1], BUREAU[2], "bureau", None, True, created, created))
        orgs.flush()

        users = self.sink("user", ("id", "username", "name", "password_hash", "role", "org_id", "bank_id",
                                   "is_active", "locale", "session_token", "last_login_at", "must_change_password",
                                   "created_at", "modified_at"))
        up = P.lower()

        def add_user(username, role, org_id, bank_id):
            uid = self.nid("user")
            token = f"{self.rng.getrandbits(128):032x}{uid:x}"
            users.add((uid, up + username, self.person_name(), self.pw_hash, role, org_id, bank_id, True, "zh",
                       token, None, False, created, created))
            return uid

        self.admin_id = add_user("admin", "admin", self.bureau_id, None)
        self.bureau_users = [add_user(f"bureau{i + 1}", "bureau", self.bureau_id, None)
                             for i in range(self.plan.bureau_users)]
        for bi, b in enumerate(self.banks):
            n_mgr = 2 if bi < 2 else 1
            for m in range(n_mgr):
                b["managers"].append(add_user(f"mgr{bi + 1}_{m + 1}", "bank_manager", b["id"], b["id"]))
            for ki, br in enumerate(b["branches"]):
                lst = []
                for r in range(self.plan.rms_per_branch):
                    uid = add_user(f"rm{bi + 1}_{ki + 1:02d}_{r + 1}", "rm", br, b["id"])
                    lst.append(uid)
                    b["rms"].append(uid)
                    self.user_branch[uid] = br
                b["rms_by_branch"][br] = lst
        users.flush()
        self.logins = {"admin": up + "admin", "bureau": up + "bureau1", "bank_manager": up + "mgr1_1",
                       "rm": up + "rm1_01_1", "password": BENCH_PASSWORD}

        camps = self.sink("campaign", ("id", "code", "name", "district", "start_on", "end_on", "description",
                                       "created_at", "modified_at"))
        corg = self.sink("campaign_org", ("campaign_id", "org_id"))
        cind = self.sink("campaign_industry", ("campaign_id", "industry_code"))
        self.campaign_by_year = {}
        for y in YEARS:
            cid = self.nid("campaign")
            camps.add((cid, f"{P}ZCR{y}", f"知产融专项活动{y}", "龙岗区", date(y, 1, 1), date(y, 12, 31),
                       "生成的性能测试数据 / generated benchmark data", created, created))
            self.campaign_by_year[y] = cid
        camps.flush()
        for cid in self.campaign_by_year.values():
            for b in self.banks:
                corg.add((cid, b["id"]))
            corg.add((cid, self.bureau_id))
            for code, _w in INDUSTRY_WEIGHTS:
                if code != "other":
                    cind.add((cid, code))
        corg.flush()
        cind.flush()

    # -- firms, accounts, contacts ----------------------------------------------------------------------------
    def gen_firms(self):
        rng, rnd, plan = self.rng, self.rnd, self.plan
        ind_cat, sec_cat, area_cat = Cat(INDUSTRY_WEIGHTS), Cat(SECTION_WEIGHTS), Cat(AREA_WEIGHTS)
        size_cat, sme_cat, suffix_cat = Cat(SIZE_WEIGHTS), Cat(SME_WEIGHTS), Cat(SUFFIXES)
        brand_cat = Cat(list(zip(BRAND, zipf_weights(len(BRAND), 0.8))))
        gb2260 = {"luohu": "440303", "futian": "440304", "nanshan": "440305", "baoan": "440306", "longgang": "440307",
                  "yantian": "440308", "longhua": "440309", "pingshan": "440310", "guangming": "440311",
                  "dapeng": "440300", "shenshan": "441500"}
        street_cats = {a: Cat(list(zip(s, zipf_weights(len(s), 1.1)))) for a, s in self.streets_by_area.items()}
        firms = self.sink("firm", ("id", "name", "credit_code", "area_code", "street_id", "industry_code",
                                   "section_code", "size_class", "founded_on", "registered_capital_fen", "headcount",
                                   "high_tech_cert_no", "high_tech_issued_on", "sme_tier", "is_tech_sme",
                                   "invention_patents", "utility_models", "design_patents", "software_copyrights",
                                   "is_cross_border", "created_by_id", "created_at", "modified_at", "version"))
        names_seen: set[str] = set()
        self.firm_ids: list[int] = []
        self.firm_high_tech: dict[int, date] = {}
        self.firm_cross: set[int] = set()
        self.firm_name: dict[int, str] = {}
        self.firm_created: dict[int, date] = {}
        code_base = 0 if not self.P else 50_000_000 + self.seed * 1_000
        for i in range(plan.firms):
            fid = self.nid("firm")
            ind = ind_cat.draw(rnd)
            words = FIELD_WORDS[ind]
            for attempt in range(4):
                name = ("深圳市" if rnd() < 0.75 else "深圳") + brand_cat.draw(rnd) + brand_cat.draw(rnd)
                if attempt >= 2:
                    name += brand_cat.draw(rnd)
                name += words[int(rnd() * len(words))] + suffix_cat.draw(rnd)
                if name not in names_seen:
                    break
            else:
                name = name.replace("有限公司", f"（{i}）有限公司")
            names_seen.add(name)
            area = area_cat.draw(rnd)
            st_cat = street_cats.get(area)
            street = st_cat.draw(rnd) if st_cat else None
            code = credit_code_for(code_base + i, self.seed, gb2260.get(area, "440300"))
            self.code_digest.update(code.encode())
            founded = date(2000, 1, 1) + timedelta(days=int(rnd() ** 0.6 * 9000))
            size = size_cat.draw(rnd)
            headcount = {"micro": 5, "small": 30, "medium": 150, "large": 800}[size]
            headcount = max(1, int(headcount * (0.3 + rnd() * 1.4)))
            capital = int(rng.paretovariate(1.3) * 1_000_000) * 100  # fen, ≥ 100万 yuan
            ht_issued = ht_no = None
            if rnd() < 0.42:
                ht_issued = date(2017, 10, 1) + timedelta(days=int(rnd() * 3300))
                ht_no = f"GR{ht_issued.year}44{int(rnd() * 1_000_000):06d}"
                self.firm_high_tech[fid] = ht_issued
            inv = int(rng.paretovariate(1.4)) - 1 if rnd() < 0.6 else 0
            util = int(rng.paretovariate(1.2)) - 1 if rnd() < 0.7 else 0
            cross = rnd() < 0.03
            if cross:
                self.firm_cross.add(fid)
            created_on = START - timedelta(days=int(rnd() * 90))
            created_at = self.stamp(created_on)
            firms.add((fid, name, code, area, street, ind, sec_cat.draw(rnd), size, founded, capital, headcount,
                       ht_no, ht_issued, sme_cat.draw(rnd), rnd() < 0.3, inv, util,
                       int(rnd() * 3) if rnd() < 0.2 else 0, int(rng.paretovariate(1.5)) - 1 if rnd() < 0.5 else 0,
                       cross, None, created_at, created_at, 1))
            self.firm_ids.append(fid)
            self.firm_name[fid] = name
        firms.flush()
        # firm popularity for event attendance: a heavy tail of "regulars"
        self.firm_pop = Cat([(f, rng.paretovariate(1.2)) for f in self.firm_ids])

        # accounts: 95% of firms have a relationship with at least one bank, 18% with two, 3% with three
        bank_cat = Cat(list(zip(range(len(self.banks)), self.bank_weights)))
        self.accounts = []  # [id, firm, bank idx, branch, owner]
        acc_by_key = {}
        for fid in self.firm_ids:
            if rnd() < 0.05:
                continue
            n_banks = 1 + (rnd() < 0.18) + (rnd() < 0.03)
            chosen = []
            while len(chosen) < min(n_banks, len(self.banks)):
                bi = bank_cat.index(rnd)
                if bi not in chosen:
                    chosen.append(bi)
            for bi in chosen:
                b = self.banks[bi]
                br = b["branches"][int(rnd() ** 1.5 * len(b["branches"]))]
                rms = b["rms_by_branch"][br]
                owner = rms[int(rnd() * len(rms))]
                acc = [self.nid("firm_account"), fid, bi, br, owner]
                self.accounts.append(acc)
                acc_by_key[(fid, bi)] = acc
        # contacts: one per account, recorded by that bank
        contacts = self.sink("contact", ("id", "firm_id", "bank_id", "name", "title", "mobile", "email",
                                         "created_by_id", "created_at", "modified_at", "version", "is_deleted"))
        self.contact_of = {}
        for acc in self.accounts:
            cid = self.nid("contact")
            ts = self.stamp(START)
            contacts.add((cid, acc[1], self.banks[acc[2]]["id"], self.person_name(), TITLES[int(rnd() * len(TITLES))],
                          self.mobile(), "", acc[4], ts, ts, 1, False))
            self.contact_of[acc[0]] = cid
        contacts.flush()

    # -- visits, companions, follow-ups, firm accounts -----------------------------------------------------
    def gen_visits(self):
        rng, rnd, plan, clock = self.rng, self.rnd, self.plan, self.clock
        mode_cat, will_cat, need_cat = Cat(MODE_WEIGHTS), Cat(WILLINGNESS_WEIGHTS), Cat(NEED_WAN)
        # 10% of accounts never visited ("never reached"); the rest share the visits, heavy-tailed
        visited = [a for a in self.accounts if rnd() >= 0.10] or self.accounts[:1]
        counts = allocate(plan.visits, [rng.paretovariate(1.6) for _ in visited], 1, rng)
        visits = self.sink("visit", ("id", "bank_id", "branch_id", "campaign_id", "firm_id", "rm_id", "visited_on",
                                     "mode_code", "contact_id", "summary", "willingness_code", "need_amount_fen",
                                     "need_term_months", "need_purpose", "need_guarantee", "wants_subsidy",
                                     "wants_risk_compensation", "next_step", "next_step_owner_id", "next_step_due_on",
                                     "created_by_id", "created_at", "modified_at", "version", "is_deleted"))
        comps = self.sink("visit_companion", ("visit_id", "user_id"))
        fups = self.sink("follow_up", ("id", "bank_id", "firm_id", "visit_id", "assignee_id", "title", "due_on",
                                       "status", "done_at", "outcome", "created_by_id", "created_at", "modified_at",
                                       "version"))
        summaries = [f"{a}，{b}。" for a in SUMMARY_A for b in SUMMARY_B]
        self.account_state = {}  # account id -> (last date, willingness, need fen)
        self.account_visits = {}  # account id -> (count, first date, last date)
        campaign_by_year = self.campaign_by_year
        bureau = self.bureau_users
        fu_cutoff = END - timedelta(days=14)
        for acc, n in zip(visited, counts):
            aid, fid, bi, br, owner = acc
            b = self.banks[bi]
            bank_id = b["id"]
            contact = self.contact_of[aid]
            dates = sorted(self.day() for _ in range(n))
            branch_rms = b["rms_by_branch"][br]
            last = None
            for d in dates:
                vid = self.nid("visit")
                x = rnd()
                if x < 0.80:
                    rm = owner
                    rm_branch = br
                elif x < 0.95:
                    rm = branch_rms[int(rnd() * len(branch_rms))]
                    rm_branch = br
                else:
                    rm = b["rms"][int(rnd() * len(b["rms"]))]
                    rm_branch = self.user_branch[rm]
                will = will_cat.draw(rnd)
                need = term = None
                purpose = guarantee = ""
                if will in ("strong", "some") and rnd() < 0.7:
                    need = need_cat.draw(rnd) * 1_000_000
                    term = (6, 12, 12, 24, 36)[int(rnd() * 5)]
                    purpose = PURPOSES[int(rnd() * len(PURPOSES))]
                    guarantee = GUARANTEES[int(rnd() * len(GUARANTEES))]
                nxt = ""
                nxt_owner = nxt_due = None
                if rnd() < 0.3:
                    nxt = NEXT_STEPS[int(rnd() * len(NEXT_STEPS))]
                    nxt_owner = rm
                    nxt_due = d + timedelta(days=7 + int(rnd() * 24))
                ts = self.stamp(d)
                visits.add((vid, bank_id, rm_branch, campaign_by_year[d.year], fid, rm, d, mode_cat.draw(rnd),
                            contact if rnd() < 0.5 else None, summaries[int(rnd() * len(summaries))], will, need,
                            term, purpose, guarantee, rnd() < 0.2, rnd() < 0.1, nxt, nxt_owner, nxt_due, rm, ts, ts,
                            1, False))
                if rnd() < 0.10:
                    if rnd() < 0.7:
                        comps.add((vid, bureau[int(rnd() * len(bureau))]))
                    else:
                        other = b["rms"][int(rnd() * len(b["rms"]))]
                        if other != rm:
                            comps.add((vid, other))
                if nxt_due is not None and rnd() < 0.2:
                    if nxt_due < fu_cutoff:
                        y = rnd()
                        status = "done" if y < 0.85 else "cancelled" if y < 0.9 else "open"
                    else:
                        status = "open"
                    done_at = clock.local(nxt_due - timedelta(days=int(rnd() * 5)), 600) if status == "done" else None
                    fups.add((self.nid("follow_up"), bank_id, fid, vid, rm, nxt, nxt_due, status, done_at,
                              "已完成" if status == "done" else "", rm, ts, ts, 1))
                last = (d, will, need)
            self.account_state[aid] = last
            self.account_visits[aid] = (n, dates[0], dates[-1])
        visits.flush()
        comps.flush()
        fups.flush()
        accs = self.sink("firm_account", ("id", "bank_id", "firm_id", "branch_id", "owner_id", "willingness_code",
                                          "last_visit_on", "open_need_fen", "created_at", "modified_at"))
        for aid, fid, bi, br, owner in self.accounts:
            st = self.account_state.get(aid)
            first = self.account_visits.get(aid, (0, START, START))[1]
            ts = self.stamp(min(first, START))
            mts = self.stamp(st[0]) if st else ts
            accs.add((aid, self.banks[bi]["id"], fid, br, owner, st[1] if st else None, st[0] if st else None,
                      st[2] if st else None, ts, mts))
        accs.flush()

    # -- events, organisers, staff, registrations -------------------------------------------------------------
    def gen_events(self):
        rng, rnd, plan, clock = self.rng, self.rnd, self.plan, self.clock
        kind_cat = Cat(EVENT_KIND_WEIGHTS)
        bank_cat = Cat(list(zip(range(len(self.banks)), self.bank_weights)))
        ind_codes = [c for c, _w in INDUSTRY_WEIGHTS if c != "other"]
        ind_names = {"electronic_info": "电子信息", "ai": "人工智能", "biomedicine": "生物医药", "smart_driving": "智能驾驶",
                     "low_carbon": "低碳产业", "low_altitude": "低空经济"}
        kind_names = {"industry": "行业专场", "park": "园区专场", "bank": "银行专场", "policy": "政策宣讲会",
                      "online": "线上对接会"}
        events = self.sink("event", ("id", "code", "campaign_id", "title", "kind", "held_on", "start_time",
                                     "end_time", "venue", "capacity", "status", "description", "deals_signed",
                                     "deals_signed_fen", "intentions", "intentions_fen", "public_token",
                                     "created_by_id", "created_at", "modified_at", "version"))
        eorg = self.sink("event_organiser", ("event_id", "org_id"))
        eind = self.sink("event_industry", ("event_id", "industry_code"))
        estaff = self.sink("event_staff", ("event_id", "user_id"))
        ev_list = []  # (id, held_on, status, start minute, organiser bank idx)
        per_year: dict[int, int] = {}
        n_future = max(1, plan.events // 50)
        for i in range(plan.events):
            eid = self.nid("event")
            if i < plan.events - n_future:
                d = self.day()
            else:
                d = END + timedelta(days=1 + int(rnd() * 35))
            status = ("held" if rnd() < 0.92 else "cancelled") if d <= END else "planned"
            per_year[d.year] = per_year.get(d.year, 0) + 1
            code = f"{self.P}EV-{d.year}-{per_year[d.year]:04d}"
            kind = kind_cat.draw(rnd)
            ind = ind_codes[int(rnd() ** 1.3 * len(ind_codes))]
            start_min = (9 * 60 + 30) if rnd() < 0.4 else (14 * 60 + 30 * int(rnd() * 3))
            bi = bank_cat.index(rnd)
            b = self.banks[bi]
            created = self.stamp(d - timedelta(days=10 + int(rnd() * 20)))
            deals = deals_fen = ints = ints_fen = 0
            if status == "held" and rnd() < 0.4:
                deals = int(rnd() * 4)
                deals_fen = deals * (100 + int(rnd() * 900)) * 1_000_000
                ints = int(rnd() * 8)
                ints_fen = ints * (100 + int(rnd() * 900)) * 1_000_000
            staff_ids = sorted({b["rms"][int(rnd() * len(b["rms"]))] for _ in range(1 + int(rnd() * 4))})
            events.add((eid, code, self.campaign_by_year[min(d.year, YEARS[-1])],
                        f"{ind_names[ind]}{kind_names[kind]}（第{per_year[d.year]}期）", kind, d,
                        time(start_min // 60, start_min % 60), time(start_min // 60 + 2, start_min % 60),
                        f"龙岗区{['天安云谷', '星河WORLD', '华为坂田基地', '大运软件小镇', '宝龙科技城'][int(rnd() * 5)]}会议室",
                        (30, 50, 80, 100, 150, 200, 300)[int(rnd() * 7)] if rnd() < 0.8 else None, status,
                        "", deals, deals_fen, ints, ints_fen, None, b["managers"][0], created, created, 1))
            eorg.add((eid, b["id"]))
            if rnd() < 0.6:
                eorg.add((eid, self.bureau_id))
            eind.add((eid, ind))
            if rnd() < 0.3:
                other = ind_codes[int(rnd() * len(ind_codes))]
                if other != ind:
                    eind.add((eid, other))
            for uid in staff_ids:
                estaff.add((eid, uid))
            if status == "held" and rnd() < 0.4:
                estaff.add((eid, self.bureau_users[int(rnd() * len(self.bureau_users))]))
            ev_list.append((eid, d, status, start_min, bi))
        for s in (events, eorg, eind, estaff):
            s.flush()
        self.events = ev_list

        # registrations: heavy-tailed event sizes; check-ins only at held events, 80% of all registrations
        sizes = allocate(plan.registrations, [rng.paretovariate(2.2) for _ in ev_list], 0, rng)
        on_held = sum(n for n, ev in zip(sizes, ev_list) if ev[2] == "held")
        p_checkin = min(1.0, CHECKED_IN_SHARE * plan.registrations / on_held) if on_held else 0.0
        src_cat = Cat([("invited", 45), ("self", 30), ("bureau", 15), ("walk_in", 10)])
        meth_cat = Cat([("qr", 55), ("staff", 35), ("paper", 10)])
        regs = self.sink("registration", ("id", "event_id", "firm_id", "person_name", "person_title", "mobile",
                                          "need_summary", "preferred_bank_id", "source", "status", "checked_in_at",
                                          "checkin_method", "absence_reason", "remarks", "consent_at",
                                          "checkin_token", "created_by_id", "created_at", "modified_at", "version"))
        firm_pop = self.firm_pop
        bank_ids = [b["id"] for b in self.banks]
        for (eid, d, status, start_min, bi), n in zip(ev_list, sizes):
            mobiles: set[str] = set()
            creator = self.banks[bi]["managers"][0]
            firm = None
            for _k in range(n):
                rid = self.nid("registration")
                if firm is None or rnd() >= 0.06:
                    firm = firm_pop.draw(rnd)
                m = self.mobile()
                while m in mobiles:
                    m = self.mobile()
                mobiles.add(m)
                src = src_cat.draw(rnd)
                checked = status == "held" and rnd() < p_checkin
                if checked:
                    rstatus = "confirmed" if rnd() < 0.7 else "registered"
                    cin = clock.local(d, start_min - 20 + int(rnd() * 50))
                    method = meth_cat.draw(rnd)
                    absence = ""
                else:
                    rstatus = "cancelled" if rnd() < 0.15 else ("confirmed" if rnd() < 0.5 else "registered")
                    cin = method = None
                    absence = "临时有事" if status == "held" and rnd() < 0.3 else ""
                created = self.clock.local(d - timedelta(days=1 + int(rnd() * 20)), 600 + 30 * int(rnd() * 16))
                regs.add((rid, eid, firm, self.person_name(), TITLES[int(rnd() * len(TITLES))], m,
                          "有融资需求" if rnd() < 0.3 else "", bank_ids[int(rnd() * len(bank_ids))] if rnd() < 0.3 else None,
                          src, rstatus, cin, method, absence, "", created if src == "self" else None,
                          f"{rng.getrandbits(64):016x}{rid:x}"[:24], None if src == "self" else creator, created,
                          created, 1))
        regs.flush()

    # -- credit applications, stage history, IP assets, pledges, valuations, pools ----------------------
    def gen_credit(self):
        rng, rnd, plan, clock = self.rng, self.rnd, self.plan, self.clock
        # applications come from visited accounts, more often from the ones visited more
        cands = [(a, self.account_visits[a[0]]) for a in self.accounts if a[0] in self.account_visits]
        acc_cat = Cat([(i, c[1][0] ** 0.7) for i, c in enumerate(cands)])
        req_cat, other_cat, dec_cat = Cat(REQUESTED_WAN), Cat(PRODUCT_OTHER_WEIGHTS), Cat(DECLINE_WEIGHTS)
        apps = self.sink("credit_application", (
            "id", "bank_id", "branch_id", "rm_id", "campaign_id", "firm_id", "product_code", "requested_fen",
            "accepted_on", "requested_term_months", "stage", "decided_on", "approved_fen", "rate_bp", "discount_bp",
            "term_months", "guarantee", "is_first_loan", "in_risk_pool", "has_subsidy", "decline_reason_code",
            "high_tech_at_decision", "disbursed_on", "disbursed_fen", "matures_on", "pool_id", "remarks",
            "created_by_id", "created_at", "modified_at", "version"))
        changes = self.sink("stage_change", ("id", "application_id", "bank_id", "from_stage", "to_stage", "changed_on",
                                             "changed_at", "by_id", "note"))
        assets = self.sink("ip_asset", ("id", "patent_no", "kind", "title", "granted_on", "expires_on", "legal_status",
                                        "owner_name", "created_at", "modified_at"))
        pledges = self.sink("pledge", ("id", "bank_id", "application_id", "ip_asset_id", "owner_relation", "licence_no",
                                       "licence_note", "registration_no", "registered_on", "secured_fen", "status",
                                       "released_on", "created_at", "modified_at", "version"))
        vals = self.sink("valuation", ("id", "bank_id", "application_id", "ip_asset_id", "valuer", "amount_fen",
                                       "requested_on", "completed_on", "created_at", "modified_at"))
        # pools: three at each of the two largest banks, issued mid-2025 and 2026
        pools_by_bank: dict[int, list[tuple[int, date]]] = {}
        pool_rows = []
        for bi in range(min(2, len(self.banks))):
            b = self.banks[bi]
            for k, issue in enumerate((date(2025, 6, 18), date(2025, 12, 10), date(2026, 6, 16))):
                pid = self.nid("securitisation_pool")
                ts = self.stamp(issue - timedelta(days=30))
                pool_rows.append((pid, b["id"], f"{b['short']}知识产权资产支持专项计划{k + 1}期", "深圳证券交易所", issue,
                                  b["managers"][0], ts, ts))
                pools_by_bank.setdefault(bi, []).append((pid, issue))
        self.L.write("securitisation_pool", ("id", "bank_id", "name", "exchange", "issue_on", "created_by_id",
                                             "created_at", "modified_at"), pool_rows)
        valuers = ["深圳市中诚达资产评估", "国众联资产评估", "鹏信资产评估", "中联资产评估深圳分公司"]
        patent_seq = itertools.count(self.ids["ip_asset"] + (self.seed % 997) * 100_000)
        horizon = END - timedelta(days=10)
        for _i in range(plan.credits):
            acc, (nvis, first, last) = cands[acc_cat.draw(rnd)]
            aid, fid, bi, br, owner = acc
            b = self.banks[bi]
            bank_id = b["id"]
            accepted = first + timedelta(days=int(rnd() * max(1, (last - first).days + 1)) + 3 + int(rnd() * 40))
            if accepted > END:
                accepted = END - timedelta(days=int(rnd() * 5))
            if accepted < first:
                accepted = first
            is_ip = rnd() < IP_PLEDGE_SHARE
            product = "ip_pledge" if is_ip else other_cat.draw(rnd)
            req_wan = req_cat.draw(rnd)
            requested = req_wan * 1_000_000
            tier = 3 if req_wan <= 1000 else 5 if req_wan <= 3000 else 10
            app_id = self.nid("credit_application")
            hist = [(None, "accepted", accepted)]
            x = rnd()
            outcome = ("open" if accepted > horizon else
                       "approved" if x < 0.72 else "declined" if x < 0.87 else "withdrawn" if x < 0.92 else "open")
            decided = approved = rate = discount = term = decline = ht = None
            disbursed_on = disbursed_fen = matures = None
            pool_id = None
            stage = "accepted"
            review_on = clock.add_workdays(accepted, 1)
            if outcome == "open":
                if rnd() < 0.6 and review_on <= END:
                    hist.append(("accepted", "under_review", review_on))
                    stage = "under_review"
            elif outcome == "withdrawn":
                if rnd() < 0.5 and review_on <= END:
                    hist.append(("accepted", "under_review", review_on))
                    w_on = min(END, clock.add_workdays(review_on, 1 + int(rnd() * 4)))
                    hist.append(("under_review", "withdrawn", w_on))
                else:
                    hist.append(("accepted", "withdrawn", min(END, clock.add_workdays(accepted, 1 + int(rnd() * 3)))))
                stage = "withdrawn"
            else:
                n_days = (1 + int(rnd() * tier)) if rnd() < 0.88 else tier + 1 + int(rnd() * 6)
                decided = clock.add_workdays(accepted, n_days)
                if decided > END:
                    hist.append(("accepted", "under_review", review_on)) if review_on <= END else None
                    stage = hist[-1][1]
                    decided = None
                else:
                    review_on = min(review_on, decided)
                    hist.append(("accepted", "under_review", review_on))
                    issued = self.firm_high_tech.get(fid)
                    ht = bool(issued and issued <= decided <= add_months(issued, 36) - timedelta(days=1))
                    if outcome == "declined":
                        hist.append(("under_review", "declined", decided))
                        stage = "declined"
                        decline = dec_cat.draw(rnd)
                    else:
                        hist.append(("under_review", "approved", decided))
                        stage = "approved"
                        approved = requested * (10, 10, 10, 8, 6, 5)[int(rnd() * 6)] // 10
                        rate = 300 + 5 * int(rnd() * 25)
                        discount = (10 + int(rnd() * 11)) if is_ip else int(rnd() * 21)
                        term = (12, 12, 24, 36)[int(rnd() * 4)]
                        path = ["contracted"] + (["pledge_registered"] if is_ip else []) + ["disbursed", "repaid"]
                        d = decided
                        for nxt in path:
                            if nxt == "repaid":
                                d2 = add_months(disbursed_on, term) if disbursed_on else None
                                if d2 is None or d2 > END or rnd() < 0.1:
                                    break
                            else:
                                if rnd() < 0.06:
                                    break
                                d2 = d + timedelta(days=1 + int(rnd() * 12))
                                if d2 > END:
                                    break
                            hist.append((stage, nxt, d2))
                            stage, d = nxt, d2
                            if nxt == "disbursed":
                                disbursed_on, disbursed_fen = d2, approved
                                matures = add_months(d2, term)
                        if is_ip and disbursed_on and bi in pools_by_bank and rnd() < 0.3:
                            ok = [p for p, issue in pools_by_bank[bi] if issue >= disbursed_on]
                            if ok:
                                pool_id = ok[0]
            created = self.stamp(accepted)
            apps.add((app_id, bank_id, br, owner, self.campaign_by_year[accepted.year], fid, product, requested,
                      accepted, (12, 24, 36)[int(rnd() * 3)], stage, decided, approved, rate, discount, term,
                      "知识产权质押" if is_ip else GUARANTEES[1 + int(rnd() * (len(GUARANTEES) - 1))],
                      rnd() < 0.25, rnd() < 0.15, rnd() < 0.2, decline, ht, disbursed_on, disbursed_fen, matures,
                      pool_id, "", owner, created, self.stamp(hist[-1][2]), 1))
            for frm, to, on in hist:
                changes.add((self.nid("stage_change"), app_id, bank_id, frm, to, on, self.stamp(on), owner, ""))
            if is_ip:
                # valuation of the pledged patents, promised within 3 working days
                v_done = clock.add_workdays(accepted, 1 + int(rnd() * 3)) if rnd() < 0.9 else \
                    clock.add_workdays(accepted, 4 + int(rnd() * 4))
                n_pat = 1 + (rnd() < 0.35) + (rnd() < 0.1)
                pats = []
                for _k in range(n_pat):
                    asset_id = self.nid("ip_asset")
                    kind_digit = 1 if rnd() < 0.7 else 2
                    year = (2012 + int(rnd() * 10)) if kind_digit == 1 else (2021 + int(rnd() * 3))
                    granted = date(year + (2 if kind_digit == 1 else 1), 1 + int(rnd() * 12), 1 + int(rnd() * 28))
                    expires = date(year + (20 if kind_digit == 1 else 10), granted.month, granted.day)
                    ts = self.stamp(accepted)
                    assets.add((asset_id, patent_no_for(next(patent_seq), year, kind_digit),
                                "invention" if kind_digit == 1 else "utility_model",
                                f"一种{PATENT_NOUNS[int(rnd() * len(PATENT_NOUNS))]}方法及装置", granted, expires,
                                "valid", self.firm_name[fid], ts, ts))
                    pats.append(asset_id)
                vals.add((self.nid("valuation"), bank_id, app_id, pats[0], valuers[int(rnd() * len(valuers))],
                          requested * (15 + int(rnd() * 15)) // 10, accepted, v_done if v_done <= END else None,
                          created, created))
                reached = [to for _f, to, _on in hist]
                if "approved" in reached:
                    reg_on = next((on for _f, to, on in hist if to == "pledge_registered"), None)
                    rep_on = next((on for _f, to, on in hist if to == "repaid"), None)
                    relation = "hk_affiliate" if fid in self.firm_cross else ("self" if rnd() < 0.9 else "parent")
                    for asset_id in pats:
                        ts = self.stamp(decided)
                        pledges.add((self.nid("pledge"), bank_id, app_id, asset_id, relation,
                                     f"XK{asset_id:08d}" if relation == "hk_affiliate" else "", "",
                                     f"Y{reg_on.year}44{asset_id:07d}" if reg_on else "", reg_on,
                                     (approved * (8 + int(rnd() * 5)) // 10 // max(1, len(pats))) if reg_on else None,
                                     "released" if rep_on else "active", rep_on, ts, ts, 1))
        for s in (apps, changes, assets, pledges, vals):
            s.flush()


# ----------------------------------------------------------------------------------------------------------
# For the benchmark: one very large event
# ----------------------------------------------------------------------------------------------------------


def add_big_event(engine: sa.Engine, n: int, seed: int = 1, code: str = "BENCH-EXPORT") -> int:
    """Add a held event with ``n`` checked-in registrations (for export benchmarks); return its id."""
    from crm.extensions import db

    rng = random.Random(seed * 7919 + n)
    rnd = rng.random
    clock = Clock(date(2026, 1, 1), date(2026, 12, 31))
    with engine.connect() as conn:
        ids = _next_ids(conn)
        row = conn.exec_driver_sql("SELECT id FROM campaign ORDER BY start_on DESC, id DESC LIMIT 1").first()
        camp = row[0]
        bank = conn.exec_driver_sql("SELECT id FROM organisation WHERE kind = 'bank' AND parent_id IS NULL "
                                    "ORDER BY id LIMIT 1").first()[0]
        firms = [r[0] for r in conn.exec_driver_sql("SELECT id FROM firm ORDER BY id")]
    loader = Loader(engine, db.metadata, lambda s: None)
    try:
        loader.begin()
        eid = ids["event"]
        d = date(2026, 6, 18)
        ts = clock.local(d, 600)
        loader.write("event", ("id", "code", "campaign_id", "title", "kind", "held_on", "start_time", "end_time",
                               "venue", "capacity", "status", "description", "deals_signed", "deals_signed_fen",
                               "intentions", "intentions_fen", "public_token", "created_by_id", "created_at",
                               "modified_at", "version"),
                     [(eid, code, camp, "全市科技金融万人对接大会（基准测试）", "park", d, time(9, 0), time(17, 0),
                       "深圳会展中心", None, "held", "", 0, 0, 0, 0, None, None, ts, ts, 1)])
        loader.write("event_organiser", ("event_id", "org_id"), [(eid, bank)])
        rows, mobiles = [], set()
        rid = ids["registration"]
        for k in range(n):
            m = MOBILE_PREFIXES[int(rnd() * len(MOBILE_PREFIXES))] + f"{int(rnd() * 100_000_000):08d}"
            while m in mobiles:
                m = MOBILE_PREFIXES[int(rnd() * len(MOBILE_PREFIXES))] + f"{int(rnd() * 100_000_000):08d}"
            mobiles.add(m)
            name = SURNAMES[int(rnd() * len(SURNAMES))] + GIVEN[int(rnd() * len(GIVEN))]
            rows.append((rid + k, eid, firms[int(rnd() * len(firms))], name, TITLES[int(rnd() * len(TITLES))], m,
                         "", None, "invited", "confirmed", clock.local(d, 540 + int(rnd() * 120)), "qr", "", "", None,
                         f"bx{rng.getrandbits(64):016x}{k:x}"[:24], None, ts, ts, 1))
            if len(rows) >= CHUNK:
                loader.write("registration", REG_COLUMNS, rows)
                rows = []
        loader.write("registration", REG_COLUMNS, rows)
        loader.commit()
        loader.finish(analyze=True)
    except BaseException:
        loader.abort()
        raise
    return eid


REG_COLUMNS = ("id", "event_id", "firm_id", "person_name", "person_title", "mobile", "need_summary",
               "preferred_bank_id", "source", "status", "checked_in_at", "checkin_method", "absence_reason", "remarks",
               "consent_at", "checkin_token", "created_by_id", "created_at", "modified_at", "version")


def firm_ledger_rows(n: int, seed: int = 1, offset: int = 90_000_000) -> tuple[list[str], list[list]]:
    """A firm ledger (台账) of n new firms with the Chinese headers of DOMAIN.md, for the import benchmark."""
    rng = random.Random(seed + 31 * n)
    rnd = rng.random
    headers = ["企业名称", "统一社会信用代码", "所属区", "所属街道", "重点产业", "国民经济行业门类", "高新技术企业",
               "高企证书编号", "专精特新", "发明专利数", "实用新型数", "外观设计数", "软件著作权数", "联系人", "联系电话"]
    ind = Cat([("电子信息", 30), ("人工智能", 22), ("其他", 16), ("生物医药", 11), ("智能驾驶", 9), ("低碳产业", 7),
               ("低空经济", 5)])
    rows = []
    for i in range(n):
        ht = rnd() < 0.4
        rows.append([f"深圳市导入测试{i:05d}科技有限公司", credit_code_for(offset + i, seed), "龙岗区", "坂田街道",
                     ind.draw(rnd), "C", "是" if ht else "否", f"GR2024440{i:05d}" if ht else "", "否",
                     int(rnd() * 5), int(rnd() * 8), 0, int(rnd() * 4),
                     SURNAMES[int(rnd() * len(SURNAMES))] + GIVEN[int(rnd() * len(GIVEN))],
                     MOBILE_PREFIXES[int(rnd() * len(MOBILE_PREFIXES))] + f"{int(rnd() * 100_000_000):08d}"])
    return headers, rows
