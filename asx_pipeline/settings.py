"""Every environment variable the pipeline reads, validated once.

Settings are read from the process environment and from a `.env` file in the working directory.
An invalid value fails at load time with the variable's name and what was expected, so a typo in a
deploy file is found when the code location loads, not halfway through a backfill.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    EmailStr,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The ASX website's "download the list of listed companies" CSV (the current format). The older
# www.asx.com.au/asx/research/ASXListedCompanies.csv format parses too, if given.
DEFAULT_DIRECTORY_URL = "https://asx.api.markitdigital.com/asx-research/1.0/companies/directory/file"
DEFAULT_START_DATE = dt.date(2020, 1, 2)

_UNIVERSE_PATTERN = re.compile(r"^(all|top:[1-9][0-9]*|[A-Z0-9]{3,6}(,[A-Z0-9]{3,6})*)$")

# --- secrets: checked for shape here, because a malformed secret is what ends up quoted ---------
# libpq quotes a connection string it cannot parse in its error, and a password that is not
# percent-encoded makes it either fail (a space, a stray %) or misread the URL (an @ or / moves
# the host), so the password would reach logs and run events before any redaction can find it.
DSN_URL_PREFIXES = ("postgresql://", "postgres://")
DSN_EXPECTED = "expected postgresql://user:password@host:port/dbname"
DSN_ENCODE_HINT = (
    "percent-encode special characters in the password (a space as %20, @ as %40, / as %2F, "
    "% as %25)"
)
KEY_EXPECTED = (
    "expected the project's secret key (sb_secret_...) or its legacy service_role JWT "
    "(three dot-separated parts)"
)
# libpq's key=value form (`host=... dbname=...`): what psycopg's make_conninfo writes.
_KEY_VALUE_START = re.compile(r"^[A-Za-z_]+\s*=")
_PORTS = re.compile(r"[0-9]*(,[0-9]*)*")
_NON_PRINTABLE_ASCII = re.compile(r"[^\x21-\x7e]")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL_ADDRESS = TypeAdapter(EmailStr)
REPORT_EMAIL_EXPECTED = "expected one or more email addresses separated by commas"


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the variable and what was expected."""


class Settings(BaseSettings):
    """The pipeline's configuration, one field per environment variable."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    asx_market_data: Literal["yahoo", "sample"] = Field(
        "yahoo", description="Where prices come from: `yahoo` (real) or `sample` (offline)."
    )
    asx_data_dir: Path = Field(Path("data"), description="Folder for DuckDB, caches and reports.")
    asx_universe: str = Field("top:200", description="`top:N` by market cap, `all`, or codes.")
    asx_start_date: dt.date = Field(DEFAULT_START_DATE, description="First daily partition.")
    asx_history_sessions: int | None = Field(
        None,
        ge=1,
        le=20000,
        description="How many sessions of history a company joining the universe gets; "
        "unset: back to ASX_START_DATE.",
    )
    asx_directory_source: str = Field(
        DEFAULT_DIRECTORY_URL, description="URL or local path of the ASX company directory CSV."
    )
    asx_sample_symbols: int | None = Field(
        None, ge=1, le=20000, description="Widen the sample universe to this many symbols."
    )
    asx_yahoo_batch_size: int = Field(
        100, ge=1, le=1000, description="Tickers per intraday quote request."
    )
    asx_yahoo_requests_per_second: float = Field(
        2.0, gt=0, le=100, description="Most HTTP requests to Yahoo started per second."
    )
    asx_yahoo_max_concurrency: int = Field(
        2, ge=1, le=32, description="Most HTTP requests to Yahoo in flight at once."
    )
    asx_yahoo_max_retries: int = Field(5, ge=0, le=20)
    asx_yahoo_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="How long one Yahoo request may take."
    )
    asx_min_coverage: float = Field(
        0.9,
        ge=0,
        le=1,
        description="Share of the universe's tickers a session needs before breadth, screeners "
        "and the report run on it.",
    )
    asx_data_delay_minutes: int = Field(
        30, ge=0, le=24 * 60, description="How long after the close a session's data is final."
    )
    asx_duckdb_lock_timeout_seconds: float = Field(600.0, gt=0)
    asx_screeners_file: Path = Field(
        Path("config/screeners.yml"),
        description="The screeners YAML file; validated when the definitions load.",
    )

    supabase_db_url: SecretStr | None = None
    supabase_url: AnyHttpUrl | None = None
    supabase_service_role_key: SecretStr | None = None

    asx_smtp_host: str | None = None
    asx_smtp_port: int = Field(587, ge=1, le=65535)
    asx_smtp_user: str | None = None
    asx_smtp_password: SecretStr | None = None
    asx_smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    asx_smtp_from: EmailStr | None = None
    asx_alert_email: EmailStr | None = None
    # NoDecode: the environment holds a comma list (a,b), which pydantic-settings would otherwise
    # try to read as JSON; _report_addresses splits it.
    asx_report_email: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description="Where the daily report is mailed (comma-separated addresses) after the "
        "scheduled or `asx-pipeline daily` run of the latest session; unset: not mailed.",
    )
    # A Slack or Discord webhook URL is a credential (its path is the token): kept out of repr.
    asx_alert_webhook_url: AnyHttpUrl | None = Field(None, repr=False)
    asx_webserver_url: AnyHttpUrl = Field("http://127.0.0.1:3000")  # type: ignore[assignment]

    # Orchestration (configured.py, schedules.py, sensors.py): Australia/Sydney wall-clock, HH:MM.
    asx_daily_refresh_time: dt.time = Field(
        dt.time(18, 0), description="When the daily refresh runs on each ASX session."
    )
    asx_freshness_deadline: dt.time = Field(
        dt.time(19, 30), description="daily_prices for a session must exist by this time."
    )
    asx_step_max_retries: int = Field(
        3, ge=0, le=10, description="Retries of a step that calls Yahoo, after its first try."
    )
    asx_step_retry_delay_seconds: float = Field(
        30.0, ge=0, le=3600, description="First retry delay; it doubles each time, with jitter."
    )
    asx_executor: Literal["in_process", "multiprocess", "celery"] = Field(
        "in_process",
        description="How a run executes its steps: all in the run's own process (the default: "
        "starting a Python per step costs more than a session's compute), one process per "
        "step, forked from a server with the project preloaded, or on Celery workers "
        "(`asx-pipeline worker`, ASX_CELERY_BROKER_URL).",
    )
    # A secret: a broker URL may carry a password (redis://:password@host, amqp://user:pw@host).
    asx_celery_broker_url: SecretStr | None = Field(
        None, description="The Celery broker (and result backend) of ASX_EXECUTOR=celery."
    )
    asx_celery_worker_concurrency: int = Field(
        2, ge=1, le=64, description="Steps one `asx-pipeline worker` runs at once."
    )
    asx_log_format: Literal["text", "json"] = Field(
        "text", description="`json`: one JSON object per log line (journald-friendly)."
    )

    @field_validator("asx_universe")
    @classmethod
    def _universe_shape(cls, value: str) -> str:
        compact = value.strip().replace(" ", "")
        # `ALL` is Aristocrat Leisure's ASX code, so only a lower-case `all` means every company.
        is_keyword = compact == "all" or compact.lower().startswith("top:")
        normalised = compact.lower() if is_keyword else compact.upper()
        if not _UNIVERSE_PATTERN.match(normalised):
            raise ValueError(
                "expected `all`, `top:N` (N a positive whole number) or a comma list of ASX codes "
                "such as `BHP,CBA,CSL`"
            )
        return normalised

    @field_validator("asx_daily_refresh_time", "asx_freshness_deadline", mode="before")
    @classmethod
    def _wall_clock_time(cls, value: object) -> object:
        if isinstance(value, str) and not re.fullmatch(r"([01]?[0-9]|2[0-3]):[0-5][0-9]", value):
            raise ValueError("expected a time of day as HH:MM, such as 18:00")
        return value

    @field_validator("asx_start_date")
    @classmethod
    def _start_not_too_early(cls, value: dt.date) -> dt.date:
        if value < dt.date(2000, 1, 1):
            raise ValueError("expected a date on or after 2000-01-01 (YYYY-MM-DD)")
        return value

    @field_validator("supabase_db_url")
    @classmethod
    def _postgres_connection_string(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            problem = dsn_problem(value.get_secret_value(), require_host_and_dbname=True)
            if problem:
                raise ValueError(dsn_error(problem))
        return value

    @field_validator("supabase_service_role_key")
    @classmethod
    def _service_role_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            problem = service_role_key_problem(value.get_secret_value())
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("asx_smtp_password")
    @classmethod
    def _smtp_password_shape(cls, value: SecretStr | None) -> SecretStr | None:
        # Only control characters are refused: no login form lets you type a line break, so one
        # is a copy-and-paste artefact (`echo` into a secrets file). Spaces are legal password
        # characters (Google shows app passwords in groups of four), so they are kept as given.
        if value is not None and _CONTROL_CHARACTERS.search(value.get_secret_value()):
            raise ValueError(
                "contains a line break, tab or other control character; expected the password "
                "alone on its line (spaces in it are fine)"
            )
        return value

    @field_validator("asx_report_email", mode="before")
    @classmethod
    def _report_addresses(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list | tuple):
            return value  # None, or a wrong type pydantic itself names
        # Blank items are skipped: a trailing comma, or `ASX_REPORT_EMAIL=` meaning unset.
        addresses = [str(item).strip() for item in value if str(item).strip()]
        return [email_address(item) for item in addresses] or None

    @model_validator(mode="after")
    def _supabase_rest_pair(self) -> Settings:
        if (self.supabase_url is None) != (self.supabase_service_role_key is None):
            raise ValueError(
                "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY go together: set both or neither"
            )
        return self

    @field_validator("asx_celery_broker_url")
    @classmethod
    def _broker_url_shape(cls, value: SecretStr | None) -> SecretStr | None:
        from asx_pipeline.celery_workers import BROKER_EXPECTED, broker_url_problem

        if value is not None:
            problem = broker_url_problem(value.get_secret_value())
            if problem:
                raise ValueError(f"not a broker URL: it {problem}; {BROKER_EXPECTED}")
        return value

    @model_validator(mode="after")
    def _celery_has_a_broker_and_a_shared_warehouse(self) -> Settings:
        if self.asx_executor != "celery":
            return self
        from asx_pipeline.celery_workers import broker_is_local

        if self.asx_celery_broker_url is None:
            raise ValueError(
                "ASX_EXECUTOR=celery needs ASX_CELERY_BROKER_URL, the broker its workers listen "
                "on (e.g. redis://127.0.0.1:6379/0)"
            )
        # The embedded DuckDB file lives on this box: a worker elsewhere would write a copy of
        # its own. A broker on a loopback address means every worker with these settings is here.
        if self.warehouse_backend == "duckdb" and not broker_is_local(
            self.asx_celery_broker_url.get_secret_value()
        ):
            raise ValueError(
                "ASX_EXECUTOR=celery with workers on other machines cannot share the embedded "
                "DuckDB warehouse (a file on this box): set SUPABASE_DB_URL to use "
                "Postgres/Supabase, or keep every worker on this box with a broker on "
                "127.0.0.1 in ASX_CELERY_BROKER_URL"
            )
        return self

    @property
    def warehouse_backend(self) -> Literal["postgres", "rest", "duckdb"]:
        """Which warehouse backend the settings select (Postgres wins over REST over DuckDB)."""
        if self.supabase_db_url is not None:
            return "postgres"
        if self.supabase_url is not None:
            return "rest"
        return "duckdb"

    @property
    def duckdb_path(self) -> Path:
        return self.asx_data_dir / "warehouse.duckdb"


def email_address(text: str) -> str:
    """`text` as a validated email address, or a ValueError that quotes it: an address is not a
    secret, and the bad one in a list is what the person has to find."""
    try:
        return _EMAIL_ADDRESS.validate_python(text)
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("value is not a valid email address: ")
        raise ValueError(
            f"{text!r} is not an email address ({reason}); {REPORT_EMAIL_EXPECTED}"
        ) from None


def dsn_error(problem: str) -> str:
    """What SUPABASE_DB_URL's error says after its name: the problem, the shape, the fix."""
    return f"not a valid Postgres connection URL: it {problem}; {DSN_EXPECTED}; {DSN_ENCODE_HINT}"


def dsn_problem(dsn: str, *, require_host_and_dbname: bool = False) -> str | None:
    """Why libpq cannot read `dsn` as the connection the user meant, or None when it can.

    The answer never quotes any part of `dsn`. Without `require_host_and_dbname`, only what
    fails to parse or parses wrongly (what could put part of a password into a host name or an
    error) is reported; the settings also want a host and a database to be named.
    """
    # Imported here: psycopg takes a noticeable while to import, and most settings never need it.
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    if not dsn.strip():
        return "is empty (unset it to use the embedded DuckDB warehouse)"
    if dsn != dsn.strip():
        return "has spaces or a line break at its start or end"
    is_url = dsn.startswith(DSN_URL_PREFIXES)
    if not is_url and not _KEY_VALUE_START.match(dsn):
        if dsn.lower().startswith("postgres"):
            return "starts with neither postgresql:// nor postgres:// (check the `://`)"
        return "is neither a postgresql:// URL nor libpq key=value pairs"
    try:
        params = conninfo_to_dict(dsn)
    except ProgrammingError as error:
        # libpq's message quotes the offending text: only its kind is passed on.
        return _libpq_parse_problem(str(error), is_url)
    return _misread_problem(dsn, params, is_url) or (
        _missing_part(params) if require_host_and_dbname else None
    )


def _libpq_parse_problem(message: str, is_url: bool) -> str:
    if "unexpected spaces" in message:
        return "contains a space"
    if "percent-encoded" in message or "percent-encoding" in message:
        return "contains a % that does not start a percent-encoded character"
    if not is_url:
        return (
            "is libpq key=value pairs that do not parse (put a value with spaces in single "
            "quotes: password='...')"
        )
    return "does not parse as a URL"


def _misread_problem(dsn: str, params: dict[str, object], is_url: bool) -> str | None:
    """A URL that libpq parses, but not as meant: an unencoded @ or / moved its parts around."""
    if not is_url:
        return None
    host = str(params.get("host") or "")
    if "@" in host:
        return "contains an @ that is not percent-encoded (libpq takes the rest for the host)"
    before_query = dsn.split("?", 1)[0]
    if "@" in before_query and "user" not in params:
        # libpq's user:password ends at the first /, so a / in the password hides the @.
        return "contains a / before the @ (libpq reads no user name or password from it)"
    if not _PORTS.fullmatch(str(params.get("port") or "")):
        return "has a port that is not a number"
    return None


def _missing_part(params: dict[str, object]) -> str | None:
    if not (params.get("host") or params.get("hostaddr")):
        return "names no host"
    if not params.get("dbname"):
        return "names no database (Supabase's is /postgres, after host:port)"
    return None


def service_role_key_problem(key: str) -> str | None:
    """What is certainly wrong with a Supabase secret key, never quoting it; None otherwise.

    Supabase issues secret keys as `sb_secret_...` and, before them, the service_role JWT
    (`header.payload.signature`); self-hosted projects sign their own JWTs, so any other shape
    is let through. Refused is only what no usable key can be: the key travels in HTTP headers,
    and an HTTP library's error quotes a header value it refuses (a line break, for one).
    """
    problem = _key_shape_problem(key)
    return f"{problem}; {KEY_EXPECTED}" if problem else None


def _key_shape_problem(key: str) -> str | None:
    if not key:
        return "is empty"
    if _NON_PRINTABLE_ASCII.search(key):
        return (
            "contains a space, line break or non-ASCII character, which no Supabase key has "
            "(paste the key alone on the line)"
        )
    if key.startswith("sb_publishable_"):
        return "is a publishable key, which row-level security keeps read-only"
    if key.startswith("eyJ"):  # base64 of '{"': a JWT's header
        parts = key.split(".")
        if len(parts) != 3 or not all(parts):
            return "looks like a JWT but lacks one of its three parts (copied in part?)"
        if _jwt_role(parts[1]) == "anon":
            return "is the legacy anon key, which row-level security keeps read-only"
    return None


def _jwt_role(payload: str) -> object:
    """The `role` claim of a JWT payload, unverified (only to tell anon from service_role)."""
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    return claims.get("role") if isinstance(claims, dict) else None


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; raise SettingsError naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return load_settings()


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        location = problem.get("loc") or ()
        name = str(location[0]).upper() if location else "settings"
        # Never echo the input back: it may be a password or a key.
        lines.append(f"{name}: {problem['msg']}")
    return "Invalid settings:\n  " + "\n  ".join(lines)
