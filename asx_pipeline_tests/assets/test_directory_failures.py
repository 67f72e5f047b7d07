"""Through Dagster: a bad ASX directory fails `asx_symbols` at once; a network error is retried.

Every run happens in one child process (see asx_pipeline_tests/directory_failures.py) with the
step retry delay made short, and the attempts are read back from the run's event log. The URLs
are served by a local HTTP server on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance
from dagster._core.instance.ref import InstanceRef

from asx_pipeline.sources.asx_directory import EXPECTED
from asx_pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from asx_pipeline.warehouse.frames import Window
from asx_pipeline.warehouse.tables import ASX_SYMBOLS

MAX_RETRIES = 2
DIRECTORY_CSV = (
    b'"ASX code","Company name","GICs industry group","Listing date","Market Cap"\n'
    b'"BHP","BHP GROUP LIMITED","Materials","13/08/1885","226000000000"\n'
    b'"CBA","COMMONWEALTH BANK OF AUSTRALIA.","Banks","12/09/1991","290000000000"\n'
)
ACCESS_DENIED_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Access denied | asx.com.au</title></head>"
    b"<body><h1>Access denied</h1></body></html>\n"
)


class DirectoryServer(BaseHTTPRequestHandler):
    """/directory.csv serves the CSV; /gone is a 404; /page an HTML page; /flaky drops the first
    connection, answers 503 to the second and serves the CSV from the third request on."""

    requests: Counter[str] = Counter()

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self.requests[path] += 1
        if path == "/flaky" and self.requests[path] == 1:
            self.close_connection = True  # no response at all: the client sees a reset
        elif path == "/flaky" and self.requests[path] == 2:
            self._send(503, b"Service Unavailable", "text/plain")
        elif path in {"/directory.csv", "/flaky"}:
            self._send(200, DIRECTORY_CSV, "text/csv")
        elif path == "/page":
            self._send(200, ACCESS_DENIED_PAGE, "text/html; charset=utf-8")
        else:
            self._send(404, b"Not Found", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    DirectoryServer.requests = Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), DirectoryServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Runs:
    """The runs of the child process, read back from its Dagster instance."""

    def __init__(self, folder: Path, run_ids: dict[str, str]) -> None:
        self.folder = folder
        self.run_ids = run_ids
        self.instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(folder / "home")))

    def events(self, case: str, event_type: DagsterEventType) -> list:
        records = self.instance.get_records_for_run(self.run_ids[case], of_type=event_type)
        return [record.event_log_entry for record in records.records]

    def attempts(self, case: str) -> int:
        # Dagster logs STEP_START once and STEP_RESTARTED for each retry that runs.
        return len(self.events(case, DagsterEventType.STEP_START)) + len(
            self.events(case, DagsterEventType.STEP_RESTARTED)
        )

    def retries(self, case: str) -> int:
        return len(self.events(case, DagsterEventType.STEP_UP_FOR_RETRY))

    def failure(self, case: str):
        (entry,) = self.events(case, DagsterEventType.STEP_FAILURE)
        assert entry.step_key == "asx_symbols"
        return entry.dagster_event.event_specific_data

    def everything_logged(self, case: str) -> str:
        return "\n".join(repr(entry) for entry in self.instance.all_logs(self.run_ids[case]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, server: str) -> Iterator[Runs]:
    folder = tmp_path_factory.mktemp("directory_failures")
    (folder / "home").mkdir()
    (folder / "no-code.csv").write_text(
        "Company name,GICS industry group\nBHP GROUP LIMITED,Materials\n", encoding="utf-8"
    )
    (folder / "empty.csv").write_bytes(b"")
    (folder / "junk.csv").write_bytes(b"\x00\x01\x02\x03junk\xff\xfe")
    cases = {
        "no_code": {"source": str(folder / "no-code.csv")},
        "empty": {"source": str(folder / "empty.csv")},
        "missing": {"source": str(folder / "nowhere.csv")},
        "binary": {"source": str(folder / "junk.csv")},
        "http_404": {"source": f"{server}/gone?access_token=s3cret"},
        "html": {"source": f"{server}/page"},
        "flaky": {"source": f"{server}/flaky"},
        "refused": {"source": f"http://127.0.0.1:{_closed_port()}/directory.csv"},
        "not_final": {"now": "2025-12-24T13:00:00+11:00"},
    }
    env = {
        **os.environ,
        "DAGSTER_HOME": str(folder / "home"),
        "ASX_STEP_MAX_RETRIES": str(MAX_RETRIES),
        "ASX_STEP_RETRY_DELAY_SECONDS": "0.05",
        "ASX_DATA_DELAY_MINUTES": "30",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "asx_pipeline_tests.directory_failures",
            str(folder),
            json.dumps(cases),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    found = Runs(folder, json.loads(completed.stdout.strip().splitlines()[-1]))
    yield found
    found.instance.dispose()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "no_code",
            "{folder}/no-code.csv has no 'ASX code' column; found columns: Company name, "
            f"GICS industry group; {EXPECTED}",
        ),
        ("empty", f"{{folder}}/empty.csv is empty; {EXPECTED}"),
        (
            "missing",
            "{folder}/nowhere.csv does not exist; set ASX_DIRECTORY_SOURCE to the http(s) URL of "
            "the ASX directory CSV or the path of an existing CSV file",
        ),
        (
            "binary",
            "{folder}/junk.csv: not a CSV text file (binary content at byte 0: 0x00); " + EXPECTED,
        ),
        (
            "http_404",
            "could not fetch the ASX directory from {server}/gone?<redacted>: HTTP 404 Not Found; "
            "expected the ASX directory CSV at that URL; set ASX_DIRECTORY_SOURCE to the http(s) "
            "URL of the ASX directory CSV or the path of an existing CSV file",
        ),
        (
            "html",
            "{server}/page is an HTML page titled 'Access denied | asx.com.au' (Content-Type: "
            f"text/html; charset=utf-8), not a CSV; {EXPECTED}",
        ),
        (
            "not_final",
            "2025-12-24 is not final yet: it can be materialised from 2025-12-24 14:40 AEDT "
            "(Australia/Sydney), 30 minutes after its 14:10 early close "
            "(ASX_DATA_DELAY_MINUTES=30). Nothing was written.",
        ),
    ],
)
def test_what_waiting_cannot_fix_fails_on_the_first_attempt_saying_what_was_expected(
    runs: Runs, server: str, case: str, message: str
) -> None:
    assert runs.attempts(case) == 1
    assert runs.retries(case) == 0
    failure = runs.failure(case)
    expected = message.format(folder=runs.folder, server=server)
    # The Failure's description is what the UI, the CLI and the alerts show.
    assert failure.user_failure_data.description == expected
    assert failure.error.message.strip().endswith(expected)
    assert runs.events(case, DagsterEventType.ASSET_MATERIALIZATION) == []


def test_the_404_never_shows_the_query_token(runs: Runs) -> None:
    assert "s3cret" not in runs.everything_logged("http_404")
    assert "<redacted>" in runs.failure("http_404").error.message


def test_a_404_and_an_html_page_are_each_asked_for_once(runs: Runs) -> None:
    assert DirectoryServer.requests["/gone"] == 1
    assert DirectoryServer.requests["/page"] == 1


def test_a_dropped_connection_then_a_503_are_retried_by_the_step_until_the_csv_arrives(
    runs: Runs,
) -> None:
    assert runs.retries("flaky") == 2
    assert runs.attempts("flaky") == 3
    assert DirectoryServer.requests["/flaky"] == 3
    assert runs.events("flaky", DagsterEventType.STEP_FAILURE) == []
    assert _stored(runs, "flaky") == [
        ("BHP", "BHP.AX", "BHP GROUP LIMITED", "active"),
        ("CBA", "CBA.AX", "COMMONWEALTH BANK OF AUSTRALIA.", "active"),
    ]


def test_a_refused_connection_is_retried_up_to_the_policy_then_names_the_url(
    runs: Runs,
) -> None:
    assert runs.retries("refused") == MAX_RETRIES
    assert runs.attempts("refused") == MAX_RETRIES + 1
    error = runs.failure("refused").error
    assert error.message.strip() == f"Exceeded max_retries of {MAX_RETRIES}"
    cause = error.cause.message.strip()
    assert cause.startswith(
        "asx_pipeline.sources.asx_directory.DirectoryUnavailableError: "
        "could not fetch the ASX directory from http://127.0.0.1:"
    )
    assert cause.endswith("/directory.csv: ConnectionError")


def _stored(runs: Runs, case: str) -> list[tuple]:
    day = dt.date(2025, 12, 24)
    frame = DuckDBWarehouse(runs.folder / f"{case}.duckdb").read_window(
        ASX_SYMBOLS, Window.single(day)
    )
    columns = ["symbol", "yahoo_ticker", "company_name", "status"]
    return [tuple(row) for row in frame[columns].itertuples(index=False)]
