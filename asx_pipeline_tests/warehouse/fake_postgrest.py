"""PostgREST's request and response shapes over a real database, for respx-mocked REST tests.

`FakePostgrest` answers the way PostgREST does (rpc bodies as named arguments, `select`/filters/
`order`/`offset`/`limit` query parameters, `Prefer: count=exact`, `Content-Range`, a `max-rows`
cap, error bodies `{"code","message","details","hint"}`); it runs the calls on the real SQL
functions and tables of the migrations, so the JSON really round-trips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import respx
from psycopg import sql

from asx_pipeline.warehouse.tables import TABLES, TableSpec

URL = "https://abcdefghijkl.supabase.co"
REST = f"{URL}/rest/v1"
KEY = "eyJhbGciOiJIUzI1NiJ9.c2VydmljZV9yb2xlLXNlY3JldA.SeCrEtSiGnAtUrE"


def api_error(status: int, code: str, message: str) -> httpx.Response:
    body = {"code": code, "message": message, "details": None, "hint": None}
    return httpx.Response(status, json=body)


@dataclass
class FakePostgrest:
    """PostgREST over a real database: rpc calls run the SQL functions as service_role."""

    dsn: str
    max_rows: int = 1000
    calls: list[httpx.Request] = field(default_factory=list)

    def rpc(self, request: httpx.Request, function: str) -> httpx.Response:
        self.calls.append(request)
        assert request.headers["apikey"] == KEY
        assert request.headers["authorization"] == f"Bearer {KEY}"
        body = json.loads(request.content)
        arguments = sql.SQL(", ").join(
            sql.SQL("{} => %s").format(sql.Identifier(name)) for name in body
        )
        values = [json.dumps(v) if name == "p_rows" else v for name, v in body.items()]
        # to_jsonb: PostgREST answers a scalar result as its JSON (a date[] as ISO strings).
        query = sql.SQL("SELECT to_jsonb(public.{}({}))").format(
            sql.Identifier(function), arguments
        )
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("SET ROLE service_role")
                result = conn.execute(query, values).fetchone()
        except psycopg.Error as error:
            return api_error(400, error.sqlstate or "XX000", str(error).splitlines()[0])
        return httpx.Response(200, json=result[0] if result else None)

    def select(self, request: httpx.Request, table_name: str) -> httpx.Response:
        self.calls.append(request)
        table = TABLES[table_name]
        params = request.url.params
        columns = params["select"].split(",")
        bounds = {
            v.split(".", 1)[0]: v.split(".", 1)[1] for v in params.get_list(table.partition_column)
        }
        order = [part.rsplit(".", 1)[0] for part in params["order"].split(",")]
        offset, limit = int(params["offset"]), min(int(params["limit"]), self.max_rows)
        rows, total = self._query(table, columns, bounds, order, offset, limit)
        counted = "count=exact" in request.headers.get("prefer", "")
        last = offset + len(rows) - 1
        span = f"{offset}-{last}" if rows else "*"
        headers = {"Content-Range": f"{span}/{total if counted else '*'}"}
        status = 206 if counted and len(rows) < total else 200
        return httpx.Response(status, json=rows, headers=headers)

    def _query(
        self, table: TableSpec, columns: list[str], bounds: dict[str, str], order: list[str],
        offset: int, limit: int,
    ) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
        where = sql.SQL("{p} >= %s AND {p} < %s").format(p=sql.Identifier(table.partition_column))
        page = sql.SQL(
            "SELECT coalesce(json_agg(t), '[]') FROM (SELECT {cols} FROM {table} WHERE {where} "
            "ORDER BY {order} OFFSET %s LIMIT %s) t"
        ).format(
            cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
            table=sql.Identifier("public", table.name),
            where=where,
            order=sql.SQL(", ").join(map(sql.Identifier, order)),
        )
        count = sql.SQL("SELECT count(*) FROM {table} WHERE {where}").format(
            table=sql.Identifier("public", table.name), where=where
        )
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            window = [bounds["gte"], bounds["lt"]]
            rows = conn.execute(page, [*window, offset, limit]).fetchone()
            total = conn.execute(count, window).fetchone()
        assert rows is not None and total is not None
        return rows[0], total[0]

    def install(self, router: respx.Router) -> None:
        router.post(url__regex=rf"{REST}/rpc/(?P<function>\w+)$").mock(side_effect=self.rpc)
        router.get(url__regex=rf"{REST}/(?P<table_name>\w+)\?.*").mock(side_effect=self.select)
