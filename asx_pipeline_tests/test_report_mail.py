"""The daily report by email: delivered to a real SMTP server on 127.0.0.1, and asked for only by
the daily schedule and `asx-pipeline daily` of the latest session."""

import datetime as dt
import json
import re
import struct
import zlib
from email.message import Message
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import AuthResult
from dagster import asset, materialize

from asx_pipeline import cli, runs
from asx_pipeline.calendar import latest_final_session, session_before
from asx_pipeline.report_mail import (
    MAIL_REPORT_TAG,
    MailedReport,
    ReportMailResource,
    mail_requested,
)
from asx_pipeline.settings import Settings, get_settings, load_settings
from asx_pipeline_tests.smtp_server import free_port, smtp_server_running

SYDNEY = ZoneInfo("Australia/Sydney")
SMTP_USER = "reports"
SMTP_PASSWORD = "s3cret-smtp-password"
DB_PASSWORD = "s3cret-db-password"
RECIPIENTS = ["ops@example.com", "team@example.org"]


def _png(red: int, green: int, blue: int) -> bytes:
    """A real 1x1 PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(bytes([0, red, green, blue]))  # filter byte, then the pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(
        b"IEND", b""
    )


REPORT = MailedReport(
    trade_date=dt.date(2025, 12, 24),
    subject="ASX daily report 2025-12-24",
    html=(
        "<html><body><h1>ASX 2025-12-24</h1>"
        '<p>Breadth</p><img src="cid:breadth" alt="breadth">'
        '<p>Movers</p><img src="cid:movers" alt="movers"></body></html>'
    ),
    text="ASX 2025-12-24\nAdvancers 120, decliners 80.\n",
    images={"breadth": _png(0, 128, 0), "movers": _png(200, 0, 0)},
)


class _TestReportMail(ReportMailResource):
    """The report mail resource on the settings `values` (JSON). Test only: its config holds
    secrets in clear, which definitions.py never does."""

    values: str

    def settings(self) -> Settings:
        return load_settings(**json.loads(self.values))


def _mail(port: int, **overrides: object) -> _TestReportMail:
    values = {
        "asx_smtp_host": "127.0.0.1",
        "asx_smtp_port": port,
        "asx_smtp_security": "none",
        "asx_smtp_user": SMTP_USER,
        "asx_smtp_password": SMTP_PASSWORD,
        "asx_smtp_from": "dagster@example.com",
        "asx_report_email": ", ".join(RECIPIENTS),
        "supabase_db_url": f"postgresql://postgres:{DB_PASSWORD}@db.example.com:5432/postgres",
        **overrides,
    }
    return _TestReportMail(values=json.dumps(values))


def _accept_reports(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


def _refuse_quoting_the_password(server, session, envelope, mechanism, auth_data):
    # A careless server that echoes what it was given: the reason must still not carry it.
    password = auth_data.password.decode()
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 {password} is wrong")


# Plain SMTP on loopback (aiosmtpd would otherwise refuse AUTH before STARTTLS, and warns).
LOGIN_REQUIRED = {"auth_required": True, "auth_require_tls": False}
plain_login = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def _parts(message: Message) -> tuple[Message, Message, list[Message]]:
    """(text/plain, text/html, inline images) of a multipart/alternative report mail."""
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.get_payload()
    assert related.get_content_type() == "multipart/related"
    html, *images = related.get_payload()
    return text, html, images


@plain_login
def test_the_report_arrives_with_text_html_and_inline_charts():
    with smtp_server_running(authenticator=_accept_reports, **LOGIN_REQUIRED) as (mailbox, port):
        assert _mail(port).send(REPORT) is None

    assert mailbox.envelopes == [("dagster@example.com", RECIPIENTS)]
    (message,) = mailbox.messages
    assert message["Subject"] == "ASX daily report 2025-12-24"
    assert message["From"] == "dagster@example.com"
    assert message["To"] == "ops@example.com, team@example.org"
    text, html, images = _parts(message)
    assert text.get_content_type() == "text/plain"
    assert text.get_payload(decode=True).decode().replace("\r\n", "\n") == REPORT.text
    assert html.get_content_type() == "text/html"
    body = html.get_payload(decode=True).decode()
    assert body.replace("\r\n", "\n").rstrip("\n") == REPORT.html
    # Each chart is an inline PNG part whose Content-ID is what the HTML's cid: names.
    referenced = set(re.findall(r'src="cid:([^"]+)"', body))
    received = {}
    for image in images:
        assert image.get_content_type() == "image/png"
        assert image.get_content_disposition() == "inline"
        received[image["Content-ID"].strip("<>")] = image.get_payload(decode=True)
    assert set(received) == referenced == {"breadth", "movers"}
    assert received == REPORT.images


@plain_login
def test_a_refused_login_is_a_reason_without_the_password():
    with smtp_server_running(authenticator=_refuse_quoting_the_password, **LOGIN_REQUIRED) as (
        mailbox,
        port,
    ):
        reason = _mail(port).send(REPORT)

    assert mailbox.messages == []
    assert reason is not None and reason.startswith("SMTPAuthenticationError: (535, ")
    assert "is wrong" in reason and "***" in reason
    assert SMTP_PASSWORD not in reason and "\n" not in reason


def test_nothing_listening_is_a_reason_not_an_exception():
    reason = _mail(free_port()).send(REPORT)
    assert reason is not None and reason.startswith("ConnectionRefusedError: ")
    assert SMTP_PASSWORD not in reason and DB_PASSWORD not in reason


def test_nobody_to_mail_without_report_addresses_or_an_smtp_host():
    assert _mail(25).recipients() == RECIPIENTS
    assert _mail(25, asx_report_email=None).recipients() == []
    assert _mail(25, asx_smtp_host=None).recipients() == []
    assert _mail(25, asx_smtp_host=None).send(REPORT) == (
        "not mailed: ASX_REPORT_EMAIL or ASX_SMTP_HOST is not set"
    )


def test_an_asset_gets_the_resource_from_dagster():
    # No config fields: Dagster builds it, and it reads the settings only when asked.
    asked = []

    @asset
    def mailer(report_mail: ReportMailResource) -> None:
        asked.append(report_mail.recipients())

    assert materialize([mailer], resources={"report_mail": ReportMailResource()}).success
    assert len(asked) == 1 and isinstance(asked[0], list)


ONE = [dt.date(2025, 12, 24)]
TWO = [dt.date(2025, 12, 23), dt.date(2025, 12, 24)]


@pytest.mark.parametrize(
    ("tags", "sessions", "expected"),
    [
        ({MAIL_REPORT_TAG: "true"}, ONE, True),
        ({MAIL_REPORT_TAG: "true"}, TWO, False),  # a range run (a backfill) never mails
        ({MAIL_REPORT_TAG: "true"}, [], False),
        ({MAIL_REPORT_TAG: "false"}, ONE, False),
        ({MAIL_REPORT_TAG: "True"}, ONE, False),
        ({}, ONE, False),
        ({"dagster/partition": "2025-12-24"}, ONE, False),
    ],
)
def test_mail_requested(tags, sessions, expected):
    assert mail_requested(tags, sessions) is expected


def _sydney(day: str, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour, minute), tzinfo=SYDNEY)


@pytest.mark.parametrize(
    ("asked", "now", "mailed"),
    [
        (None, _sydney("2025-12-23", 18), True),  # no --date: today's session
        ("2025-12-23", _sydney("2025-12-23", 18), True),
        ("2025-12-22", _sydney("2025-12-23", 18), False),  # redoing an older session
        # In the morning, yesterday is still the latest session with final data.
        ("2025-12-23", _sydney("2025-12-24", 9), True),
        # Christmas Eve closes at 14:10, final at 14:40; then the break: still the latest.
        ("2025-12-24", _sydney("2025-12-24", 15), True),
        ("2025-12-24", _sydney("2025-12-28", 12), True),
        ("2025-12-23", _sydney("2025-12-28", 12), False),
    ],
)
def test_cli_daily_asks_for_the_mail_only_for_the_latest_session(asked, now, mailed):
    day = dt.date.fromisoformat(asked) if asked else None
    assert cli.daily_tags(day, now) == ({MAIL_REPORT_TAG: "true"} if mailed else {})


@pytest.fixture
def in_process_runs(monkeypatch, tmp_path):
    """`asx-pipeline` in this process with its runs recorded, not executed: the tags each
    in-process run (runs.run_job_range) was given, by command."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    started: list[dict[str, str]] = []

    def run_job_range(job_name, first, last, instance=None, asset_selection=None,
                      extra_tags=None):  # fmt: skip
        started.append(dict(extra_tags or {}))
        return SimpleNamespace(run_id="run-1", success=True, get_step_failure_events=list)

    monkeypatch.setattr(runs, "run_job_range", run_job_range)
    monkeypatch.setattr(runs, "summarise_tables", lambda first, last: "summary")
    return started


def test_cli_daily_of_the_latest_session_is_tagged_and_backfill_never(in_process_runs):
    latest = latest_final_session(dt.datetime.now(dt.UTC), get_settings().asx_data_delay_minutes)
    older = session_before(latest)
    assert cli.main(["daily", "--date", latest.isoformat()]) == 0
    assert cli.main(["daily", "--date", older.isoformat()]) == 0
    assert cli.main(["backfill", "--start", older.isoformat(), "--end", latest.isoformat()]) == 0
    assert cli.main(["backfill", "--start", latest.isoformat(), "--end", latest.isoformat()]) == 0
    assert in_process_runs == [{MAIL_REPORT_TAG: "true"}, {}, {}, {}]


def test_a_run_submitted_to_the_queue_carries_the_extra_tags(monkeypatch):
    launched = []

    def run(command, **kwargs):
        launched.append(command)
        return SimpleNamespace(returncode=0, stderr="")

    monkeypatch.setattr(runs.subprocess, "run", run)
    runs.submit_job_range("asx_daily_refresh", ONE[0], ONE[0], {MAIL_REPORT_TAG: "true"})
    runs.submit_job_range("asx_daily_refresh", TWO[0], TWO[1])
    tags = [json.loads(command[command.index("--tags") + 1]) for command in launched]
    assert tags[0] == {"dagster/partition": "2025-12-24", MAIL_REPORT_TAG: "true"}
    assert MAIL_REPORT_TAG not in tags[1]
