"""PostgreSQL connections whose prepared statements outlive a request (psycopg 3).

psycopg prepares a statement on the server once a connection has run it ``prepare_threshold`` (5) times, so
later runs skip parsing and planning. But ``Connection.rollback()`` forgets every prepared statement and sends
``DEALLOCATE ALL``, and every request ends in a rollback (Flask-SQLAlchemy closes the session; a read-only page
never commits). So no statement of a page was ever prepared: each one was parsed and planned again, which was
most of PostgreSQL's CPU for the firm page (0.04–0.39 ms a statement to plan, 0.01–0.07 to run).

psycopg forgets them because a statement it sent for preparing inside a transaction that then failed may never
have been prepared (the server ignores commands in an aborted transaction). PostgreSQL itself keeps prepared
statements across ROLLBACK: they belong to the session, not to the transaction. So a transaction in which every
command succeeded (``INTRANS``, not ``INERROR``) is rolled back here without touching psycopg's cache; any
other rollback is psycopg's own. A statement whose tables changed is re-planned by the server as before
(psycopg also forgets its cache whenever a DROP or ALTER runs through it).

Plans. After five runs of a prepared statement PostgreSQL may keep one *generic* plan for any values
(``plan_cache_mode`` auto). That is what saves planning, and it is right for look-ups by key; for a statement
whose best plan depends on its values it can be far worse: the firm search (``name LIKE '%term%' ORDER BY name``)
went from 11 to 42 ms once its generic plan walked the name index, and the dashboard's filtered page right after
a new visit from 18 to 42 ms. So the connections plan every run for its own values (``force_custom_plan``: a
prepared statement still skips parsing), and a page made of look-ups by key opts in to generic plans for its
transaction (``crm.core.db.generic_plans``): the firm page, most of the mixed workload.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import psycopg
from psycopg import pq


#: the result statuses for which psycopg describes columns (``BaseCursor.description``)
_DESCRIBED = {getattr(pq.ExecStatus, name) for name in ("TUPLES_OK", "SINGLE_TUPLE", "TUPLES_CHUNK")
              if hasattr(pq.ExecStatus, name)}


class _Result:
    """What psycopg's ``Column`` reads from a cursor, fixed at one result."""

    __slots__ = ("pgresult", "_encoding", "adapters")

    def __init__(self, cursor: psycopg.Cursor):
        self.pgresult, self._encoding, self.adapters = cursor.pgresult, cursor._encoding, cursor.adapters


class Description(Sequence):
    """``Cursor.description``, its ``Column`` objects built when first read.

    SQLAlchemy asks every result for its description but reads the columns only the first time a statement
    runs; after that it keeps the result's metadata with the compiled statement and only tests the description
    for ``None``. psycopg builds a ``Column`` per column each time: 258 a firm page, about 5% of the page's CPU on
    PostgreSQL. The result is fixed when the description is made, so a later read describes that result even if
    the cursor has moved on."""

    __slots__ = ("_result", "_columns")

    def __init__(self, cursor: psycopg.Cursor):
        self._result = _Result(cursor)
        self._columns = None

    def _built(self) -> list:
        if self._columns is None:
            self._columns = [psycopg.Column(self._result, i) for i in range(self._result.pgresult.nfields)]
        return self._columns

    def __len__(self) -> int:
        return self._result.pgresult.nfields

    def __getitem__(self, index):
        return self._built()[index]

    def __iter__(self):
        return iter(self._built())

    def __eq__(self, other):
        return self._built() == list(other) if isinstance(other, (list, tuple, Description)) else NotImplemented

    def __repr__(self) -> str:
        return repr(self._built())


class Cursor(psycopg.Cursor):
    """psycopg's cursor with a :class:`Description` built when read."""

    @property
    def description(self):
        res = self.pgresult
        if res and (res.nfields or res.status in _DESCRIBED):
            return Description(self)
        return None


class Connection(psycopg.Connection):
    """psycopg's connection, keeping its prepared statements across the rollback of a clean transaction, with
    :class:`Cursor` as its cursors."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cursor_factory = Cursor

    def rollback(self) -> None:
        if (self.pgconn.transaction_status != pq.TransactionStatus.INTRANS
                or getattr(self, "_pipeline", None) is not None  # psycopg's own checks and states: its path
                or getattr(self, "_num_transactions", 0) or getattr(self, "_tpc", None)):
            return super().rollback()
        with self.lock:
            result = self.pgconn.exec_(b"ROLLBACK")
        if result.status != pq.ExecStatus.COMMAND_OK:
            super().rollback()  # the connection's own path, which raises the error


#: libpq ``options`` of every connection: custom plans unless a transaction opts in (``db.generic_plans``)
SERVER_OPTIONS = "-c plan_cache_mode=force_custom_plan"


def connect(cargs: tuple, cparams: dict) -> Connection:
    """What SQLAlchemy's psycopg dialect would open (``psycopg.connect(*cargs, **cparams)``), as a
    :class:`Connection` with :data:`SERVER_OPTIONS` after the ``options`` of ``DATABASE_URL``, or else of the
    ``PGOPTIONS`` variable (which libpq ignores once the parameter is given): for its ``do_connect`` event
    (crm/__init__.py)."""
    given = cparams.get("options") or os.environ.get("PGOPTIONS")
    options = " ".join(o for o in (given, SERVER_OPTIONS) if o)
    return Connection.connect(*cargs, **{**cparams, "options": options})
