"""A throwaway PostgreSQL server for tests.

    from tests.pgserver import PgServer, require_pg

    require_pg()                       # skip (or, with CI=true, fail) when PostgreSQL is missing
    with PgServer() as pg:             # or pg = PgServer(); pg.start(); ...; pg.stop()
        url = pg.create_database("crm_test")   # postgresql+psycopg://postgres@127.0.0.1:PORT/crm_test
        ...

The server runs from a fresh temporary folder, listens only on 127.0.0.1 (a free port)
and on a Unix socket inside that folder, trusts local connections as user ``postgres``,
and runs with fsync, synchronous_commit and full_page_writes off: the data is thrown
away, so durability only costs time. ``initdb`` and ``postgres`` refuse to run as root,
so as root they run as the ``postgres`` OS user (Debian's package creates it) in a
folder that user owns. ``stop()`` ends the server and removes the folder; an atexit
hook does the same if a test run forgets, and the server also dies with the process
that started it (parent-death signal), so a killed test run leaves no server behind.

Connections are closed when their database ends: once a server is started, every
SQLAlchemy engine that connects to it is kept (strongly) until ``drop_database()`` drops
its database or ``stop()`` ends the server, which dispose of it first. An app built in a
test and never disposed (a second app on the test's database, say) would otherwise keep
open psycopg connections in its pool until the garbage collector finds it, at a random
later moment, where psycopg's ``ResourceWarning: ... was deleted while still open``
becomes an "unraisable exception" error of whichever test happens to be running.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["PgServer", "PgServerError", "available", "dispose_engines", "find_bin_dir", "reason_unavailable",
           "require_pg", "track_engines"]

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
OS_USER = "postgres"  # the OS user that owns the cluster when we are root
DB_USER = "postgres"  # the database superuser initdb creates
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PgServerError(RuntimeError):
    """The test server could not be set up, started or used."""


# -- engines on the throwaway servers ----------------------------------------------------------

_engines: dict[int, object] = {}  # id(engine) -> engine, held until its database is dropped
_engines_lock = threading.Lock()
_tracking = False


def _remember_engine(conn) -> None:
    engine = conn.engine
    if engine.dialect.name == "postgresql" and id(engine) not in _engines:
        with _engines_lock:
            _engines.setdefault(id(engine), engine)


def track_engines() -> None:
    """From now on keep every engine that connects to PostgreSQL, for :func:`dispose_engines`."""
    global _tracking
    if _tracking:
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "engine_connect", _remember_engine)
    _tracking = True


def dispose_engines(port: int | None, dbname: str | None = None) -> int:
    """Dispose of (close the pooled connections of) the engines on this server's port, or on one of its
    databases, and forget them; return how many."""
    with _engines_lock:
        chosen = [(key, engine) for key, engine in _engines.items()
                  if engine.url.port == port and (dbname is None or engine.url.database == dbname)]
        for key, _engine in chosen:
            del _engines[key]
    for _key, engine in chosen:
        engine.dispose()
    return len(chosen)


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key for /usr/lib/postgresql/<version>/bin: numerically by version."""
    version = Path(path).parent.name
    return tuple(int(part) for part in re.findall(r"\d+", version)) or (0,)


def find_bin_dir() -> Path | None:
    """Folder holding initdb and postgres: Debian's highest version first, then PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for candidate in candidates:
        if os.access(os.path.join(candidate, "initdb"), os.X_OK) and os.access(
            os.path.join(candidate, "postgres"), os.X_OK
        ):
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        bin_dir = Path(initdb).resolve().parent
        if os.access(bin_dir / "postgres", os.X_OK):
            return bin_dir
    return None


def _is_root() -> bool:
    return os.geteuid() == 0


def reason_unavailable() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    if find_bin_dir() is None:
        return (
            "PostgreSQL binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or on PATH "
            "(Debian: apt-get install -y postgresql)"
        )
    if _is_root():
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"running as root but there is no {OS_USER!r} OS user to run PostgreSQL as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    return None


def available() -> bool:
    """True when a throwaway server can be started on this machine."""
    return reason_unavailable() is None


def require_pg() -> None:
    """Skip the calling test when PostgreSQL is unavailable; with CI=true, fail it instead.

    CI installs PostgreSQL, so missing binaries there are a broken setup, not a reason to
    silently run fewer tests.
    """
    reason = reason_unavailable()
    if reason is None:
        return
    import pytest

    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"CI=true but PostgreSQL tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _world_traversable(path: Path) -> bool:
    """Whether another user can reach into ``path`` (every ancestor has o+x)."""
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGQUIT (PostgreSQL's immediate shutdown) when the parent dies.

    Runs after subprocess has switched user, since a change of user clears the setting.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT, 0, 0, 0)
    except Exception:  # not Linux, or no prctl: atexit still cleans up
        pass


class PgServer:
    """One PostgreSQL cluster in a temporary folder, for the length of a test session."""

    def __init__(self, bin_dir: Path | str | None = None, base_dir: Path | str | None = None) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir else find_bin_dir()
        self.base_dir = Path(base_dir) if base_dir else None
        self.dir: Path | None = None
        self.port: int | None = None
        self.host = "127.0.0.1"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "PgServer":
        """initdb a fresh cluster and start it; return once it accepts connections."""
        if self._proc is not None:
            return self
        if self.bin_dir is None:
            raise PgServerError(reason_unavailable() or "PostgreSQL binaries not found")
        if _is_root():
            try:
                pwd.getpwnam(OS_USER)
            except KeyError:
                raise PgServerError(f"running as root but there is no {OS_USER!r} OS user") from None
        atexit.register(self.stop)
        track_engines()
        try:
            self._make_dir()
            self._initdb()
            last_error: Exception | None = None
            for _attempt in range(3):  # the free port can be taken between probe and bind
                try:
                    self._start_postgres()
                    return self
                except PgServerError as exc:
                    last_error = exc
                    self._kill()
            raise last_error  # type: ignore[misc]
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """End the server (fast shutdown, then harder) and remove its folder. Safe to repeat."""
        if self.port is not None:
            dispose_engines(self.port)
        self._kill()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def __enter__(self) -> "PgServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- URLs and databases ------------------------------------------------------------------

    def url_for(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) for ``dbname`` on this server."""
        if self.port is None:
            raise PgServerError("server not started")
        return f"postgresql+psycopg://{DB_USER}@{self.host}:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database ``postgres``."""
        return self.url_for("postgres")

    @property
    def dsn(self) -> str:
        """libpq connection string of the ``postgres`` database, for psycopg.connect()."""
        if self.port is None:
            raise PgServerError("server not started")
        return f"host={self.host} port={self.port} user={DB_USER} dbname=postgres"

    def create_database(self, name: str) -> str:
        """Create an empty UTF-8 database ``name`` (dropping any old one); return its URL."""
        self.drop_database(name)
        self._admin(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``: first dispose of this process's engines on it, then disconnect whoever else
        is still in it."""
        self._check_name(name)
        dispose_engines(self.port, name)
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME_RE.match(name):
            raise ValueError(f"database name must match {_NAME_RE.pattern}: {name!r}")

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def _as_owner(self) -> dict[str, object]:
        """Popen arguments that run a child as the postgres OS user when we are root."""
        if not _is_root():
            return {}
        return {"user": OS_USER, "group": pwd.getpwnam(OS_USER).pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"HOME": str(self.dir), "LC_MESSAGES": "C", "TZ": "UTC"})
        return env

    def _make_dir(self) -> None:
        base = self.base_dir or Path(os.environ.get("CRM_PG_TMPDIR") or tempfile.gettempdir())
        if _is_root() and not _world_traversable(base.resolve()):
            base = Path("/tmp")  # the postgres user must be able to reach the folder
        self.dir = Path(tempfile.mkdtemp(prefix="crm-pg-", dir=base))  # mode 0700
        (self.dir / "data").mkdir(mode=0o700)
        if _is_root():
            entry = pwd.getpwnam(OS_USER)
            for path in (self.dir, self.dir / "data"):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            cwd=self.dir,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            **self._as_owner(),  # type: ignore[arg-type]
        )

    def _initdb(self) -> None:
        assert self.dir is not None and self.bin_dir is not None
        base = [
            str(self.bin_dir / "initdb"),
            "-D", str(self.dir / "data"),
            "-A", "trust",
            "-U", DB_USER,
            "--encoding=UTF8",
            "--no-sync",  # nothing here needs to survive a crash
        ]
        errors = []
        for locale in ("C.UTF-8", "C"):
            result = self._run([*base, f"--locale={locale}"])
            if result.returncode == 0:
                return
            errors.append(f"--locale={locale}: exit {result.returncode}\n{result.stdout}{result.stderr}")
            shutil.rmtree(self.dir / "data", ignore_errors=True)
            (self.dir / "data").mkdir(mode=0o700)
            if _is_root():
                entry = pwd.getpwnam(OS_USER)
                os.chown(self.dir / "data", entry.pw_uid, entry.pw_gid)
        raise PgServerError("initdb failed:\n" + "\n".join(errors))

    def _start_postgres(self) -> None:
        assert self.dir is not None and self.bin_dir is not None
        self.port = _free_port()
        log_path = self.dir / "postgres.log"
        if self._log is not None:
            self._log.close()
        self._log = open(log_path, "ab")
        args = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.dir / "data"),
            "-p", str(self.port),
            "-c", f"listen_addresses={self.host}",
            "-c", f"unix_socket_directories={self.dir}",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=100",
            "-c", "shared_buffers=32MB",
            "-c", "logging_collector=off",
            "-c", "log_min_messages=warning",
            "-c", "timezone=UTC",
        ]
        self._proc = subprocess.Popen(
            args,
            cwd=self.dir,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the test run reaches us, not the server
            preexec_fn=_die_with_parent,
            **self._as_owner(),  # type: ignore[arg-type]
        )
        self._wait_ready(log_path)

    def _wait_ready(self, log_path: Path) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise PgServerError(
                    f"postgres exited with code {self._proc.returncode}:\n{self._log_tail(log_path)}"
                )
            try:
                with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                    conn.execute("select 1")
                return
            except psycopg.OperationalError as exc:
                last_error = exc
                time.sleep(0.1)
        raise PgServerError(
            f"postgres did not accept connections within {START_TIMEOUT_S:.0f} s "
            f"({last_error}):\n{self._log_tail(log_path)}"
        )

    @staticmethod
    def _log_tail(log_path: Path, lines: int = 30) -> str:
        try:
            return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        # SIGINT is PostgreSQL's fast shutdown: ends sessions, no waiting for clients.
        for sig, wait_s in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                proc.send_signal(sig)
                proc.wait(timeout=wait_s)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return
