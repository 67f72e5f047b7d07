"""Every environment variable the pipeline reads, validated once.

Settings are read from the process environment and from a `.env` file in the working directory.
An invalid value fails at load time with the variable's name and what was expected, so a typo in a
deploy file is found when the code location loads, not halfway through a backfill.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    AnyHttpUrl,
    EmailStr,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

# The ASX website's "download the list of listed companies" CSV (the current format). The older
# www.asx.com.au/asx/research/ASXListedCompanies.csv format parses too, if given.
DEFAULT_DIRECTORY_URL = "https://asx.api.markitdigital.com/asx-research/1.0/companies/directory/file"
DEFAULT_START_DATE = dt.date(2020, 1, 2)

_UNIVERSE_PATTERN = re.compile(r"^(all|top:[1-9][0-9]*|[A-Z0-9]{3,6}(,[A-Z0-9]{3,6})*)$")


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
    asx_alert_webhook_url: AnyHttpUrl | None = None
    asx_webserver_url: AnyHttpUrl = Field("http://127.0.0.1:3000")  # type: ignore[assignment]

    # Orchestration (automation.py): times are Australia/Sydney wall-clock times, HH:MM.
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

    @model_validator(mode="after")
    def _supabase_rest_pair(self) -> Settings:
        if (self.supabase_url is None) != (self.supabase_service_role_key is None):
            raise ValueError(
                "SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY go together: set both or neither"
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
