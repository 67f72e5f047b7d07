"""No typo leaks a secret: the real CLI and Dagster's loader, then every byte they left, grepped.

A mistyped SUPABASE_DB_URL (`postgresql//...`, or a password with an unencoded space) used to be
quoted by libpq's parse error into the run's event log, the run index, the captured step output
and the CLI's output. Each case here runs the real `asx-pipeline` (and Dagster's own code
location loader) as a subprocess with a fresh DAGSTER_HOME and ASX_DATA_DIR, then reads every
file under that folder and both output streams, looking for the password as is and
percent-encoded.

A well-formed URL pointing at a closed port must still start a run, which fails on connect: its
event log, compute logs, CLI output and failure alert must not hold the password either.
"""

from __future__ import annotations

import datetime as dt
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from dagster import DagsterEventType, DagsterInstance
from dagster._core.instance.ref import InstanceRef

from asx_pipeline.notify import Notifier, error_summary, failure_alert, redact, secrets_of
from asx_pipeline.runs import failed_symbols_of_run
from asx_pipeline.settings import DSN_EXPECTED, load_settings
from asx_pipeline.warehouse.frames import WarehouseError, Window
from asx_pipeline.warehouse.postgres_sql import dsn_passwords
from asx_pipeline.warehouse.rest_backend import SupabaseRestWarehouse
from asx_pipeline.warehouse.tables import DAILY_PRICES
from asx_pipeline_tests.test_cli import _environment as cli_environment

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SESSION = "2025-06-02"  # a Monday and an ASX session

# case -> (SUPABASE_DB_URL, the password in it, the problem the error must name)
TYPOS = {
    "no-colon-after-scheme": (
        "postgresql//user:S3cretPw@127.0.0.1:5432/db",
        "S3cretPw",
        "starts with neither postgresql:// nor postgres://",
    ),
    "space-in-password": (
        "postgresql://postgres:my secret@127.0.0.1:5432/postgres",
        "my secret",
        "contains a space",
    ),
}
CLOSED_PORT_URL, CLOSED_PORT_PASSWORD = "postgresql://user:S3cretPw@127.0.0.1:1/db", "S3cretPw"
REST_KEY = "sb_secret_K3yWithALineBreak\n"
WEBHOOK_TOKEN = "W3bhookT0ken"

COMMANDS = {
    "daily": [str(BIN / "asx-pipeline"), "daily", "--date", SESSION],
    "db-migrate": [str(BIN / "asx-pipeline"), "db", "migrate"],
    "db-status": [str(BIN / "asx-pipeline"), "db", "status"],
}
# What the webserver and the daemon do first: load the code location.
LOADERS = {
    "import-definitions": [sys.executable, "-c", "import asx_pipeline.definitions"],
    "dagster-validate": [
        str(BIN / "dagster"), "definitions", "validate", "-m", "asx_pipeline.definitions"
    ],
}


@dataclass(frozen=True)
class Outcome:
    root: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"


def _environment(root: Path, **extra: str) -> dict[str, str]:
    """As cron or systemd would run it (test_cli's environment); a connection refused is retried
    by the warehouse itself, so step retries would only add minutes."""
    return cli_environment(root, ASX_STEP_MAX_RETRIES="0", **extra)


def _run(root: Path, argv: list[str], **extra: str) -> Outcome:
    home = root / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_bytes((REPO_ROOT / "dagster.yaml").read_bytes())
    done = subprocess.run(
        argv, env=_environment(root, **extra), cwd=root, capture_output=True, text=True,
        timeout=180,
    )
    return Outcome(root, done.returncode, done.stdout, done.stderr)


def _jobs() -> dict[tuple[str, str], tuple[list[str], dict[str, str]]]:
    """(case, command) -> (argv, environment); the closed-port run first: it takes longest."""
    jobs: dict[tuple[str, str], tuple[list[str], dict[str, str]]] = {}
    for name, argv in COMMANDS.items():
        jobs["closed-port", name] = (argv, {"SUPABASE_DB_URL": CLOSED_PORT_URL})
    for case, (url, _password, _problem) in TYPOS.items():
        for name, argv in {**COMMANDS, **LOADERS}.items():
            jobs[case, name] = (argv, {"SUPABASE_DB_URL": url})
    rest = {
        "SUPABASE_URL": "https://abcdefghijkl.supabase.co",
        "SUPABASE_SERVICE_ROLE_KEY": REST_KEY,
    }
    for name, argv in LOADERS.items():
        jobs["rest-key-line-break", name] = (argv, rest)
    return jobs


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Outcome]:
    """Every subprocess of this module, run once, three at a time (they mostly wait or import)."""
    for script in ("asx-pipeline", "dagster"):
        if not (BIN / script).exists():
            pytest.skip(f"{BIN / script} is not installed (pip install -e . first)")
    jobs = _jobs()
    base = tmp_path_factory.mktemp("secret_typos")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            key: pool.submit(_run, base / "-".join(key), argv, **extra)
            for key, (argv, extra) in jobs.items()
        }
        return {key: future.result() for key, future in futures.items()}


def password_forms(password: str) -> list[bytes]:
    """The password as a message, a JSON event or a URL would hold it."""
    return [form.encode() for form in {password, quote(password, safe=""), quote(password)}]


def places_holding(outcome: Outcome, password: str) -> tuple[int, list[str]]:
    """(places searched, those holding the password): both streams and every file it left."""
    places = {"stdout": outcome.stdout.encode(), "stderr": outcome.stderr.encode()}
    for path in sorted(p for p in outcome.root.rglob("*") if p.is_file()):
        places[str(path.relative_to(outcome.root))] = path.read_bytes()
    forms = password_forms(password)
    return len(places), [name for name, data in places.items() if any(f in data for f in forms)]


def files_holding(outcome: Outcome, text: bytes) -> list[str]:
    return [
        str(path.relative_to(outcome.root))
        for path in outcome.dagster_home.rglob("*")
        if path.is_file() and text in path.read_bytes()
    ]


# --- a mistyped SUPABASE_DB_URL stops everything at load ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("command", [*COMMANDS, *LOADERS])
@pytest.mark.parametrize("case", list(TYPOS))
def test_a_mistyped_db_url_is_refused_by_name_and_never_quoted(outcomes, case, command) -> None:
    url, password, problem = TYPOS[case]
    outcome = outcomes[case, command]

    # The CLI says it as bad input (exit 2, no traceback); the loaders fail as Dagster does.
    if command in COMMANDS:
        assert outcome.returncode == 2, outcome.output[-3000:]
        assert "Traceback" not in outcome.output
    else:
        assert outcome.returncode != 0
    assert "SUPABASE_DB_URL" in outcome.output and DSN_EXPECTED in outcome.output
    assert problem in outcome.output
    searched, leaks = places_holding(outcome, password)
    print(f"{case} / {command}: {searched} places searched, password in {len(leaks)}")
    assert leaks == []
    # Nor the value, nor any other part of it.
    assert url not in outcome.output and "127.0.0.1:5432" not in outcome.output


@pytest.mark.slow
@pytest.mark.parametrize("command", list(LOADERS))
def test_a_service_role_key_with_a_line_break_is_refused_by_name(outcomes, command) -> None:
    outcome = outcomes["rest-key-line-break", command]

    assert outcome.returncode != 0
    assert "SUPABASE_SERVICE_ROLE_KEY" in outcome.output and "line break" in outcome.output
    searched, leaks = places_holding(outcome, REST_KEY.strip())
    print(f"rest key / {command}: {searched} places searched, key in {len(leaks)}")
    assert leaks == []


# --- a well-formed URL to a closed port: a run starts, fails, and still shows no password --------


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_closed_port_fails_without_the_password_anywhere(outcomes, command) -> None:
    outcome = outcomes["closed-port", command]

    assert outcome.returncode == 1, outcome.output[-3000:]
    assert "Connection refused" in outcome.output
    searched, leaks = places_holding(outcome, CLOSED_PORT_PASSWORD)
    print(f"closed port / {command}: {searched} places searched, password in {len(leaks)}")
    assert leaks == []


@pytest.mark.slow
def test_the_failed_run_recorded_its_scrubbed_error(outcomes) -> None:
    """The error did reach the event log and the compute logs: the search above had a target."""
    outcome = outcomes["closed-port", "daily"]
    assert "FAILED: run " in outcome.stderr
    holding = files_holding(outcome, b"user:***@127.0.0.1:1/db")
    assert any(name.startswith("dagster_home/history/runs/") for name in holding), holding
    assert any("/compute_logs/" in name for name in holding), holding


@pytest.fixture
def webhook() -> Iterator[tuple[int, list[bytes]]]:
    """A webhook receiver on 127.0.0.1 that records every body posted to it."""
    bodies: list[bytes] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], bodies
    server.shutdown()
    server.server_close()


@pytest.fixture
def clean_settings_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no developer's .env
    for name in list(os.environ):
        if name.startswith(("ASX_", "SUPABASE_")):
            monkeypatch.delenv(name)


@pytest.mark.slow
def test_the_failure_alert_of_that_run_carries_no_password(
    outcomes, webhook, clean_settings_environment
) -> None:
    """What the run-failure sensor (daemon only) sends, built from the instance as it does."""
    port, bodies = webhook
    outcome = outcomes["closed-port", "daily"]
    settings = load_settings(
        supabase_db_url=CLOSED_PORT_URL,
        asx_alert_webhook_url=f"http://127.0.0.1:{port}/hooks/T000/B000/{WEBHOOK_TOKEN}",
    )
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(outcome.dagster_home))) as instance:
        (run,) = instance.get_runs(limit=1)
        failures = [
            (event.step_key or "?", error_summary(event.event_specific_data.error))
            for event in (
                entry.dagster_event
                for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
            )
        ]
        run_error = next(
            entry.dagster_event.message or ""
            for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
        )
        alert = failure_alert(run, failures, run_error, failed_symbols_of_run(instance, run.run_id))

    assert Notifier(settings).send(alert) == ["webhook"]
    (body,) = bodies
    assert b"Connection refused" in body  # the error itself went out
    assert not any(form in body for form in password_forms(CLOSED_PORT_PASSWORD))
    assert WEBHOOK_TOKEN.encode() not in body


# --- the layers below the settings, for a value that reached them some other way -----------------


@pytest.mark.parametrize("case", list(TYPOS))
def test_alert_redaction_removes_the_password_of_an_unparseable_dsn(case) -> None:
    url, password, _problem = TYPOS[case]
    libpq_says = (
        f'psycopg.ProgrammingError: missing "=" after "{url}" in connection info string\n'
        f'psycopg.ProgrammingError: unexpected spaces found in "{password}", use percent-encoded'
    )
    cleaned = redact(libpq_says, dsn_passwords(url))
    assert password not in cleaned and quote(password) not in cleaned


def test_alert_redaction_reads_a_hash_in_the_password_as_libpq_does(
    clean_settings_environment,
) -> None:
    # urlsplit would end the password at `#` (a fragment); libpq keeps it, and so must redaction.
    settings = load_settings(supabase_db_url="postgresql://postgres:Pa#ss-W0rd@db.example/postgres")
    cleaned = redact("password authentication failed: Pa#ss-W0rd", secrets_of(settings))
    assert "Pa#ss-W0rd" not in cleaned and "ss-W0rd" not in cleaned


def test_a_rest_key_with_a_line_break_is_not_quoted_by_the_http_error(webhook) -> None:
    """h11 refuses the header and quotes it as bytes (`b'...\\n'`), which a plain replace misses."""
    port, _bodies = webhook
    warehouse = SupabaseRestWarehouse(f"http://127.0.0.1:{port}", REST_KEY, max_attempts=1)
    with pytest.raises(WarehouseError) as raised:
        warehouse.read_window(DAILY_PRICES, Window.single(dt.date(2025, 6, 2)))

    text = str(raised.value)
    assert "LocalProtocolError" in text  # the failure this is about happened
    assert REST_KEY.strip() not in text and "K3yWith" not in text
    assert raised.value.__cause__ is None
