"""The one place that wires assets, checks, jobs, schedules, sensors and resources.

Resources are configured here from the validated settings; secrets go in as `EnvVar`s so that
Dagster resolves them at run time and the UI shows the variable's name, never its value.
"""

from __future__ import annotations

from dagster import (
    Definitions,
    EnvVar,
    ExecutorDefinition,
    in_process_executor,
    multiprocess_executor,
)
from dotenv import find_dotenv, load_dotenv

from asx_pipeline import celery_workers
from asx_pipeline.assets.breadth import market_breadth
from asx_pipeline.assets.indicators import daily_indicators
from asx_pipeline.assets.intraday import intraday_quotes
from asx_pipeline.assets.prices import market_bars
from asx_pipeline.assets.reports import ReportsResource, daily_report
from asx_pipeline.assets.screeners import screener_results, validated_screeners_resource
from asx_pipeline.assets.symbols import asx_symbols
from asx_pipeline.checks import ALL_CHECKS
from asx_pipeline.jobs import JOBS
from asx_pipeline.logging_config import configure_logging, json_console_logger
from asx_pipeline.notify import AlertsResource
from asx_pipeline.report_mail import ReportMailResource
from asx_pipeline.schedules import SCHEDULES
from asx_pipeline.sensors import SENSORS
from asx_pipeline.settings import Settings, get_settings
from asx_pipeline.sources.resource import MarketDataResource
from asx_pipeline.warehouse.io_manager import warehouse_resources
from asx_pipeline.warehouse.resources import (
    DuckDBWarehouseResource,
    PostgresWarehouseResource,
    SupabaseRestWarehouseResource,
    WarehouseResource,
)

# Dagster's CLI and webserver read .env themselves, but `python -m`, pytest and cron do not. The
# same .env as settings.py's (the working directory's), so EnvVar secrets and settings agree.
load_dotenv(find_dotenv(usecwd=True), override=False)


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


def warehouse_resource(settings: Settings) -> WarehouseResource:
    """The one place the backend is chosen: the resource the settings select (secrets as
    `EnvVar`s, so neither the UI nor a run's config ever holds their values)."""
    backend = settings.warehouse_backend
    if backend == "postgres":
        return PostgresWarehouseResource(url=EnvVar("SUPABASE_DB_URL"))
    if backend == "rest":
        return SupabaseRestWarehouseResource(
            url=EnvVar("SUPABASE_URL"), service_role_key=EnvVar("SUPABASE_SERVICE_ROLE_KEY")
        )
    return DuckDBWarehouseResource(
        path=str(settings.duckdb_path),
        lock_timeout_seconds=settings.asx_duckdb_lock_timeout_seconds,
    )


def executor(settings: Settings) -> ExecutorDefinition:
    """Every job's executor (ASX_EXECUTOR). bench/refresh.py measured the evening refresh of one
    session through `dagster asset materialize` at 41 s with Dagster's default (a freshly spawned
    Python per step, 12 steps), 18 s with a forkserver and the project preloaded, and 8 s in the
    run's own process, for 3.4 s of step compute: on a home-lab box the steps are too small for a
    process each to pay. `celery` sends each step to the workers of ASX_CELERY_BROKER_URL."""
    if settings.asx_executor == "celery":
        return celery_workers.executor_definition()
    if settings.asx_executor == "multiprocess":
        return multiprocess_executor.configured(
            {"start_method": {"forkserver": {"preload_modules": [__name__]}}},
            name="multiprocess_forkserver",
        )
    return in_process_executor


def build_definitions(settings: Settings) -> Definitions:
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
        jobs=JOBS,
        schedules=SCHEDULES,
        sensors=SENSORS,
        loggers=loggers,
        executor=executor(settings),
        resources={
            "market_data": market_data_resource(settings),
            **warehouse_resources(warehouse_resource(settings)),
            # Validated here, so a bad screeners file fails the code location at load time.
            "screeners": validated_screeners_resource(str(settings.asx_screeners_file)),
            "reports": ReportsResource(directory=str(settings.asx_data_dir / "reports")),
            "alerts": AlertsResource(),
            "report_mail": ReportMailResource(),
        },
    )


defs = build_definitions(get_settings())
