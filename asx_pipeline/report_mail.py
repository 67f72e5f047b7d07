"""The daily report by email: that session's report, mailed after the evening refresh built it.

Who asks for it: a run tag, `MAIL_REPORT_TAG`, which only the daily schedule and `asx-pipeline
daily` (for the latest session) put on their runs. Backfills never carry it, and a run over more
than one session never mails (`mail_requested`), so a two-year backfill sends nothing.

Where it goes: every address of ASX_REPORT_EMAIL, through the alerts' SMTP settings and the same
sending code (`notify.send_message`). The message is multipart/alternative: a plain-text part,
then the HTML with its charts as inline PNG parts that the HTML names by `cid:`.

A report that cannot be mailed must never fail the run that built it: `ReportMailResource.send`
returns the reason, scrubbed of every secret, for the caller to log.
"""

import datetime as dt
import email.message
import email.utils
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dagster import ConfigurableResource

from asx_pipeline.notify import redact, secrets_of, send_message, sender
from asx_pipeline.settings import Settings, get_settings

# Run tag: "true" asks the daily_report step to mail its session's report.
MAIL_REPORT_TAG = "asx/mail_report"
# What a Content-ID may hold here: no spaces, angle brackets or line breaks (it goes in a header).
_CONTENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")


@dataclass(frozen=True)
class MailedReport:
    """One session's report as it is mailed."""

    trade_date: dt.date
    subject: str
    html: str  # HTML body; inline images referenced as <img src="cid:NAME">
    text: str  # the plain-text part
    images: dict[str, bytes] = field(default_factory=dict)  # NAME -> PNG bytes, attached inline


def mail_requested(tags: Mapping[str, str], sessions: Sequence[dt.date]) -> bool:
    """True only when the run carries MAIL_REPORT_TAG == "true" and covers exactly one session."""
    return tags.get(MAIL_REPORT_TAG) == "true" and len(sessions) == 1


def recipients_of(settings: Settings) -> list[str]:
    """Where the report goes: ASX_REPORT_EMAIL, or nobody without an SMTP server to send by."""
    if not settings.asx_smtp_host:
        return []
    return list(settings.asx_report_email or [])


def report_message(settings: Settings, report: MailedReport) -> email.message.EmailMessage:
    """multipart/alternative: text/plain first, then multipart/related(text/html + the PNGs as
    inline parts with Content-ID). From as the alert mail; To: every ASX_REPORT_EMAIL address."""
    to = list(settings.asx_report_email or [])
    if not to:
        raise ValueError("ASX_REPORT_EMAIL is not set: nobody to mail the report to")
    message = email.message.EmailMessage()
    message["Subject"] = report.subject
    message["From"] = sender(settings, to[0])
    message["To"] = ", ".join(to)
    message["Date"] = email.utils.formatdate(localtime=True)
    # Mail readers show the last alternative they can: the HTML, and the text where HTML is off.
    message.set_content(report.text)
    message.add_alternative(report.html, subtype="html")
    html_part = message.get_payload()[-1]
    for name, png in report.images.items():
        if not _CONTENT_ID.fullmatch(name):
            raise ValueError(f"image name {name!r} cannot be a Content-ID (letters, digits, ._@-)")
        # add_related turns the HTML part into multipart/related, the HTML first.
        html_part.add_related(
            png, maintype="image", subtype="png", cid=f"<{name}>", disposition="inline",
            filename=f"{name}.png",
        )  # fmt: skip
    return message


def send_report(settings: Settings, report: MailedReport) -> None:
    """Mail `report` to ASX_REPORT_EMAIL through the SMTP settings; raises on failure."""
    send_message(settings, report_message(settings, report))


class ReportMailResource(ConfigurableResource):
    """Like notify.AlertsResource: no config fields; reads the validated settings when it sends,
    so no address or password is part of the config the UI shows. Tests subclass `settings`."""

    def settings(self) -> Settings:
        return get_settings()

    def recipients(self) -> list[str]:
        """[] when ASX_REPORT_EMAIL or ASX_SMTP_HOST is unset: then nothing is mailed."""
        return recipients_of(self.settings())

    def send(self, report: MailedReport) -> str | None:
        """Send; return None on success, or a one-line reason on failure, redacted of every
        secret. Never raises: a report that cannot be mailed must not fail the run."""
        try:
            settings = self.settings()
        except Exception as error:  # SettingsError names the variable, never its value
            return _one_line(f"{type(error).__name__}: {error}")
        if not recipients_of(settings):
            return "not mailed: ASX_REPORT_EMAIL or ASX_SMTP_HOST is not set"
        try:
            send_report(settings, report)
        except Exception as error:
            return _one_line(redact(f"{type(error).__name__}: {error}", secrets_of(settings)))
        return None


def _one_line(text: str) -> str:
    # An SMTP server's reply can run over several lines; a log line for a person should not.
    return " ".join(text.split())
