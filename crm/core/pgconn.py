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
"""
from __future__ import annotations

import psycopg
from psycopg import pq


class Connection(psycopg.Connection):
    """psycopg's connection, keeping its prepared statements across the rollback of a clean transaction."""

    def rollback(self) -> None:
        if (self.pgconn.transaction_status != pq.TransactionStatus.INTRANS
                or getattr(self, "_pipeline", None) is not None):
            return super().rollback()
        with self.lock:
            result = self.pgconn.exec_(b"ROLLBACK")
        if result.status != pq.ExecStatus.COMMAND_OK:
            super().rollback()  # the connection's own path, which raises the error


def connect(cargs: tuple, cparams: dict) -> Connection:
    """What SQLAlchemy's psycopg dialect would open (``psycopg.connect(*cargs, **cparams)``), as a
    :class:`Connection`: for its ``do_connect`` event (crm/__init__.py)."""
    return Connection.connect(*cargs, **cparams)
