"""One page of a list query and the total it is a page of, for every list that pages by offset (console and API).

Sorting is done by the database over indexed or cheap columns, so a list of 10,000 rows answers in milliseconds;
a stable tiebreaker (the row id) keeps pages from overlapping when sort values repeat.
"""

from __future__ import annotations

import sqlalchemy as sa

MAX_LIMIT = 1000


def fetch_page(engine, query, order: list, offset: int = 0, limit: int = 50) -> tuple[list, int]:
    """``(rows, total)``: ``limit`` rows of ``query`` from ``offset`` in ``order``, and how many rows match.

    Args:
        engine: the workspace's SQLAlchemy engine.
        query: a ``select`` with its filters (no ORDER BY, LIMIT or OFFSET).
        order: ORDER BY clauses, most significant first (end with a unique column).
        offset: rows to skip (>= 0).
        limit: rows to return, 1 to 1000.
    """
    offset = max(0, int(offset))
    limit = max(1, min(int(limit), MAX_LIMIT))
    count = sa.select(sa.func.count()).select_from(query.order_by(None).subquery())
    with engine.connect() as conn:
        total = conn.execute(count).scalar_one()
        rows = conn.execute(query.order_by(*order).offset(offset).limit(limit)).all()
    return rows, total


def ordered(column, desc: bool):
    """``column`` ascending or descending, with NULLs last either way (the same on SQLite and PostgreSQL)."""
    return (column.desc() if desc else column.asc()).nulls_last()
