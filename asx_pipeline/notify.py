"""Alerts by email and webhook: what failed or is late, and a link to the run.

Channels, both optional and both used when configured:
- email over SMTP (`ASX_SMTP_HOST`, `ASX_SMTP_PORT`, `ASX_SMTP_SECURITY` = starttls | ssl | none,
  `ASX_SMTP_USER`/`ASX_SMTP_PASSWORD` when the server wants a login, `ASX_SMTP_FROM`) to
  `ASX_ALERT_EMAIL`;
- a webhook POST to `ASX_ALERT_WEBHOOK_URL` with one JSON body that several services read:
  Slack reads `text`, Discord `content`, ntfy `topic`/`title`/`message`/`click`. ntfy takes JSON
  only at its root URL, so for ntfy write the topic as the URL's fragment:
  `https://ntfy.sh/#asx-alerts` posts to `https://ntfy.sh/` with topic `asx-alerts`.

What the alerts say is here too (`failure_alert`, `late_prices_alert`); sensors.py decides when to
send them, through `AlertsResource`.

A notification that cannot be delivered is logged and swallowed: it must never fail the sensor
that sends it, nor hide the failure it reports. Every message is passed through `redact` first, so
a password, key or webhook URL that leaked into an error text is never sent on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import smtplib
import ssl
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit, urlunsplit

from dagster import ConfigurableResource, DagsterRun
from dagster_shared.error import SerializableErrorInfo

from asx_pipeline.calendar import SYDNEY, partition_label
from asx_pipeline.settings import Settings, get_settings
from asx_pipeline.warehouse.postgres_sql import dsn_passwords

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "[asx-pipeline]"
ERROR_LINES = 8
DISCORD_CONTENT_LIMIT = 2000
TIMEOUT_SECONDS = 20
# user:password@ in any URL-looking text (a database DSN in a driver's error, for example).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
_REDACTED = "***"


@dataclass(frozen=True)
class Alert:
    """One notification: a one-line subject, plain-text lines, and a link to look at."""

    subject: str
    lines: tuple[str, ...]
    link: str | None = None

    def text(self) -> str:
        body = "\n".join(self.lines)
        return f"{body}\n{self.link}" if self.link else body


def secrets_of(settings: Settings) -> list[str]:
    """Every configured value that must never appear in a message."""
    values = [
        settings.asx_smtp_password,
        settings.supabase_db_url,
        settings.supabase_service_role_key,
    ]
    found = [value.get_secret_value() for value in values if value is not None]
    if settings.supabase_db_url is not None:
        # As libpq reads the password, and by shape: urlsplit would stop a password at a `#`.
        found += sorted(dsn_passwords(settings.supabase_db_url.get_secret_value()))
    # A Slack or Discord webhook URL is itself a credential: anyone holding it can post.
    if settings.asx_alert_webhook_url is not None:
        found.append(str(settings.asx_alert_webhook_url))
    return [value for value in found if len(value) >= 4]


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret, and any credentials written into a URL, replaced by ***."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    return _URL_CREDENTIALS.sub(rf"\g<scheme>{_REDACTED}@", text)


class Notifier:
    """Sends an alert on every configured channel; returns the channels that delivered it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._secrets = secrets_of(settings)

    @property
    def channels(self) -> list[str]:
        configured = []
        if self.settings.asx_smtp_host and self.settings.asx_alert_email:
            configured.append("email")
        if self.settings.asx_alert_webhook_url is not None:
            configured.append("webhook")
        return configured

    def send(self, alert: Alert) -> list[str]:
        safe = Alert(
            subject=redact(alert.subject, self._secrets),
            lines=tuple(redact(line, self._secrets) for line in alert.lines),
            link=alert.link,
        )
        delivered = []
        for channel in self.channels:
            try:
                self._deliver(channel, safe)
                delivered.append(channel)
            except Exception as error:
                reason = redact(f"{type(error).__name__}: {error}", self._secrets)
                log.error("Could not send the %s alert %r: %s", channel, safe.subject, reason)
        if not self.channels:
            log.warning("No alert channel configured; alert was: %s", safe.subject)
        return delivered

    def _deliver(self, channel: str, alert: Alert) -> None:
        if channel == "email":
            send_email(self.settings, alert)
        else:
            post_webhook(str(self.settings.asx_alert_webhook_url), alert)


def email_message(settings: Settings, alert: Alert) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"{SUBJECT_PREFIX} {alert.subject}"
    message["From"] = sender(settings, settings.asx_alert_email)
    message["To"] = settings.asx_alert_email
    message.set_content(alert.text() + "\n")
    return message


def sender(settings: Settings, fallback: str | None) -> str | None:
    """The From address: ASX_SMTP_FROM, else the SMTP login, else `fallback` (a recipient)."""
    return settings.asx_smtp_from or settings.asx_smtp_user or fallback


def send_email(settings: Settings, alert: Alert) -> None:
    send_message(settings, email_message(settings, alert))


def send_message(settings: Settings, message: EmailMessage) -> None:
    """Send `message` to its To addresses through the configured SMTP server (TLS as
    ASX_SMTP_SECURITY says, a login when user and password are set); raises on failure.

    The one place that talks SMTP: the alerts and the daily report mail both go through it.
    """
    host, port = settings.asx_smtp_host or "", settings.asx_smtp_port
    context = ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if settings.asx_smtp_security == "ssl" else smtplib.SMTP
    extra = {"context": context} if settings.asx_smtp_security == "ssl" else {}
    with smtp_class(host, port, timeout=TIMEOUT_SECONDS, **extra) as smtp:
        if settings.asx_smtp_security == "starttls":
            smtp.starttls(context=context)
        if settings.asx_smtp_user and settings.asx_smtp_password is not None:
            smtp.login(settings.asx_smtp_user, settings.asx_smtp_password.get_secret_value())
        smtp.send_message(message)


def webhook_body(url: str, alert: Alert) -> dict[str, str]:
    """One JSON body for Slack (`text`), Discord (`content`) and ntfy (the rest)."""
    text = f"{SUBJECT_PREFIX} {alert.subject}\n{alert.text()}"
    parts = urlsplit(url)
    body = {
        "text": text,
        "content": text[:DISCORD_CONTENT_LIMIT],
        "title": f"{SUBJECT_PREFIX} {alert.subject}",
        "message": alert.text(),
    }
    # Only from the fragment: a Slack or Discord URL's last path segment is its secret token.
    if parts.fragment:
        body["topic"] = parts.fragment
    if alert.link:
        body["click"] = alert.link
    return body


def post_webhook(url: str, alert: Alert) -> None:
    parts = urlsplit(url)
    target = urlunsplit(parts._replace(fragment=""))
    request = urllib.request.Request(
        target,
        data=json.dumps(webhook_body(url, alert)).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "asx-pipeline"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        response.read()


class AlertsResource(ConfigurableResource):
    """The alert channels the sensors send on, and the clock they judge lateness by.

    The channels (SMTP, webhook) and the secrets every message is scrubbed of come from the
    settings, which validate them once when the code location loads; none of their values is
    part of this resource's config, so the UI shows none. Tests give a sensor another clock or
    other settings by subclassing.
    """

    def settings(self) -> Settings:
        return get_settings()

    def notifier(self) -> Notifier:
        return Notifier(self.settings())

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def link(self, path: str) -> str:
        """A link into the web UI (ASX_WEBSERVER_URL), e.g. `runs/<run id>`."""
        return f"{str(self.settings().asx_webserver_url).rstrip('/')}/{path}"


# --- what the alerts say --------------------------------------------------------------------


def first_lines(text: str, count: int = ERROR_LINES) -> list[str]:
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return lines[:count] + (["..."] if len(lines) > count else [])


def error_summary(error: SerializableErrorInfo) -> str:
    """The error and its causes, without stack traces: what a person reads first.

    When step retries ran out, Dagster's own message says only "Exceeded max_retries of N"; the
    last attempt's error (its cause) is what says why, so that line is left out.
    """
    return "\n".join(_messages(error))


def failure_reason(error: SerializableErrorInfo | None) -> str:
    """One line: the first line of the error and of each cause, outermost first."""
    if error is None:
        return "unknown error"
    lines = [message.splitlines()[0] for message in _messages(error) if message]
    return " <- ".join(lines) or error.message.strip().splitlines()[0]


def _messages(error: SerializableErrorInfo) -> list[str]:
    messages = []
    current: SerializableErrorInfo | None = error
    while current is not None:
        message = current.message.strip()
        if message and not (message.startswith("Exceeded max_retries") and current.cause):
            messages.append(message)
        current = current.cause
    return messages


def failure_alert(
    run: DagsterRun,
    step_failures: Iterable[tuple[str, str]],
    run_error: str,
    failed_symbols: str = "",
    link: str | None = None,
) -> Alert:
    """What a person needs to act on a failed run: which job, day, step and error, the tickers
    Yahoo did not serve (with why), and a link."""
    failures = list(step_failures)
    partition = partition_label(run.tags) or "none"
    steps = ", ".join(step for step, _ in failures) or "none (the run itself failed)"
    error = failures[0][1] if failures else run_error
    lines = (
        f"Job: {run.job_name}",
        f"Partition: {partition}",
        f"Failed step: {steps}",
        f"Run id: {run.run_id}",
        "Error:",
        *(f"  {line}" for line in first_lines(error)),
        *(
            ["Tickers not fetched (their stored rows are kept):", *failed_symbols.splitlines()]
            if failed_symbols
            else []
        ),
    )
    return Alert(subject=f"Run failed: {run.job_name} {partition}", lines=lines, link=link)


def late_prices_alert(
    session: dt.date, deadline: dt.time, checked_at: dt.datetime, job: str, link: str
) -> Alert:
    """daily_prices has nothing for `session` at `checked_at`, past its `deadline`."""
    key = session.isoformat()
    return Alert(
        subject=f"daily_prices is late for {key}",
        lines=(
            f"daily_prices has no data for the ASX session {key}, due by {deadline:%H:%M} "
            f"Sydney (ASX_FRESHNESS_DEADLINE).",
            f"Checked at {checked_at.astimezone(SYDNEY):%Y-%m-%d %H:%M %Z}.",
            f"Look at the latest {job} runs, or run `asx-pipeline daily --date {key}`.",
        ),
        link=link,
    )
