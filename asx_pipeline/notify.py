"""Alerts by email and webhook: what failed or is late, and a link to the run.

Channels, both optional and both used when configured:
- email over SMTP (`ASX_SMTP_HOST`, `ASX_SMTP_PORT`, `ASX_SMTP_SECURITY` = starttls | ssl | none,
  `ASX_SMTP_USER`/`ASX_SMTP_PASSWORD` when the server wants a login, `ASX_SMTP_FROM`) to
  `ASX_ALERT_EMAIL`;
- a webhook POST to `ASX_ALERT_WEBHOOK_URL` with one JSON body that several services read:
  Slack reads `text`, Discord `content`, ntfy `topic`/`title`/`message`/`click`. ntfy takes JSON
  only at its root URL, so for ntfy write the topic as the URL's fragment:
  `https://ntfy.sh/#asx-alerts` posts to `https://ntfy.sh/` with topic `asx-alerts`.

A notification that cannot be delivered is logged and swallowed: it must never fail the sensor
that sends it, nor hide the failure it reports. Every message is passed through `redact` first, so
a password, key or webhook URL that leaked into an error text is never sent on.
"""

from __future__ import annotations

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

from asx_pipeline.settings import Settings
from asx_pipeline.warehouse.postgres_sql import dsn_passwords

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "[asx-pipeline]"
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
    message["From"] = settings.asx_smtp_from or settings.asx_smtp_user or settings.asx_alert_email
    message["To"] = settings.asx_alert_email
    message.set_content(alert.text() + "\n")
    return message


def send_email(settings: Settings, alert: Alert) -> None:
    host, port = settings.asx_smtp_host or "", settings.asx_smtp_port
    context = ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if settings.asx_smtp_security == "ssl" else smtplib.SMTP
    extra = {"context": context} if settings.asx_smtp_security == "ssl" else {}
    with smtp_class(host, port, timeout=TIMEOUT_SECONDS, **extra) as smtp:
        if settings.asx_smtp_security == "starttls":
            smtp.starttls(context=context)
        if settings.asx_smtp_user and settings.asx_smtp_password is not None:
            smtp.login(settings.asx_smtp_user, settings.asx_smtp_password.get_secret_value())
        smtp.send_message(email_message(settings, alert))


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
