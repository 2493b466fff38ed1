"""A real race between two database sessions, for the tests of what happens when two saves collide.

:func:`race_at_insert` runs each worker in its own thread, with its own app context, session and connection.
Each thread is held just before its first ``INSERT INTO <table>`` (so every worker has already checked and found
nothing) until all of them have reached it, then all are let go together. No sleeps, no timing assumptions: the
barrier's timeout only guards against a hang.
"""
from __future__ import annotations

import re
import threading
from typing import Any, Callable, Sequence

import sqlalchemy as sa

from crm.extensions import db


def race_at_insert(app, table: str, workers: Sequence[Callable[[], Any]]) -> tuple[list, list[BaseException], int]:
    """Run ``workers`` at once, each held before its INSERT into ``table``; return (results, errors, attempts).

    ``results[i]`` is what worker ``i`` returned, ``errors`` what any raised (the barrier is broken so the others
    do not wait), ``attempts`` how many reached the INSERT (all of them, when the race was real). Each worker's
    session is removed when it ends.
    """
    insert = re.compile(rf'\s*INSERT INTO "?{re.escape(table)}"?[\s(]', re.I)
    barrier = threading.Barrier(len(workers))
    local = threading.local()
    attempts: list[int] = []
    results: list = [None] * len(workers)
    errors: list[BaseException] = []

    def hold_before_insert(conn, cursor, statement, parameters, context, executemany):
        if insert.match(statement) and not getattr(local, "held", False):
            local.held = True
            attempts.append(threading.get_ident())
            barrier.wait(timeout=60)

    def run(i: int) -> None:
        try:
            with app.app_context():
                try:
                    results[i] = workers[i]()
                finally:
                    db.session.remove()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            barrier.abort()

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", hold_before_insert)
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sa.event.remove(engine, "before_cursor_execute", hold_before_insert)
    return results, errors, len(attempts)
