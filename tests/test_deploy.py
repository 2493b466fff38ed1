"""docs/deploy.md stays true to the code, and gunicorn.conf.py loads with the production values.

What counts as "naming an environment variable" in the guide: a row of its "Environment variables" table
(`NAME` | `file that reads it` | ...) and any ``NAME=value`` assignment anywhere in it (environment files,
shell lines). Variables are "read" by a file when it calls ``os.environ.get("NAME")``, ``os.environ["NAME"]``
or a helper of its own that passes its argument to ``os.environ.get`` (config.py's ``_env_list``).
"""
from __future__ import annotations

import ast
import gc
import importlib.util
import multiprocessing
import re
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from flask.cli import FlaskGroup, ScriptInfo

import crm

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "deploy.md"
ENV_READERS = ("config.py", "wsgi.py", "gunicorn.conf.py")
GUNICORN_ENV = ("GUNICORN_BIND", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS")
POOL_ENV = ("DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT", "DB_POOL_RECYCLE")
STRONG_KEY = "k3y-for-deploy-tests-only-4b7e1d9c2a6f8e0b3d5c7a9f1e2d4c6b"


# -- scanners ---------------------------------------------------------------------------------------------------


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ"
            and isinstance(node.value, ast.Name) and node.value.id == "os")


def _environ_get_arg(call: ast.Call) -> ast.AST | None:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value) and call.args:
        return call.args[0]
    return None


def env_reads(source: str) -> set[str]:
    """Names of environment variables the module's code reads."""
    tree = ast.parse(source)
    helpers = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and fn.args.args:
            param = fn.args.args[0].arg
            for call in ast.walk(fn):
                arg = _environ_get_arg(call) if isinstance(call, ast.Call) else None
                if isinstance(arg, ast.Name) and arg.id == param:
                    helpers.add(fn.name)
    names = set()
    for node in ast.walk(tree):
        arg = None
        if isinstance(node, ast.Call):
            arg = _environ_get_arg(node)
            if arg is None and isinstance(node.func, ast.Name) and node.func.id in helpers and node.args:
                arg = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            arg = node.slice
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            names.add(arg.value)
    return names


TABLE_ROW = re.compile(r"^\| `([A-Z][A-Z0-9_]*)` \| `([^`]+)` \|", re.M)
ASSIGNMENT = re.compile(r"(?<![\w.-])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)=(?!=)")


def env_table(doc: str) -> dict[str, str]:
    """{variable: file that reads it} from the guide's "Environment variables" table."""
    section = doc.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    return dict(TABLE_ROW.findall(section))


def env_assignments(doc: str) -> set[str]:
    return set(ASSIGNMENT.findall(doc))


FLASK_CALL = re.compile(r"flask --app wsgi ([\w-]+)(?: ([\w-]+))?([^\n`]*)")


def flask_calls(doc: str) -> list[tuple[str, str | None, list[str]]]:
    """(group, command, --options) of every `flask --app wsgi ...` in the text."""
    calls = []
    for group, command, rest in FLASK_CALL.findall(doc):
        rest = re.split(r"#|&&|;|\|", rest, maxsplit=1)[0]
        calls.append((group, command or None, re.findall(r"(?<!\S)(--[a-z][\w-]*)", rest)))
    return calls


@pytest.fixture(scope="module")
def cli():
    """A resolver for `flask --app wsgi GROUP COMMAND`: the click command, or None when it does not exist."""
    from crm import create_app

    app = create_app("config.TestConfig")
    flask_group = FlaskGroup(create_app=lambda: app)
    ctx = click.Context(flask_group, obj=ScriptInfo(create_app=lambda: app))

    def resolve(group: str, command: str | None):
        found = flask_group.get_command(ctx, group)
        if isinstance(found, click.Group):
            found = found.get_command(ctx, command) if command else None
        return found

    with ctx:
        yield resolve
    with app.app_context():
        for engine in app.extensions["sqlalchemy"].engines.values():
            engine.dispose()


def unknown_cli_uses(doc: str, resolve) -> list[str]:
    problems = []
    for group, command, options in flask_calls(doc):
        found = resolve(group, command)
        if found is None:
            problems.append(f"flask --app wsgi {group} {command or ''}".strip())
            continue
        known = {o for p in found.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
        problems += [f"{group} {command} {o}" for o in options if o not in known]
    return problems


def load_gunicorn_conf():
    spec = importlib.util.spec_from_file_location("crm_gunicorn_conf", ROOT / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the guide --------------------------------------------------------------------------------------------------


def test_every_variable_in_the_guides_table_is_read_by_the_file_it_names():
    table = env_table(DOC.read_text(encoding="utf-8"))
    assert "SECRET_KEY" in table and "DATABASE_URL" in table  # the table was found and parsed
    wrong = {name: reader for name, reader in table.items()
             if reader not in ENV_READERS or name not in env_reads((ROOT / reader).read_text(encoding="utf-8"))}
    assert not wrong


def test_every_variable_the_code_reads_is_in_the_guides_table():
    table = env_table(DOC.read_text(encoding="utf-8"))
    for reader in ENV_READERS:
        missing = env_reads((ROOT / reader).read_text(encoding="utf-8")) - set(table)
        assert not missing, f"{reader} reads {sorted(missing)}, which docs/deploy.md does not list"


def test_the_guide_lists_the_pool_and_backup_variables_as_read_by_config():
    table = env_table(DOC.read_text(encoding="utf-8"))
    assert {name: table.get(name) for name in (*POOL_ENV, "PG_BIN_DIR")} == dict.fromkeys((*POOL_ENV, "PG_BIN_DIR"),
                                                                                       "config.py")


def test_every_variable_the_guide_assigns_is_one_the_app_reads():
    doc = DOC.read_text(encoding="utf-8")
    assigned = env_assignments(doc)
    assert {"SECRET_KEY", "TRUSTED_HOSTS", "DATABASE_URL"} <= assigned
    assert assigned <= set(env_table(doc))


def test_every_flask_command_and_option_in_the_guide_exists(cli):
    doc = DOC.read_text(encoding="utf-8")
    used = {(g, c) for g, c, _ in flask_calls(doc)}
    assert {("db", "upgrade"), ("crm", "backup"), ("crm", "restore"), ("crm", "audit-purge"),
            ("crm", "pi-retention"), ("crm", "create-user")} <= used
    assert unknown_cli_uses(doc, cli) == []


@pytest.mark.parametrize("text, finding", [
    ("```sh\nFOO_BAR=1\n```", "FOO_BAR"),
    ("run `SECRETKEY=x .venv/bin/flask --app wsgi db upgrade`", "SECRETKEY"),
])
def test_the_assignment_scanner_sees_an_unknown_variable(text, finding):
    assert finding in env_assignments(text) and finding not in env_table(DOC.read_text(encoding="utf-8"))


def test_the_reader_scanner_finds_every_form_of_environment_read():
    source = ("import os\ndef _env_list(name):\n    return os.environ.get(name, '').split(',')\n"
              "A = os.environ.get('A_VAR')\nB = os.environ['B_VAR']\nC = _env_list('C_VAR')\n")
    assert env_reads(source) == {"A_VAR", "B_VAR", "C_VAR"}


@pytest.mark.parametrize("line, problem", [
    ("flask --app wsgi crm no-such-command", "flask --app wsgi crm no-such-command"),
    ("flask --app wsgi crm backup /tmp/x --gzip  # a comment --ignored", "crm backup --gzip"),
    ("flask --app wsgi db upgrad", "flask --app wsgi db upgrad"),
])
def test_the_cli_check_catches_a_missing_command_or_option(cli, line, problem):
    assert unknown_cli_uses(line, cli) == [problem]


# -- production settings from the environment -----------------------------------------------------------------


def prod_app(tmp_path, **overrides):
    from crm import create_app

    cfg = {"SECRET_KEY": STRONG_KEY, "TRUSTED_HOSTS": ["crm.example.cn"],
           "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
           "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.sqlite3'}", **overrides}
    return create_app("config.ProdConfig", cfg)


def pool_of(app):
    from crm.extensions import db

    with app.app_context():
        pool = db.engine.pool
        settings = (pool.size(), pool._max_overflow, pool.timeout(), pool._recycle, pool._pre_ping)
        db.engine.dispose()
    return settings


def test_production_pool_is_small_for_a_sync_worker_by_default(tmp_path, monkeypatch):
    for name in POOL_ENV:
        monkeypatch.delenv(name, raising=False)
    app = prod_app(tmp_path)
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"] == {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 2,
                                                       "pool_timeout": 10, "pool_recycle": 1800}
    assert pool_of(app) == (2, 2, 10, 1800, True)


def test_production_pool_is_sized_from_the_environment(tmp_path, monkeypatch):
    for name, value in zip(POOL_ENV, (" 3 ", "0", "5", "0")):
        monkeypatch.setenv(name, value)
    assert pool_of(prod_app(tmp_path)) == (3, 0, 5, -1, True)  # DB_POOL_RECYCLE=0: never recycled


@pytest.mark.parametrize("name, value", [
    ("DB_POOL_SIZE", "two"), ("DB_POOL_SIZE", "0"), ("DB_POOL_SIZE", "-2"), ("DB_MAX_OVERFLOW", "-1"),
    ("DB_POOL_TIMEOUT", "2.5"), ("DB_POOL_TIMEOUT", "0"), ("DB_POOL_RECYCLE", "-30"), ("DB_POOL_RECYCLE", "1e3"),
    ("PROXY_FIX_HOPS", "one"), ("PROXY_FIX_HOPS", "-1"),
])
def test_a_bad_pool_variable_stops_production_start_up_naming_it(name, value, tmp_path, monkeypatch):
    from config import ConfigError

    monkeypatch.setenv(name, value)
    message = rf"^{name} must be a whole number of at least \d+, not '?{re.escape(value)}'?$"
    with pytest.raises(ConfigError, match=message):
        prod_app(tmp_path)


@pytest.mark.parametrize("config_class, starts", [("config.ProdConfig", False), ("config.DevConfig", True)])
def test_the_server_start_up_reports_a_bad_pool_variable_in_its_last_line(config_class, starts, tmp_path):
    """What an operator sees: `import wsgi` (gunicorn, `flask --app wsgi`) ends with the variable and the value;
    outside production the variable is not read, so a development shell is never stopped by it."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "CRM_CONFIG": config_class, "SECRET_KEY": STRONG_KEY, "TRUSTED_HOSTS": "crm.example.cn",
           "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0", "DB_MAX_OVERFLOW": "lots",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    if starts:
        assert run.returncode == 0, run.stderr[-2000:]
    else:
        assert run.returncode != 0
        assert run.stderr.strip().splitlines()[-1] == (
            "config.ConfigError: DB_MAX_OVERFLOW must be a whole number of at least 0, not 'lots'")


def test_pg_bin_dir_comes_from_the_environment(monkeypatch):
    from crm import create_app

    monkeypatch.setenv("PG_BIN_DIR", "/usr/lib/postgresql/17/bin ")
    assert create_app("config.TestConfig").config["PG_BIN_DIR"] == "/usr/lib/postgresql/17/bin"
    monkeypatch.delenv("PG_BIN_DIR")
    assert create_app("config.TestConfig").config["PG_BIN_DIR"] is None  # Debian's newest, else the PATH


# -- gunicorn.conf.py -------------------------------------------------------------------------------------------


def test_gunicorn_conf_defaults_and_a_safe_access_log(monkeypatch):
    for name in GUNICORN_ENV:
        monkeypatch.delenv(name, raising=False)
    conf = load_gunicorn_conf()
    assert conf.bind == ["127.0.0.1:8000"]
    assert conf.workers == 2 * multiprocessing.cpu_count() + 1
    assert conf.forwarded_allow_ips == "127.0.0.1,::1"
    assert (conf.worker_class, conf.timeout, conf.graceful_timeout) == ("sync", 60, 60)
    assert conf.max_requests > 0 and 0 < conf.max_requests_jitter < conf.max_requests
    assert "%(U)s" in conf.access_log_format
    for atom in ("%(r)s", "%(q)s", "%(f)s", "QUERY_STRING", "RAW_URI"):
        assert atom not in conf.access_log_format


def test_gunicorn_conf_reads_its_environment(monkeypatch):
    monkeypatch.setenv("GUNICORN_BIND", "10.0.0.11:8000, 127.0.0.1:8001")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.5")
    conf = load_gunicorn_conf()
    assert (conf.bind, conf.workers, conf.forwarded_allow_ips) == (["10.0.0.11:8000", "127.0.0.1:8001"], 3,
                                                                    "10.0.0.5")


def test_every_setting_in_gunicorn_conf_is_one_gunicorn_knows_and_accepts(monkeypatch):
    from gunicorn.config import Config

    for name in GUNICORN_ENV:
        monkeypatch.delenv(name, raising=False)
    conf = load_gunicorn_conf()
    cfg = Config()
    names = [n for n, v in vars(conf).items()
             if not n.startswith("_") and not isinstance(v, type(multiprocessing))]
    unknown = [n for n in names if n not in cfg.settings]
    assert not unknown
    for name in names:
        cfg.set(name, getattr(conf, name))  # gunicorn's own validators
    assert cfg.preload_app and cfg.post_fork is conf.post_fork and cfg.when_ready is conf.when_ready and cfg.address


def test_when_ready_exempts_the_loaded_app_from_garbage_collection():

    assert gc.get_freeze_count() == 0
    try:
        load_gunicorn_conf().when_ready(None)
        assert gc.get_freeze_count() > 10_000  # the loaded code and the test session's objects
    finally:
        gc.unfreeze()


def test_post_fork_gives_the_worker_fresh_database_pools(tmp_path):
    from crm import create_app
    from crm.extensions import db

    app = create_app("config.TestConfig", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fork.sqlite3'}"})
    with app.app_context():
        engine = db.engine
        with engine.connect() as conn:  # the master held a connection
            conn.exec_driver_sql("SELECT 1")
        parent_pool = engine.pool
        assert parent_pool.checkedin() == 1
    try:
        load_gunicorn_conf().post_fork(SimpleNamespace(app=SimpleNamespace(wsgi=lambda: app)), None)
        assert engine.pool is not parent_pool and engine.pool.checkedin() == 0
        assert crm._note_full_collection in gc.callbacks  # crm.freeze_survivors, tested below
    finally:
        _stop_freezing_survivors()
        parent_pool.dispose()
        engine.dispose()


def _stop_freezing_survivors():
    while crm._note_full_collection in gc.callbacks:
        gc.callbacks.remove(crm._note_full_collection)
    crm._survivors["pending"] = False
    gc.unfreeze()


class _Cycle:
    def __init__(self):
        self.me = self


def test_between_requests_a_worker_freezes_what_survived_a_full_collection_and_collects_the_rest():
    import weakref

    assert gc.get_freeze_count() == 0
    gc.disable()  # no automatic collection in between: the test decides when
    conf = load_gunicorn_conf()
    try:
        crm.freeze_survivors()
        crm.freeze_survivors()  # idempotent
        assert gc.callbacks.count(crm._note_full_collection) == 1
        kept = [_Cycle() for _ in range(1000)]
        conf.post_request(None, None, {}, None)  # no full collection yet: nothing to do
        gc.collect(1)  # nor after a young one
        assert not crm.settle_heap() and gc.get_freeze_count() == 0
        request_garbage = _Cycle()  # a request's cycle, alive during the full collection below
        gone = weakref.ref(request_garbage)
        gc.collect()
        assert gc.get_freeze_count() == 0  # nothing is frozen during a request
        del request_garbage  # the request ends
        conf.post_request(None, None, {}, None)  # crm.settle_heap, after the response was sent
        assert gone() is None  # collected, not frozen
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # every survivor, the 1,000 kept cycles among them
        assert not crm.settle_heap()  # once per full collection
        later = _Cycle()
        gone = weakref.ref(later)
        del later
        assert gc.collect() >= 1 and gone() is None  # a cycle that became garbage after the freeze is collected
        del kept
    finally:
        gc.enable()
        _stop_freezing_survivors()
    assert crm._note_full_collection not in gc.callbacks



def test_sqlite_write_ahead_log_is_copied_between_requests_not_by_the_commit_that_fills_it(app, monkeypatch,
                                                                                             tmp_path):
    """A commit that takes SQLite's log past 1,000 pages (its default) no longer copies it into the database file
    itself, which took a dashboard request 325 ms at scale 1: workers do it after the response was sent, at most
    once a second (crm.settle_wal, gunicorn's post_request), and a commit only past WAL_AUTOCHECKPOINT_PAGES."""
    import os

    import sqlalchemy as sa

    from crm.extensions import db

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write-ahead log")
    monkeypatch.setattr(crm, "_wal", {"paths": set(), "pid": None, "connections": {}, "last": 0.0})
    db.session.remove()
    db.engine.dispose()  # (new connections: they set the pragmas and name their file)
    assert db.session.execute(sa.text("PRAGMA wal_autocheckpoint")).scalar() == crm.WAL_AUTOCHECKPOINT_PAGES
    path = db.engine.url.database
    assert crm._wal["paths"] == {os.path.realpath(path)} or crm._wal["paths"] == {path}
    db.session.execute(sa.text("CREATE TABLE wal_probe (blob BLOB)"))
    db.session.commit()
    conf = load_gunicorn_conf()
    conf.post_request(None, None, {}, None)  # (the table's pages copied: due the first time)
    size = os.path.getsize(path)

    def fill(pages: int) -> None:
        db.session.execute(sa.text("INSERT INTO wal_probe (blob) SELECT randomblob(3900) FROM "
                                   "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n) "
                                   "SELECT i FROM n)"), {"n": pages})
        db.session.commit()

    fill(1500)
    assert os.path.getsize(path) == size  # (still in the log: the commit copied nothing)
    conf.post_request(None, None, {}, None)  # within a second of the last: not yet
    assert os.path.getsize(path) == size
    assert crm.settle_wal(now=crm._wal["last"] + crm.WAL_SETTLE_SECONDS) == 1
    assert os.path.getsize(path) >= size + 1500 * 3900
    size = os.path.getsize(path)
    gone = str(tmp_path / "gone.sqlite3")  # a database removed since it was seen: forgotten, not created again
    crm._wal["paths"].add(gone)
    assert crm.settle_wal(now=crm._wal["last"] + crm.WAL_SETTLE_SECONDS) == 1
    assert gone not in crm._wal["paths"] and not os.path.exists(gone)
    monkeypatch.setattr(crm, "WAL_AUTOCHECKPOINT_PAGES", 1000)  # (the default, for a new connection)
    db.session.remove()
    db.engine.dispose()
    fill(1500)
    assert os.path.getsize(path) >= size + 1500 * 3900  # (the commit copied it, as before)
