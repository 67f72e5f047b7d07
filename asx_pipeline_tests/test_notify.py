"""Alerts delivered to a real SMTP server and a real HTTP server on 127.0.0.1."""

import datetime as dt
import json
import logging
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import AuthResult
from dagster import (
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    build_sensor_context,
    materialize,
)

from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.notify import Alert, AlertsResource, Notifier
from asx_pipeline.sensors import asx_prices_freshness, asx_run_failure_alerts
from asx_pipeline.settings import Settings, load_settings
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import DuckDBWarehouseResource
from asx_pipeline_tests.smtp_server import free_port, smtp_server_running

SYDNEY = ZoneInfo("Australia/Sydney")
WEBSERVER = "http://dagster.home.arpa:3000"
DB_PASSWORD = "s3cret-db-password"
SMTP_PASSWORD = "s3cret-smtp-password"


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"alerts" and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server():
    with smtp_server_running() as (mailbox, port):
        yield mailbox, port


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]]
    status = 200

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        self.received.append((self.path, dict(self.headers), self.rfile.read(length)))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    def start(status: int = 200):
        handler = type("Recorder", (_Recorder,), {"received": [], "status": status})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return handler.received, server.server_address[1]

    servers: list[ThreadingHTTPServer] = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _values(smtp_port: int, http_port: int, **overrides) -> dict:
    return {
        "asx_smtp_host": "127.0.0.1",
        "asx_smtp_port": smtp_port,
        "asx_smtp_security": "none",
        "asx_smtp_from": "dagster@example.com",
        "asx_alert_email": "ops@example.com",
        "asx_alert_webhook_url": f"http://127.0.0.1:{http_port}/hooks/T000/B000/XXXX",
        "asx_webserver_url": WEBSERVER,
        "supabase_db_url": f"postgresql://postgres:{DB_PASSWORD}@db.example.com:5432/postgres",
        **overrides,
    }


def _settings(smtp_port: int, http_port: int, **overrides) -> Settings:
    return load_settings(**_values(smtp_port, http_port, **overrides))


class _TestAlerts(AlertsResource):
    """The alerts resource on the settings `values` (JSON) and, when `at` is set, that clock.

    Test only: its config holds secrets in clear, which definitions.py never does.
    """

    values: str
    at: str = ""

    def settings(self) -> Settings:
        return load_settings(**json.loads(self.values))

    def now(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.at) if self.at else super().now()


def _alerts(smtp_port: int, http_port: int, at: dt.datetime | None = None, **overrides):
    """What `_settings` configures, as the resource the sensors are given."""
    values = _values(smtp_port, http_port, **overrides)
    return _TestAlerts(values=json.dumps(values), at=at.isoformat() if at else "")


def _failed_run(tmp_path: Path):
    """A real failed run: daily_prices for 2025-12-24 with no asx_symbols stored for that day."""
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [asx_symbols, market_bars],
        selection=AssetSelection.assets("daily_prices", "corporate_actions"),
        partition_key="2025-12-24",
        resources={
            "market_data": MarketDataResource(source="sample", universe="top:5"),
            **warehouse_resources(DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))),
        },
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    return instance, result.run_id


def _run_failure_context(instance: DagsterInstance, run_id: str, alerts: AlertsResource):
    (record,) = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records
    return build_run_status_sensor_context(
        sensor_name="asx_run_failure_alerts",
        dagster_event=record.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run_id),
        resources={"alerts": alerts},
    ).for_run_failure()


EXPECTED_ERROR = (
    "asx_symbols has no rows for 2025-12-24: materialise asx_symbols for these sessions first. "
    "Nothing was written."
)


def test_a_failed_run_is_mailed_and_posted_with_step_error_and_link(
    tmp_path, smtp_server, http_server
):
    mailbox, smtp_port = smtp_server
    posts, http_port = http_server()
    instance, run_id = _failed_run(tmp_path)
    asx_run_failure_alerts(_run_failure_context(instance, run_id, _alerts(smtp_port, http_port)))

    (message,) = mailbox.messages
    assert mailbox.envelopes == [("dagster@example.com", ["ops@example.com"])]
    subject = "[asx-pipeline] Run failed: __ephemeral_asset_job__ 2025-12-24"
    assert message["Subject"] == subject
    body = message.get_payload(decode=True).decode().replace("\r\n", "\n")
    lines = body.splitlines()
    assert lines[:5] == [
        "Job: __ephemeral_asset_job__",
        "Partition: 2025-12-24",
        "Failed step: market_bars",
        f"Run id: {run_id}",
        "Error:",
    ]
    assert lines[5:] == [
        f"  dagster._core.definitions.events.Failure: {EXPECTED_ERROR}",
        f"{WEBSERVER}/runs/{run_id}",
    ]
    assert lines[-1] == f"{WEBSERVER}/runs/{run_id}"

    ((path, headers, raw),) = posts
    assert path == "/hooks/T000/B000/XXXX"
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(raw)
    assert payload["text"] == f"{subject}\n{body.rstrip(chr(10))}"
    assert payload["content"] == payload["text"]
    assert payload["title"] == subject
    assert payload["click"] == f"{WEBSERVER}/runs/{run_id}"
    # The URL's last segment is a Slack/Discord token: never echoed into the message.
    assert "topic" not in payload and b"XXXX" not in raw


def test_a_broken_channel_is_logged_and_the_others_still_deliver(
    smtp_server, http_server, caplog
):
    mailbox, smtp_port = smtp_server
    posts, http_port = http_server(status=500)
    notifier = Notifier(_settings(smtp_port, http_port))

    with caplog.at_level(logging.ERROR, logger="asx_pipeline.notify"):
        delivered = notifier.send(Alert("Run failed: x", ("line",), link=None))

    assert delivered == ["email"]
    assert len(mailbox.messages) == 1 and len(posts) == 1
    (record,) = caplog.records
    assert "Could not send the webhook alert 'Run failed: x': HTTPError: HTTP Error 500" in (
        record.getMessage()
    )
    # The webhook URL is a credential (anyone holding it can post): never logged.
    assert "/hooks/T000" not in caplog.text


def test_nothing_listening_never_raises(caplog):
    settings = _settings(free_port(), free_port())
    with caplog.at_level(logging.ERROR, logger="asx_pipeline.notify"):
        assert Notifier(settings).send(Alert("subject", ("line",))) == []
    assert len(caplog.records) == 2


def test_secrets_never_leave_in_a_message(smtp_server, http_server):
    mailbox, smtp_port = smtp_server
    posts, http_port = http_server()
    settings = _settings(smtp_port, http_port)
    leaky = Alert(
        "Run failed",
        (
            f"psycopg.OperationalError: connection to postgresql://postgres:{DB_PASSWORD}@db",
            f"password={DB_PASSWORD} and https://someone:hunter22@example.com/x",
        ),
    )
    Notifier(settings).send(leaky)

    body = mailbox.messages[0].get_payload(decode=True).decode().replace("\r\n", "\n")
    posted = posts[0][2].decode()
    for text in (body, posted):
        assert DB_PASSWORD not in text and "hunter22" not in text
    assert "postgresql://***@db" in body
    assert "password=*** and https://***@example.com/x" in body


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a throwaway certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_email_over_tls_with_login(tmp_path, monkeypatch, security):
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    # The client verifies the server as usual; the test's CA is the throwaway certificate.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    # aiosmtpd only counts STARTTLS as TLS for AUTH; with implicit TLS the socket is TLS anyway.
    tls = {"ssl_context": server_tls, "auth_require_tls": False} if security == "ssl" else {
        "tls_context": server_tls, "require_starttls": True, "auth_require_tls": True
    }
    with smtp_server_running(authenticator=_authenticate, **tls) as (mailbox, port):
        settings = _settings(
            port, free_port(), asx_smtp_security=security,
            asx_smtp_user="alerts", asx_smtp_password=SMTP_PASSWORD, asx_alert_webhook_url=None,
        )  # fmt: skip
        delivered = Notifier(settings).send(Alert("Over TLS", ("hello",), link="http://x/runs/1"))
    assert delivered == ["email"]
    (message,) = mailbox.messages
    assert message["Subject"] == "[asx-pipeline] Over TLS"
    body = message.get_payload(decode=True).decode().replace("\r\n", "\n")
    assert body == "hello\nhttp://x/runs/1\n"


def test_late_prices_alert_once_per_session_after_the_deadline(tmp_path, http_server):
    posts, http_port = http_server()
    smtp_port = free_port()
    instance = DagsterInstance.ephemeral()
    now = {"at": dt.datetime(2025, 12, 23, 19, 29, tzinfo=SYDNEY)}

    def tick(cursor=None):
        alerts = _alerts(smtp_port, http_port, at=now["at"], asx_smtp_host=None)
        context = build_sensor_context(
            instance=instance, cursor=cursor, resources={"alerts": alerts}
        )
        result = asx_prices_freshness.evaluate_tick(context)
        return result.skip_message, result.cursor

    message, _ = tick()
    assert message == "No freshness check due: not a session, or before the deadline."
    assert posts == []

    now["at"] = dt.datetime(2025, 12, 23, 19, 31, tzinfo=SYDNEY)
    message, cursor = tick()
    assert message == "daily_prices for 2025-12-23 is late; alert sent by ['webhook']."
    assert cursor == "2025-12-23"
    payload = json.loads(posts[0][2])
    assert payload["title"] == "[asx-pipeline] daily_prices is late for 2025-12-23"
    assert payload["message"] == (
        "daily_prices has no data for the ASX session 2025-12-23, due by 19:30 Sydney "
        "(ASX_FRESHNESS_DEADLINE).\n"
        "Checked at 2025-12-23 19:31 AEDT.\n"
        "Look at the latest asx_daily_refresh runs, or run "
        "`asx-pipeline daily --date 2025-12-23`.\n"
        f"{WEBSERVER}/runs"
    )

    # The next tick remembers it already said so: one message per late session.
    message, _ = tick(cursor)
    assert message == "Already alerted that daily_prices for 2025-12-23 is late."
    assert len(posts) == 1

    # Once the session's prices are in, the check is satisfied.
    materialize(
        [asx_symbols, market_bars],
        partition_key="2025-12-23",
        resources={
            "market_data": MarketDataResource(source="sample", universe="top:3"),
            **warehouse_resources(DuckDBWarehouseResource(path=str(tmp_path / "warehouse.duckdb"))),
        },
        instance=instance,
    )
    message, _ = tick(cursor)
    assert message == "daily_prices for 2025-12-23 is there."
    # Christmas is not a session: nothing is due.
    now["at"] = dt.datetime(2025, 12, 25, 20, 0, tzinfo=SYDNEY)
    assert tick()[0] == "No freshness check due: not a session, or before the deadline."


def test_ntfy_topic_comes_from_the_url_fragment_only() -> None:
    from asx_pipeline.notify import Alert, webhook_body

    alert = Alert(subject="s", lines=("l",))
    assert webhook_body("https://ntfy.sh/#asx-alerts", alert)["topic"] == "asx-alerts"
    assert "topic" not in webhook_body("https://discord.com/api/webhooks/1/SECRET", alert)


def test_a_step_whose_retries_ran_out_is_alerted_with_its_own_error(
    smtp_server, http_server
):
    from dagster import RetryPolicy, asset

    @asset(retry_policy=RetryPolicy(max_retries=1))
    def flaky_prices() -> None:
        raise ConnectionError("Yahoo did not answer (connection reset)")

    mailbox, smtp_port = smtp_server
    _, http_port = http_server()
    instance = DagsterInstance.ephemeral()
    result = materialize([flaky_prices], instance=instance, raise_on_error=False)
    assert not result.success
    # Dagster's own words for the failure: the cause is one level down.
    (failure,) = result.get_step_failure_events()
    assert failure.event_specific_data.error.message.startswith("Exceeded max_retries of 1")

    asx_run_failure_alerts(
        _run_failure_context(instance, result.run_id, _alerts(smtp_port, http_port))
    )

    body = mailbox.messages[0].get_payload(decode=True).decode().replace("\r\n", "\n")
    error_lines = body.split("Error:\n", 1)[1].splitlines()
    assert error_lines[0].startswith("  ConnectionError: Yahoo did not answer (connection reset)")
    assert "Exceeded max_retries" not in body
