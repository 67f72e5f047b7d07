"""The Supabase REST warehouse: for users who have only the project URL and the service-role key.

Writes go through the SQL functions of the migrations (deploy/supabase/migrations/0001_*.sql says
why there are two paths): a window that fits in one request is replaced by one
`replace_<table>_window` call; a larger one is staged batch by batch with `stage_window_batch`
under a fresh upload id and made visible at once by `commit_<table>_window`. Every one of those
calls is idempotent, which is what makes retrying them after a timeout safe.

An append-only table (`TableSpec.append_only`) has no window functions: `append_<table>` adds the
partitions of its rows that are not stored yet and skips a stored one whole, so it is idempotent
too; `<table>_partition_values` lists the stored partitions.

Reads page through PostgREST's row limit (`max-rows`, 1,000 on Supabase by default) with
limit/offset, ordered by the table's key, until the total announced by `Content-Range` is reached.
Pages are separate requests, so a read that races a write of the same window could mix them;
Dagster never runs those two at once for one partition.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pandas as pd
from postgrest.exceptions import APIError
from supabase import Client, ClientOptions, create_client
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from asx_pipeline.warehouse.frames import (
    WarehouseError,
    Window,
    coerce_types,
    empty_frame,
    refuse_append_to_windowed,
    refuse_replace_of_append_only,
)
from asx_pipeline.warehouse.postgres_sql import python_values
from asx_pipeline.warehouse.tables import ColumnType, TableSpec

ClientFactory = Callable[[str, str], Client]
T = TypeVar("T")

STAGE_FUNCTION = "stage_window_batch"
# PostgREST's own codes for "could not reach the database" (HTTP 503/504), SQLSTATEs for which
# Postgres asks for a retry or the server went away; a bare HTTP status is a proxy's error page.
_RETRYABLE_CODES = {"PGRST000", "PGRST001", "PGRST002", "PGRST003", "40001", "40P01", "57014"}
_RETRYABLE_CODE_PREFIXES = ("08", "57P", "53")


def default_client_factory(timeout_s: float = 60.0) -> ClientFactory:
    """supabase-py clients without their own retries (ours are the only layer) and no sessions."""

    def make(url: str, key: str) -> Client:
        options = ClientOptions(
            postgrest_client_timeout=timeout_s,
            postgrest_client_retry=False,
            auto_refresh_token=False,
            persist_session=False,
        )
        return create_client(url, key, options)

    return make


def is_retryable(error: BaseException) -> bool:
    """5xx answers, database-connection trouble, timeouts and broken connections."""
    if isinstance(error, httpx.TransportError):  # includes every httpx timeout
        return True
    if not isinstance(error, APIError):
        return False
    code = str(error.code or "")
    if code.isdigit():
        return code.startswith("5")
    return code in _RETRYABLE_CODES or code.startswith(_RETRYABLE_CODE_PREFIXES)


class SupabaseRestWarehouse:
    """Tables of `tables.py` in a Supabase project, reached through PostgREST."""

    name = "rest"

    def __init__(
        self,
        url: str,
        service_role_key: str,
        batch_rows: int = 500,
        page_rows: int = 1000,
        client_factory: ClientFactory | None = None,
        *,
        max_attempts: int = 4,
        retry_wait_s: float = 0.5,
    ) -> None:
        if batch_rows < 1 or page_rows < 1:
            raise ValueError("batch_rows and page_rows must be at least 1")
        self.url = url.rstrip("/")
        self._key = service_role_key
        self.batch_rows = batch_rows
        self.page_rows = page_rows
        self.max_attempts = max_attempts
        self.retry_wait_s = retry_wait_s
        self._client_factory = client_factory or default_client_factory()
        self._client: Client | None = None

    def __repr__(self) -> str:
        return f"SupabaseRestWarehouse({self.describe()})"

    def describe(self) -> str:
        return f"Supabase REST API at {self.url}"

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self._client_factory(self.url, self._key)
        return self._client

    def replace_window(self, table: TableSpec, window: Window, frame: pd.DataFrame) -> int:
        refuse_replace_of_append_only(table)
        rows = json_rows(table, frame)
        batches = [rows[i : i + self.batch_rows] for i in range(0, len(rows), self.batch_rows)]
        what = f"{table.name} ({window}) write"
        if len(batches) <= 1:
            self._rpc(what, f"replace_{table.name}_window", {**_window(window), "p_rows": rows})
            return len(rows)
        upload_id = str(uuid.uuid4())
        for number, batch in enumerate(batches):
            params = {
                "p_upload_id": upload_id,
                "p_table": table.name,
                **_window(window),
                "p_batch": number,
                "p_rows": batch,
            }
            self._rpc(f"{what}, batch {number + 1}/{len(batches)}", STAGE_FUNCTION, params)
        params = {"p_upload_id": upload_id, **_window(window), "p_batches": len(batches)}
        self._rpc(f"{what}, commit", f"commit_{table.name}_window", params)
        return len(rows)

    def append_partitions(self, table: TableSpec, frame: pd.DataFrame) -> int:
        """One `append_<table>` call per request of whole partitions, about batch_rows each.

        A partition is never split across calls: each call is atomic, so a partition is stored
        whole or not at all, and it is skipped if it is stored already. Calls are not atomic
        together, but a failure part way leaves whole partitions only, and appending the frame
        again adds exactly the rest. (A retry after a lost answer counts its partitions as
        stored already, so the rows-added total may then be too low; the rows are right.)
        """
        refuse_append_to_windowed(table)
        function = f"append_{table.name}"
        added = 0
        requests = partition_requests(table, json_rows(table, frame), self.batch_rows)
        for number, rows in enumerate(requests, start=1):
            what = f"{table.name} append, request {number}/{len(requests)}"
            added += int(self._rpc(what, function, {"p_rows": rows}) or 0)
        return added

    def partition_values(self, table: TableSpec) -> list[dt.date]:
        # Only append-only tables have the listing function (the migrations render it for them).
        refuse_append_to_windowed(table)
        values = self._rpc(f"{table.name} partition list", f"{table.name}_partition_values", {})
        return [dt.date.fromisoformat(value) for value in values or []]

    def read_window(
        self, table: TableSpec, window: Window, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        wanted = list(columns) if columns is not None else table.column_names
        what = f"{table.name} ({window}) read"
        rows: list[dict[str, Any]] = []
        total: int | None = None
        while total is None or len(rows) < total:
            page, count = self._call(what, lambda: self._page(table, window, wanted, len(rows)))
            if total is None:
                total = count if count is not None else len(page)
            if not page and len(rows) < total:
                raise WarehouseError(
                    f"{what}: the window shrank while it was being read ({len(rows)} of {total} "
                    f"rows from {self.describe()}); read it again"
                )
            rows.extend(page)
        return frame_from_json(table, rows, wanted)

    def _page(
        self, table: TableSpec, window: Window, wanted: list[str], offset: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        # Only the first page asks for the exact count: it is computed by the database.
        query = (
            self.client.table(table.name)
            .select(*wanted, count="exact" if offset == 0 else None)  # type: ignore[arg-type]
            .gte(table.partition_column, window.start.isoformat())
            .lt(table.partition_column, window.end.isoformat())
        )
        for name in table.key:
            query = query.order(name)
        response = query.range(offset, offset + self.page_rows - 1).execute()
        return list(response.data or []), response.count

    def _rpc(self, what: str, function: str, params: dict[str, Any]) -> Any:
        return self._call(what, lambda: self.client.rpc(function, params).execute().data)

    def _call(self, what: str, request: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(initial=self.retry_wait_s, max=10),
            reraise=True,
        )
        try:
            return retrying(request)
        except (APIError, httpx.HTTPError) as error:
            # `from None`: the transport error's request carries the key in its headers.
            raise WarehouseError(self._explain(what, error)) from None

    def _explain(self, what: str, error: APIError | httpx.HTTPError) -> str:
        if isinstance(error, APIError):
            detail = f"code {error.code}: {error.message}"
            if error.hint:
                detail += f" (hint: {error.hint})"
        else:
            detail = f"{type(error).__name__}: {error}"
        host = urlsplit(self.url).netloc
        text = f"{what} via the Supabase REST API ({host}) failed, nothing was changed: {detail}"
        return redact_key(text, self._key)


def redact_key(text: str, key: str) -> str:
    """`text` without the key, also as an HTTP library quotes a header value it refuses.

    h11 reports a key with a line break as `Illegal header value b'<key>\\n'`: the key escaped as
    a bytes repr, which a plain replace of the key would miss. (The settings refuse such a key;
    this is for keys that reach the backend some other way.)
    """
    forms = {key, repr(key)[1:-1], repr(key.encode("utf-8", "backslashreplace"))[2:-1]}
    # Each whitespace-separated piece of a key, in case a message quotes them one by one.
    forms |= {part for part in key.split() if len(part) >= 8}
    for form in sorted((form for form in forms if form), key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def json_rows(table: TableSpec, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: ISO dates and timestamps, None for missing (JSON has no NaN)."""
    names = table.column_names
    columns = [_json_values(frame[c.name], c.type) for c in table.columns]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def partition_requests(
    table: TableSpec, rows: list[dict[str, Any]], batch_rows: int
) -> list[list[dict[str, Any]]]:
    """Rows grouped into requests of whole partitions, ascending, up to `batch_rows` rows each.

    A partition larger than `batch_rows` still goes whole in a request of its own: one call is
    what makes it atomic, and there is no staging for appends. That is fine for the tables that
    exist: a directory snapshot is ~2,000 rows, a few hundred KB of JSON, well within PostgREST's
    request limits. A partition of more than ~10x batch_rows would need staged appends first.
    """
    partitions: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        partitions.setdefault(row[table.partition_column], []).append(row)
    requests: list[list[dict[str, Any]]] = []
    for value in sorted(partitions):
        partition = partitions[value]
        if requests and len(requests[-1]) + len(partition) <= batch_rows:
            requests[-1].extend(partition)
        else:
            requests.append(list(partition))
    return requests


def _json_values(series: pd.Series, column_type: ColumnType) -> list[Any]:
    values = python_values(series, column_type)
    if column_type in ("date", "timestamp"):
        return [None if value is None else value.isoformat() for value in values]
    return values


def frame_from_json(
    table: TableSpec, rows: list[dict[str, Any]], wanted: list[str]
) -> pd.DataFrame:
    """PostgREST's JSON rows back to the dtypes of `coerce_types`."""
    if not rows:
        return empty_frame(table)[wanted]
    frame = pd.DataFrame.from_records(rows, columns=wanted)
    for name in wanted:
        if table.column(name).type == "timestamp":
            # PostgREST omits zero fractions ("…:00+00:00"), so one column mixes two layouts.
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    return coerce_types(table, frame)[wanted]


def _window(window: Window) -> dict[str, str]:
    return {"p_start": window.start.isoformat(), "p_end": window.end.isoformat()}
