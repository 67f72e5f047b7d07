"""The REST backend against PostgREST's request and response shapes, mocked with respx.

`FakePostgrest` (fake_postgrest.py) answers the way PostgREST does and, with a database, runs the
calls on the real SQL functions and tables of the migrations, so the JSON really round-trips.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pandas as pd
import pytest
import respx

from asx_pipeline.warehouse.frames import WarehouseError, conform_frame
from asx_pipeline.warehouse.rest_backend import SupabaseRestWarehouse
from asx_pipeline.warehouse.tables import DAILY_PRICES, TABLES, TableSpec
from asx_pipeline_tests.warehouse.fake_postgrest import KEY, REST, URL, FakePostgrest, api_error
from asx_pipeline_tests.warehouse.sample_frames import make_frame, window_of


def warehouse(**overrides: Any) -> SupabaseRestWarehouse:
    options: dict[str, Any] = {"batch_rows": 500, "page_rows": 1000, "retry_wait_s": 0.001}
    return SupabaseRestWarehouse(URL, KEY, **(options | overrides))


@pytest.fixture
def fake(migrated_dsn: str) -> FakePostgrest:
    return FakePostgrest(migrated_dsn)


WINDOWED_TABLES = [table for table in TABLES.values() if not table.append_only]


@pytest.mark.parametrize("table", WINDOWED_TABLES, ids=lambda t: t.name)
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
