"""The SQL statements a block of code sends: ``with statements() as seen: ...`` (an executemany counts once)."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import sqlalchemy as sa


@contextlib.contextmanager
def statements(engine: Optional[sa.Engine] = None) -> Iterator[list[str]]:
    """Collect the text of every statement sent to ``engine`` (the app's by default) inside the block."""
    from crm.extensions import db

    engine = engine if engine is not None else db.engine
    seen: list[str] = []

    def _count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", _count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", _count)
