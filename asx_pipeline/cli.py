"""`asx-pipeline …`: conveniences over the same definitions the UI and the daemon use.

Every command runs through Dagster against the instance in DAGSTER_HOME, so what it does shows up
in the UI's run history like any other run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from dagster import AssetKey

    from asx_pipeline.settings import Settings
    from asx_pipeline.sources.directory_archive import ImportResult

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"
DEMO_SESSIONS = 60


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging()
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    from asx_pipeline.settings import SettingsError

    try:
        return int(args.command(args))
    except SettingsError as error:
        # Names each bad variable and what was expected, never its value (settings.py).
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _configure_logging() -> None:
    """JSON lines from the first line on (ASX_LOG_FORMAT=json), before the definitions load."""
    from asx_pipeline.logging_config import configure_logging
    from asx_pipeline.settings import SettingsError

    # The command that needs the settings reports an invalid one itself.
    with contextlib.suppress(SettingsError):
        configure_logging(settings().asx_log_format)


def settings() -> Settings:
    """The settings of this process, validated once (settings.get_settings): every command
    reads them here, and main() reports an invalid one."""
    from asx_pipeline.settings import get_settings

    return get_settings()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asx-pipeline", description=__doc__)
    commands = parser.add_subparsers(title="commands")

    demo = commands.add_parser(
        "demo", help="Backfill the latest sessions of the core assets in one run, then summarise."
    )
    demo.add_argument("--sessions", type=int, default=DEMO_SESSIONS)
    demo.set_defaults(command=_demo)

    db = commands.add_parser("db", help="Warehouse database commands.")
    db_commands = db.add_subparsers(title="db commands")
    migrate = db_commands.add_parser("migrate", help="Apply pending SQL migrations to Supabase.")
    migrate.set_defaults(command=_db_migrate)
    db_status = db_commands.add_parser(
        "status", help="List applied and pending SQL migrations. Exit 1 when any is pending."
    )
    db_status.set_defaults(command=_db_status)

    daily = commands.add_parser(
        "daily", help="Refresh every daily asset for one session (default: today in Sydney)."
    )
    daily.add_argument("--date", type=_date, help="The session, YYYY-MM-DD.")
    daily.set_defaults(command=_daily)

    backfill = commands.add_parser(
        "backfill", help="Refresh every daily asset for a range of sessions, in one run."
    )
    backfill.add_argument("--start", type=_date, required=True, help="First day, YYYY-MM-DD.")
    backfill.add_argument("--end", type=_date, required=True, help="Last day, YYYY-MM-DD.")
    backfill.set_defaults(command=_backfill)

    symbols = commands.add_parser(
        "symbols", help="Refresh asx_symbols for a session and list the tracked universe."
    )
    symbols.add_argument("--date", type=_date, help="The session (default: the latest final).")
    symbols.set_defaults(command=_symbols)

    directory = commands.add_parser("directory", help="ASX company directory snapshots.")
    directory_commands = directory.add_subparsers(title="directory commands")
    directory_import = directory_commands.add_parser(
        "import",
        help="Store dated ASX directory CSV files as snapshots (idempotent); the capture date "
        "is the YYYY-MM-DD in each file name.",
    )
    directory_import.add_argument("files", nargs="+", type=Path, metavar="FILE")
    directory_import.add_argument(
        "--as-of", type=_date, help="The capture date of a single file whose name has none."
    )
    directory_import.add_argument(
        "--code-changes", action="store_true", help="List every code change the files show."
    )
    directory_import.set_defaults(command=_directory_import)

    status = commands.add_parser(
        "status",
        help="Per asset: latest session, last run, failing checks. Exit 1 when stale or failed.",
    )
    status.set_defaults(command=_status)

    worker = commands.add_parser(
        "worker",
        help="Run a Celery worker for the steps of ASX_EXECUTOR=celery runs (until SIGTERM).",
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="Steps at once (default: ASX_CELERY_WORKER_CONCURRENCY, 2).",
    )
    worker.add_argument(
        "--name",
        default=None,
        help="The worker's node name (default asx@<host name>; give each worker on one box its "
        "own).",
    )
    worker.set_defaults(command=_worker)

    init = commands.add_parser(
        "init",
        help="Prepare DAGSTER_HOME (dagster.yaml, the 'yahoo' pool's limit) for the daemon/UI.",
    )
    init.set_defaults(command=_init)
    return parser


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to ./.dagster_home with the repo's dagster.yaml in it."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and REPO_DAGSTER_YAML.exists():
        # Copied aside and renamed: a command killed mid-copy (or two copying at once) must never
        # leave a truncated dagster.yaml that every later command would then trust.
        partial = home / f".dagster.yaml.{os.getpid()}"
        shutil.copyfile(REPO_DAGSTER_YAML, partial)
        os.replace(partial, config)
    os.environ["DAGSTER_HOME"] = str(home)
    from asx_pipeline.instance import prepare_instance

    for message in prepare_instance(home):
        print(message, file=sys.stderr)
    return home


def _init(args: argparse.Namespace) -> int:
    """Prepare DAGSTER_HOME for the daemon and the UI (the systemd unit runs this first)."""
    home = ensure_dagster_home()
    print(f"Dagster instance at {home} is ready (storage created, pool 'yahoo' limited)")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from asx_pipeline.celery_workers import DEFAULT_WORKER_NAME, run_worker

    config = settings()
    if config.asx_executor != "celery" or config.asx_celery_broker_url is None:
        print(
            "asx-pipeline worker needs ASX_EXECUTOR=celery and ASX_CELERY_BROKER_URL, the same "
            "settings as the dagster-daemon's and the webserver's",
            file=sys.stderr,
        )
        return EXIT_USAGE
    run_worker(
        config.asx_celery_broker_url.get_secret_value(),
        concurrency=args.concurrency or config.asx_celery_worker_concurrency,
        name=args.name or DEFAULT_WORKER_NAME,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from asx_pipeline.analytics.indicators import LOOKBACK_SESSIONS
    from asx_pipeline.calendar import latest_final_session, session_before
    from asx_pipeline.jobs import DAILY_JOB
    from asx_pipeline.runs import run_job_range, summarise_tables

    config = settings()
    if refusal := _sample_into_a_shared_warehouse(config):
        print(refusal, file=sys.stderr)
        return EXIT_USAGE
    ensure_dagster_home()
    last = latest_final_session(dt.datetime.now(dt.UTC), config.asx_data_delay_minutes)
    first = session_before(last, args.sessions - 1) or last
    print(
        f"asx-pipeline demo: {args.sessions} ASX sessions {first} .. {last}, "
        f"market data: {config.asx_market_data}, warehouse: {config.warehouse_backend}",
        flush=True,
    )
    # The indicators look back LOOKBACK_SESSIONS sessions (sma_200, 52-week high), so the core
    # tables are first filled for the sessions before the demo window, in one run of their own.
    # LOOKBACK_SESSIONS - 1 sessions before the window: what its first day's indicators need.
    history_first = session_before(first, LOOKBACK_SESSIONS - 1)
    history_last = session_before(first)
    print(f"Loading price history {history_first} .. {history_last} for the indicators", flush=True)
    history = run_job_range("asx_core", history_first, history_last)
    if not history.success:
        print(f"\nThe run failed (run id {history.run_id}); see the log above.", file=sys.stderr)
        return 1
    result = run_job_range(DAILY_JOB, first, last)
    if not result.success:
        print(f"\nThe run failed (run id {result.run_id}); see the log above.", file=sys.stderr)
        return 1
    print()
    print(summarise_tables(first, last, ["asx_symbols", "daily_prices", "corporate_actions"]))
    print(_analytics_highlights(first, last))
    print(f"Run ids: {history.run_id} (history), {result.run_id}")
    print("Open the UI with `make ui` and browse to http://127.0.0.1:3000")
    return 0


def _sample_into_a_shared_warehouse(config: Settings) -> str | None:
    """Why the demo must not run, if its synthetic prices would land in Supabase/Postgres.

    `make demo` forces the sample source, but the warehouse follows SUPABASE_DB_URL/SUPABASE_URL
    (the environment or a .env file): there, the sample's made-up bars for BHP, CBA and the rest
    would replace the real ones of the same sessions. The demo is for the embedded DuckDB file.
    """
    if config.asx_market_data != "sample" or config.warehouse_backend == "duckdb":
        return None
    variable = "SUPABASE_DB_URL" if config.warehouse_backend == "postgres" else "SUPABASE_URL"
    return (
        f"asx-pipeline demo: refused: {variable} is set, so the demo's sample prices, which are "
        "synthetic, would replace real rows in that warehouse (the sample uses real ASX codes "
        "such as BHP and CBA). The demo writes into the embedded DuckDB file: run it where "
        "neither SUPABASE_DB_URL nor SUPABASE_URL is set, in the environment or a .env file, or "
        "set ASX_MARKET_DATA=yahoo for a demo on real prices. Nothing was written."
    )


ANALYTICS_TABLES = ("daily_indicators", "market_breadth", "screener_results", "daily_report")
DEMO_TOP_HITS = 3


def _analytics_highlights(first: dt.date, day: dt.date) -> str:
    """Rows of the analytics tables, then the top screener hits and the report's path of the
    session `day`, as lines for a person."""
    from asx_pipeline.runs import definitions_warehouse
    from asx_pipeline.warehouse.frames import Window
    from asx_pipeline.warehouse.tables import DAILY_REPORT, SCREENER_RESULTS, TABLES

    with definitions_warehouse() as warehouse:
        window = Window(first, day + dt.timedelta(days=1))
        lines = [
            f"  {name:<18} {len(warehouse.read_window(TABLES[name], window)):>8} rows"
            for name in ANALYTICS_TABLES
        ]
        hits = warehouse.read_window(SCREENER_RESULTS, Window.single(day))
        report = warehouse.read_window(DAILY_REPORT, Window.single(day))
        lines.append(f"Top screener hits on {day}:")
        for screener, group in hits.groupby("screener", sort=True):
            top = group.sort_values("rank").head(DEMO_TOP_HITS)
            pairs = zip(top["symbol"], top["score"], strict=True)
            shown = ", ".join(f"{symbol} ({score:.4g})" for symbol, score in pairs)
            lines.append(f"  {screener:<20} {shown}")
        if hits.empty:
            lines.append("  none")
        if not report.empty:
            lines.append(f"Daily report: {report['html_path'].iloc[0]}")
        return "\n".join(lines)


def _db_migrate(args: argparse.Namespace) -> int:
    from asx_pipeline.warehouse.migrations import apply_migrations

    db_url = settings().supabase_db_url
    if db_url is None:
        print(
            "SUPABASE_DB_URL is not set: migrations need a direct or session-pooler Postgres "
            "connection to Supabase.",
            file=sys.stderr,
        )
        return 2
    applied = apply_migrations(db_url.get_secret_value())
    print("Applied: " + (", ".join(applied) if applied else "nothing, already up to date"))
    return 0


def _db_status(args: argparse.Namespace) -> int:
    from asx_pipeline.warehouse.migrations import MigrationError, migration_status
    from asx_pipeline.warehouse.postgres_sql import scrub_dsn

    db_url = settings().supabase_db_url
    if db_url is None:
        print("SUPABASE_DB_URL is not set: no Postgres warehouse to check.", file=sys.stderr)
        return EXIT_USAGE
    dsn = db_url.get_secret_value()
    try:
        states = migration_status(dsn)
    except MigrationError as error:
        print(f"Cannot tell: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Migrations of {scrub_dsn(dsn)}:")
    for state in states:
        when = f"applied {state.applied_at:%Y-%m-%d %H:%M %Z}" if state.applied_at else "PENDING"
        print(f"  {state.filename:<40} {when}")
    pending = [state.filename for state in states if state.pending]
    if pending:
        print(f"{len(pending)} pending: run `asx-pipeline db migrate`.")
        return EXIT_FAILED
    print("Up to date.")
    return 0


# --- daily, backfill, symbols, status: for cron, systemd timers and people ----------------------
# Exit codes: 0 done, 1 a run failed or data is stale, 2 bad arguments, 75 (EX_TEMPFAIL) another
# run is writing the same sessions, try later.
EXIT_FAILED, EXIT_USAGE, EXIT_BUSY = 1, 2, 75


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _daily(args: argparse.Namespace) -> int:
    from asx_pipeline.calendar import non_session_reason, sydney_today

    day = args.date or sydney_today()
    reason = non_session_reason(day)
    if reason:
        print(reason)
        # A cron line that runs every day must not fail on holidays; an explicit date should.
        return EXIT_USAGE if args.date else 0
    return _run_daily_job(
        day, day, f"asx-pipeline daily: session {day}", extra_tags=daily_tags(args.date)
    )


def daily_tags(asked: dt.date | None, now: dt.datetime | None = None) -> dict[str, str]:
    """The tags of an `asx-pipeline daily` run: the report mail (MAIL_REPORT_TAG) is asked for
    when the run is of the latest session, i.e. no --date, or a date no older than the latest
    session whose data is final at `now`. Redoing an older session mails nothing: its report
    is not news."""
    from asx_pipeline.calendar import latest_final_session
    from asx_pipeline.report_mail import MAIL_REPORT_TAG

    if asked is not None:
        latest = latest_final_session(
            now or dt.datetime.now(dt.UTC), settings().asx_data_delay_minutes
        )
        if asked < latest:
            return {}
    return {MAIL_REPORT_TAG: "true"}


def _backfill(args: argparse.Namespace) -> int:
    from asx_pipeline.calendar import sessions_between

    sessions = sessions_between(args.start, args.end)
    if not sessions:
        print(f"No ASX sessions between {args.start} and {args.end}.", file=sys.stderr)
        return EXIT_USAGE
    first, last = sessions[0], sessions[-1]
    title = f"asx-pipeline backfill: {len(sessions)} sessions {first} .. {last} in one run"
    return _run_daily_job(first, last, title)


def _run_daily_job(
    first: dt.date, last: dt.date, title: str, extra_tags: Mapping[str, str] | None = None
) -> int:
    from asx_pipeline.runs import summarise_tables

    return _run_and_report(title, first, last, summarise_tables, extra_tags=extra_tags)


def _run_and_report(
    title: str,
    first: dt.date,
    last: dt.date,
    summarise: Callable[[dt.date, dt.date], str],
    asset_selection: Sequence[AssetKey] | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> int:
    """Run, then print a summary a person (or cron's mail) can read; the exit code says it all.
    `extra_tags` go on the run besides its own (`daily` asks for the report mail with one).

    With a dagster-daemon running for this instance the run goes through its queue (the run
    queue's limits, pools and run retries apply, and a run of the same sessions already in
    progress is waited for); without one it runs in this process, refused (exit 75) while an
    in-progress run covers the same sessions.
    """
    from dagster import DagsterInstance

    from asx_pipeline.celery_workers import NoWorkerError
    from asx_pipeline.jobs import DAILY_JOB
    from asx_pipeline.notify import failure_reason
    from asx_pipeline.runs import (
        DaemonGoneError,
        PartitionBusyError,
        daemon_is_running,
        failed_symbols_of_run,
        follow_run,
        outcome_of,
        refuse_when_busy,
        run_failure_message,
        run_job_range,
        submit_job_range,
    )
    config = settings()
    ensure_dagster_home()
    instance = DagsterInstance.get()
    queued = asset_selection is None and daemon_is_running(instance)
    where = "the dagster-daemon's run queue" if queued else "this process"
    if config.asx_executor == "celery":
        where += ", steps on Celery workers"
    print(f"{title} (market data: {config.asx_market_data}, "
          f"warehouse: {config.warehouse_backend}, runs in {where})", flush=True)
    missing = [day for day in (first, last) if not _is_partition(day)]
    if missing:
        print(
            f"Not started: {missing[0]} is not a partition yet (sessions appear as partitions "
            "from ASX_START_DATE up to the next session).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        _require_celery_workers(config)
    except NoWorkerError as error:
        # Dagster's Celery executor would wait for ever for a worker to take the first step.
        print(f"Not started: {error}", file=sys.stderr)
        return EXIT_FAILED
    if queued:
        try:
            run_id = submit_job_range(DAILY_JOB, first, last, extra_tags)
        except RuntimeError as error:
            print(f"Not started: {error}", file=sys.stderr)
            return EXIT_FAILED
        print(f"Submitted run {run_id}", flush=True)
        try:
            outcome = follow_run(instance, run_id, lambda line: print(line, flush=True))
        except DaemonGoneError as error:
            print(f"Not finished: {error}", file=sys.stderr)
            return EXIT_BUSY
    else:
        try:
            refuse_when_busy(instance, first, last)
        except PartitionBusyError as error:
            print(f"Not started: {error}", file=sys.stderr)
            return EXIT_BUSY
        result = run_job_range(
            DAILY_JOB, first, last, instance, asset_selection=asset_selection, extra_tags=extra_tags
        )
        outcome = outcome_of(result)
    print()
    failed_symbols = failed_symbols_of_run(instance, outcome.run_id)
    if not outcome.success:
        print(f"FAILED: run {outcome.run_id}", file=sys.stderr)
        for step_key, error in outcome.step_failures:
            # The step's own error, not Dagster's "Exceeded max_retries" when retries ran out.
            print(f"  step {step_key}: {failure_reason(error)}", file=sys.stderr)
        if not outcome.step_failures:
            # No step failed: the run itself did (could not launch, its process died, ...).
            reason = run_failure_message(instance, outcome.run_id) or "no reason recorded"
            print(f"  run: {reason}", file=sys.stderr)
        _print_failed_symbols(failed_symbols, sys.stderr)
        return EXIT_FAILED
    print(summarise(first, last))
    _print_failed_symbols(failed_symbols, sys.stdout)
    print(f"OK: run {outcome.run_id}")
    return 0


def _require_celery_workers(config: Settings) -> None:
    """With ASX_EXECUTOR=celery, raise NoWorkerError unless a worker answers on the broker."""
    from asx_pipeline.celery_workers import answering_workers

    if config.asx_executor == "celery" and config.asx_celery_broker_url is not None:
        answering_workers(config.asx_celery_broker_url.get_secret_value())


def _print_failed_symbols(failed_symbols: str, stream: TextIO) -> None:
    if failed_symbols:
        print("Tickers not fetched (their stored rows are kept):", file=stream)
        for line in failed_symbols.splitlines():
            print(f"  {line.removeprefix('- ')}", file=stream)


def _is_partition(day: dt.date) -> bool:
    from asx_pipeline.calendar import partition_key
    from asx_pipeline.configured import DAILY_PARTITIONS

    return DAILY_PARTITIONS.has_partition_key(partition_key(day))


def _symbols(args: argparse.Namespace) -> int:
    from dagster import AssetKey

    from asx_pipeline.calendar import is_session, latest_final_session
    day = args.date or latest_final_session(
        dt.datetime.now(dt.UTC), settings().asx_data_delay_minutes
    )
    if not is_session(day):
        print(f"{day} is not an ASX session.", file=sys.stderr)
        return EXIT_USAGE
    return _run_and_report(
        f"asx-pipeline symbols: session {day}",
        day,
        day,
        _universe_listing,
        asset_selection=[AssetKey("asx_symbols")],
    )


def _universe_listing(first: dt.date, last: dt.date) -> str:
    from asx_pipeline.runs import definitions_warehouse
    from asx_pipeline.warehouse.frames import Window
    from asx_pipeline.warehouse.tables import ASX_SYMBOLS

    with definitions_warehouse() as warehouse:
        frame = warehouse.read_window(ASX_SYMBOLS, Window(first, last + dt.timedelta(days=1)))
        lines = [f"{len(frame)} symbols tracked on {last}:"]
        for row in frame.itertuples(index=False):
            lines.append(
                f"  {row.symbol:<6} {row.status:<9} {row.gics_industry_group or '':<40.40} "
                f"{row.company_name}"
            )
        return "\n".join(lines)


_CODE_CHANGES_SHOWN = 10


def _directory_import(args: argparse.Namespace) -> int:
    from asx_pipeline.runs import definitions_warehouse
    from asx_pipeline.sources.asx_directory import DirectoryError
    from asx_pipeline.sources.directory_archive import ArchiveError, import_archive

    with definitions_warehouse() as warehouse:
        try:
            result = import_archive(warehouse, args.files, args.as_of)
        except (ArchiveError, DirectoryError) as error:
            print(f"Nothing was imported: {error}", file=sys.stderr)
            return EXIT_USAGE
        where = warehouse.describe()
    _print_import(result, args.code_changes)
    print(f"Warehouse: {where}")
    return 0


def _print_import(result: ImportResult, every_change: bool) -> None:
    added = sorted(result.added)
    if added:
        print(
            f"Added {len(added)} snapshot(s) ({added[0]} .. {added[-1]}): "
            f"{sum(result.added.values())} company rows, {result.companies} distinct companies."
        )
    else:
        print("Added no snapshot.")
    if result.already_stored:
        print(f"Already stored, left as they were: {len(result.already_stored)} snapshot(s).")
    changes = result.code_changes
    shown = changes if every_change else changes[:_CODE_CHANGES_SHOWN]
    if changes:
        print(f"Code changes between the files: {len(changes)}")
    for day, change in shown:
        print(f"  by {day}: {change}")
    if len(shown) < len(changes):
        print(f"  and {len(changes) - len(shown)} more (all of them: --code-changes)")


def _status(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from asx_pipeline.calendar import latest_session_due
    from asx_pipeline.runs import asset_statuses

    ensure_dagster_home()
    expected = latest_session_due(dt.datetime.now(dt.UTC), settings().asx_freshness_deadline)
    statuses = asset_statuses(DagsterInstance.get(), expected, skip_staleness=("intraday_quotes",))
    print(f"Expected latest session: {expected} (its data is due by ASX_FRESHNESS_DEADLINE)")
    print(f"{'asset':<20} {'latest':<11} {'last run':<10} {'run id':<37} failing checks")
    for status in statuses:
        mark = "STALE" if status.stale else ""
        print(
            f"{status.asset:<20} {status.latest_session or 'never':<11} "
            f"{status.last_run_status or '-':<10} {status.last_run_id or '-':<37} "
            f"{', '.join(status.failing_checks) or '-'} {mark}".rstrip()
        )
    unhealthy = [status.asset for status in statuses if not status.healthy]
    if unhealthy:
        print(f"NOT OK: {', '.join(unhealthy)}")
        return EXIT_FAILED
    print("OK: every asset is up to date and its last run succeeded.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
