"""`asx-pipeline …`: conveniences over the same definitions the UI and the daemon use.

Every command runs through Dagster against the instance in DAGSTER_HOME, so what it does shows up
in the UI's run history like any other run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"
DEMO_SESSIONS = 60


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    try:
        return int(args.command(args))
    except KeyboardInterrupt:
        return 130


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
    return parser


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to ./.dagster_home with the repo's dagster.yaml in it."""
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and REPO_DAGSTER_YAML.exists():
        shutil.copyfile(REPO_DAGSTER_YAML, config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _demo(args: argparse.Namespace) -> int:
    from asx_pipeline.runs import run_core_range, summarise_core_tables
    from asx_pipeline.settings import get_settings

    settings = get_settings()
    ensure_dagster_home()
    first, last = _latest_sessions(args.sessions, settings.asx_data_delay_minutes)
    print(
        f"asx-pipeline demo: {args.sessions} ASX sessions {first} .. {last}, "
        f"market data: {settings.asx_market_data}, warehouse: {settings.warehouse_backend}",
        flush=True,
    )
    result = run_core_range(first, last)
    if not result.success:
        print(f"\nThe run failed (run id {result.run_id}); see the log above.", file=sys.stderr)
        return 1
    print()
    print(summarise_core_tables(first, last))
    print(f"Run id: {result.run_id}")
    print("Open the UI with `make ui` and browse to http://127.0.0.1:3000")
    return 0


def _latest_sessions(count: int, delay_minutes: int) -> tuple[dt.date, dt.date]:
    from asx_pipeline.calendar import latest_final_session, sessions_between

    last = latest_final_session(dt.datetime.now(dt.UTC), delay_minutes)
    sessions = sessions_between(last - dt.timedelta(days=count * 2 + 30), last)
    return sessions[-count], last


def _db_migrate(args: argparse.Namespace) -> int:
    from asx_pipeline.settings import get_settings
    from asx_pipeline.warehouse.migrations import apply_migrations

    settings = get_settings()
    if settings.supabase_db_url is None:
        print(
            "SUPABASE_DB_URL is not set: migrations need a direct or session-pooler Postgres "
            "connection to Supabase.",
            file=sys.stderr,
        )
        return 2
    applied = apply_migrations(settings.supabase_db_url.get_secret_value())
    print("Applied: " + (", ".join(applied) if applied else "nothing, already up to date"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
