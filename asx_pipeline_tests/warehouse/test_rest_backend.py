"""The REST backend against PostgREST's request and response shapes, mocked with respx.

`FakePostgrest` answers the way PostgREST does (rpc bodies as named arguments, `select`/filters/
`order`/`offset`/`limit` query parameters, `Prefer: count=exact`, `Content-Range`, a `max-rows`
cap, error bodies `{"code","message","details","hint"}`); with a database it runs the calls on
the real SQL functions and tables of the migrations, so the JSON really round-trips.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd
import psycopg
import pytest
import respx
from psycopg import sql

from asx_pipeline.warehouse.frames import WarehouseError, conform_frame
from asx_pipeline.warehouse.rest_backend import SupabaseRestWarehouse
from asx_pipeline.warehouse.tables import DAILY_PRICES, TABLES, TableSpec
from asx_pipeline_tests.warehouse.sample_frames import make_frame, window_of

URL = "https://abcdefghijkl.supabase.co"
REST = f"{URL}/rest/v1"
KEY = "eyJhbGciOiJIUzI1NiJ9.c2VydmljZV9yb2xlLXNlY3JldA.SeCrEtSiGnAtUrE"


def warehouse(**overrides: Any) -> SupabaseRestWarehouse:
    options: dict[str, Any] = {"batch_rows": 500, "page_rows": 1000, "retry_wait_s": 0.001}
    return SupabaseRestWarehouse(URL, KEY, **(options | overrides))


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
        query = sql.SQL("SELECT public.{}({})").format(sql.Identifier(function), arguments)
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


@pytest.fixture
def fake(migrated_dsn: str) -> FakePostgrest:
    return FakePostgrest(migrated_dsn)


@pytest.mark.parametrize("table", list(TABLES.values()), ids=lambda t: t.name)
def test_small_window_is_one_rpc_and_reads_back_identical(
    fake: FakePostgrest, table: TableSpec
) -> None:
    window = window_of(0, 3)
    frame = conform_frame(table, window, make_frame(table, window, rows_per_day=4))
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        backend = warehouse()
        assert backend.replace_window(table, window, frame) == len(frame)
        read = backend.read_window(table, window)

    rpc = fake.calls[0]
    assert rpc.url.path == f"/rest/v1/rpc/replace_{table.name}_window"
    body = json.loads(rpc.content)
    assert (body["p_start"], body["p_end"]) == ("2025-11-03", "2025-11-06")
    pd.testing.assert_frame_equal(read, frame)


def test_large_window_is_staged_in_batches_then_committed_atomically(fake: FakePostgrest) -> None:
    window = window_of(0, 5)
    frame = conform_frame(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, 500))
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        backend = warehouse(batch_rows=600, page_rows=700)
        assert backend.replace_window(DAILY_PRICES, window, frame) == 2500
        writes = list(fake.calls)
        read = backend.read_window(DAILY_PRICES, window)

    paths = [call.url.path.rsplit("/", 1)[-1] for call in writes]
    assert paths == ["stage_window_batch"] * 5 + ["commit_daily_prices_window"]
    bodies = [json.loads(call.content) for call in writes]
    assert [b["p_batch"] for b in bodies[:5]] == [0, 1, 2, 3, 4]
    assert [len(b["p_rows"]) for b in bodies[:5]] == [600, 600, 600, 600, 100]
    assert len({b["p_upload_id"] for b in bodies}) == 1
    assert bodies[-1]["p_batches"] == 5
    reads = fake.calls[len(writes) :]
    assert [call.url.params["offset"] for call in reads] == ["0", "700", "1400", "2100"]
    assert reads[0].headers["prefer"] == "count=exact"
    assert reads[0].url.params.get_list("trade_date") == ["gte.2025-11-03", "lt.2025-11-08"]
    assert reads[0].url.params["order"] == "trade_date.asc,symbol.asc"
    pd.testing.assert_frame_equal(read, frame)


def test_a_failed_batch_leaves_the_old_window(fake: FakePostgrest) -> None:
    window = window_of(0, 2)
    old = conform_frame(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, 10, version=1))
    new = conform_frame(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, 400, version=2))
    staged: list[int] = []

    def second_batch_refused(request: httpx.Request) -> httpx.Response:
        staged.append(1)
        if len(staged) == 2:
            return api_error(413, "PGRST413", "Payload Too Large")
        return fake.rpc(request, "stage_window_batch")

    with respx.mock(assert_all_called=False) as router:
        # Added first: respx answers with the first route that matches.
        router.post(f"{REST}/rpc/stage_window_batch").mock(side_effect=second_batch_refused)
        fake.install(router)
        backend = warehouse(batch_rows=300)
        backend.replace_window(DAILY_PRICES, window, old)
        with pytest.raises(WarehouseError, match=r"batch 2/3 .*code PGRST413: Payload Too Large"):
            backend.replace_window(DAILY_PRICES, window, new)
        read = backend.read_window(DAILY_PRICES, window)

    assert len(staged) == 2  # no batch after the refused one, and no retry of a 4xx
    assert not any("commit_" in call.url.path for call in fake.calls)
    pd.testing.assert_frame_equal(read, old)


def test_server_row_cap_below_page_size_still_reads_everything(fake: FakePostgrest) -> None:
    fake.max_rows = 250
    window = window_of(0, 2)
    frame = conform_frame(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, 400))
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        backend = warehouse(page_rows=1000)
        backend.replace_window(DAILY_PRICES, window, frame)
        read = backend.read_window(DAILY_PRICES, window)

    pd.testing.assert_frame_equal(read, frame)


@respx.mock
def test_api_errors_name_code_and_message_but_never_the_key() -> None:
    respx.post(f"{REST}/rpc/replace_daily_prices_window").mock(
        return_value=httpx.Response(
            401,
            json={"code": "PGRST301", "message": "JWT expired", "details": None, "hint": None},
        )
    )
    window = window_of(0, 1)
    frame = conform_frame(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, 2))

    with pytest.raises(WarehouseError) as raised:
        warehouse().replace_window(DAILY_PRICES, window, frame)

    text = str(raised.value)
    assert "daily_prices (2025-11-03)" in text and "code PGRST301: JWT expired" in text
    assert KEY not in text and KEY not in repr(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert respx.calls.call_count == 1  # a 4xx is not retried


@respx.mock
def test_5xx_and_timeouts_are_retried_with_backoff() -> None:
    route = respx.post(f"{REST}/rpc/replace_daily_prices_window").mock(
        side_effect=[
            httpx.Response(503, text="<html>upstream unavailable</html>"),
            httpx.ReadTimeout("timed out"),
            api_error(503, "PGRST001", "Database client error. Retrying the connection."),
            httpx.Response(200, json=2),
        ]
    )
    window = window_of(0, 1)
    frame = conform_frame(DAILY_PRICES, window, make_frame(DAILY_PRICES, window, 2))

    assert warehouse(max_attempts=4).replace_window(DAILY_PRICES, window, frame) == 2
    assert route.call_count == 4


@respx.mock
def test_transport_errors_become_warehouse_errors_without_the_key() -> None:
    respx.get(url__startswith=f"{REST}/daily_prices").mock(
        side_effect=httpx.ConnectError(f"connection refused (apikey={KEY})")
    )

    with pytest.raises(WarehouseError, match="ConnectError") as raised:
        warehouse(max_attempts=2).read_window(DAILY_PRICES, window_of(0, 1))

    assert KEY not in str(raised.value)
    assert respx.calls.call_count == 2
    assert KEY not in repr(warehouse()) and KEY not in warehouse().describe()
