"""What the tests look at in daily_prices' month partitions on Postgres."""

from __future__ import annotations

import psycopg


def oids(dsn: str) -> dict[str, int]:
    """The table oid of each month partition of daily_prices, by name: a rebuilt month is a new
    table (postgres_backend.py), a merged one keeps its oid."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.oid::int FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'public.daily_prices'::regclass"
        ).fetchall()
    return dict(rows)
