"""The one place that wires assets, checks, jobs, schedules, sensors and resources.

Resources are configured here from the validated settings; secrets go in as `EnvVar`s so that
Dagster resolves them at run time and the UI shows the variable's name, never its value.
"""

from __future__ import annotations

from dagster import Definitions, EnvVar
from dotenv import load_dotenv

from asx_pipeline.assets.breadth import market_breadth
from asx_pipeline.assets.indicators import daily_indicators
from asx_pipeline.assets.intraday import intraday_quotes
from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.reports import ReportsResource, daily_report
from asx_pipeline.assets.screeners import screener_results, validated_screeners_resource
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.automation import build_automation
from asx_pipeline.checks import ALL_CHECKS
from asx_pipeline.logging_config import configure_logging, json_console_logger
from asx_pipeline.settings import Settings, get_settings
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.backend import WarehouseBackend
from asx_pipeline.warehouse.io_manager import WarehouseIOManager

# Dagster's CLI and webserver read .env themselves, but `python -m`, pytest and cron do not.
load_dotenv(override=False)

def market_data_resource(settings: Settings) -> MarketDataResource:
    return MarketDataResource(
        source=settings.asx_market_data,
        universe=settings.asx_universe,
        data_dir=str(settings.asx_data_dir),
        directory_source=settings.asx_directory_source,
        sample_symbols=settings.asx_sample_symbols,
        yahoo_batch_size=settings.asx_yahoo_batch_size,
        yahoo_requests_per_second=settings.asx_yahoo_requests_per_second,
        yahoo_max_concurrency=settings.asx_yahoo_max_concurrency,
        yahoo_max_retries=settings.asx_yahoo_max_retries,
        yahoo_timeout_seconds=settings.asx_yahoo_timeout_seconds,
        min_coverage=settings.asx_min_coverage,
        start_date=settings.asx_start_date.isoformat(),
        history_sessions=settings.asx_history_sessions,
        data_delay_minutes=settings.asx_data_delay_minutes,
    )


def warehouse_io_manager(settings: Settings, resolve_secrets: bool = False) -> WarehouseIOManager:
    """The IO manager the settings select.

    Inside Dagster secrets stay `EnvVar`s, resolved at run time; the CLI, which reads the
    warehouse outside a run, asks for them resolved.
    """
    backend = settings.warehouse_backend

    def secret(name: str, value: object) -> str | EnvVar:
        if not resolve_secrets:
            return EnvVar(name)
        return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)

    return WarehouseIOManager(
        backend=backend,
        duckdb_path=str(settings.duckdb_path),
        duckdb_lock_timeout_seconds=settings.asx_duckdb_lock_timeout_seconds,
        postgres_url=(
            secret("SUPABASE_DB_URL", settings.supabase_db_url) if backend == "postgres" else None
        ),
        supabase_url=secret("SUPABASE_URL", settings.supabase_url) if backend == "rest" else None,
        supabase_service_role_key=(
            secret("SUPABASE_SERVICE_ROLE_KEY", settings.supabase_service_role_key)
            if backend == "rest"
            else None
        ),
    )


def open_warehouse() -> WarehouseBackend:
    """The warehouse of this process's settings, for reading outside a Dagster run."""
    return warehouse_io_manager(get_settings(), resolve_secrets=True).warehouse()


def build_definitions(settings: Settings) -> Definitions:
    jobs, schedules, sensors = build_automation(settings)
    configure_logging(settings.asx_log_format)
    # ASX_LOG_FORMAT=json swaps every job's console logger for one that writes JSON lines.
    loggers = {"console": json_console_logger} if settings.asx_log_format == "json" else {}
    return Definitions(
        assets=[
            asx_symbols,
            market_bars,
            intraday_quotes,
            daily_indicators,
            market_breadth,
            screener_results,
            daily_report,
        ],
        asset_checks=ALL_CHECKS,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        loggers=loggers,
        resources={
            "market_data": market_data_resource(settings),
            "warehouse_io_manager": warehouse_io_manager(settings),
            # Validated here, so a bad screeners file fails the code location at load time.
            "screeners": validated_screeners_resource(str(settings.asx_screeners_file)),
            "reports": ReportsResource(directory=str(settings.asx_data_dir / "reports")),
        },
    )


defs = build_definitions(get_settings())
