"""A real Postgres for the warehouse tests, and a fresh database for every test.

Where the server comes from, in order: `ASX_TEST_DATABASE_URL`; else the local server on
127.0.0.1:5432 (user postgres, database `test`) when it answers; else a throwaway cluster that
pytest-postgresql's executor starts from the local PostgreSQL binaries. With none of these the
tests skip, unless `ASX_REQUIRE_POSTGRES=1` (CI), where they fail instead.
`ASX_TEST_POSTGRES=cluster` skips the first two, to exercise the throwaway cluster on a machine
that has a server running.

The throwaway cluster lives in a fresh temporary directory, listens on a free port of 127.0.0.1
and keeps its socket in that directory, so it never meets the machine's own server. `initdb`
refuses to run as root (CI containers are root), so as root every pg_ctl call goes through a
wrapper that runs it as the `postgres` system user, which owns the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import stat
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pytest_postgresql.executors import PostgreSQLExecutor

from asx_pipeline.warehouse.migrations import apply_migrations
from asx_pipeline.warehouse.postgres_sql import scrub_dsn

LOCAL_SERVER_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def find_pg_ctl() -> str | None:
    """The newest pg_ctl of the distribution's PostgreSQL packages, else one on PATH."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")

    def major(path: str) -> float:
        version = path.split("/")[-3]
        return float(version) if version.replace(".", "", 1).isdigit() else 0.0

    if candidates:
        return max(candidates, key=major)
    return shutil.which("pg_ctl")


CLUSTER_SYSTEM_USER = "postgres"
# A throwaway cluster holds nothing worth a disk flush; skipping them makes it start and run fast.
CLUSTER_SERVER_OPTIONS = "-c fsync=off -c full_page_writes=off -c listen_addresses=127.0.0.1"
CLUSTER_START_TIMEOUT_S = 60


class ClusterUnavailable(Exception):
    """Why no throwaway cluster can be started here."""


def _pg_ctl_as_system_user(pg_ctl: str, workdir: Path) -> str:
    """A pg_ctl wrapper that runs the real one as CLUSTER_SYSTEM_USER (for when we are root)."""
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    if not os.path.exists(runuser):
        raise ClusterUnavailable("running as root and no `runuser` to drop to the postgres user")
    wrapper = workdir / "pg_ctl"
    # `cd /`: the caller's working directory may be one the postgres user cannot enter.
    wrapper.write_text(
        f'#!/bin/sh\ncd / && exec "{runuser}" -u {CLUSTER_SYSTEM_USER} -- "{pg_ctl}" "$@"\n'
    )
    wrapper.chmod(stat.S_IRWXU)
    return str(wrapper)


@pytest.fixture(scope="session")
def throwaway_cluster() -> Iterator[PostgreSQLExecutor]:
    """A PostgreSQL cluster of our own, from the local binaries; removed at the end."""
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        raise ClusterUnavailable("no pg_ctl under /usr/lib/postgresql/*/bin or on PATH")
    workdir = Path(tempfile.mkdtemp(prefix="asx-pg-"))
    # The server's own files (data, socket, log); as root, owned by the postgres user, while the
    # wrapper that root runs stays outside it, where that user cannot change it.
    cluster_dir = workdir / "cluster"
    cluster_dir.mkdir(mode=0o700)
    executable = pg_ctl
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(CLUSTER_SYSTEM_USER)
        except KeyError:
            shutil.rmtree(workdir, ignore_errors=True)
            raise ClusterUnavailable(
                f"running as root (initdb refuses root) and no `{CLUSTER_SYSTEM_USER}` user"
            ) from None
        workdir.chmod(0o711)  # the postgres user may pass through to cluster/, nothing more
        os.chown(cluster_dir, owner.pw_uid, owner.pw_gid)
        executable = _pg_ctl_as_system_user(pg_ctl, workdir)
    executor = PostgreSQLExecutor(
        executable=executable,
        host="127.0.0.1",
        port=_free_port(),
        datadir=str(cluster_dir / "data"),
        unixsocketdir=str(cluster_dir),
        logfile=str(cluster_dir / "server.log"),
        startparams="-w",
        dbname="postgres",
        user="postgres",
        postgres_options=CLUSTER_SERVER_OPTIONS,
        timeout=CLUSTER_START_TIMEOUT_S,
    )
    try:
        executor.start()
    except Exception as error:  # mirakuru and subprocess raise several kinds; all mean "no"
        log = cluster_dir / "server.log"
        tail = log.read_text(errors="replace")[-1000:] if log.exists() else ""
        _stop_quietly(executor)
        shutil.rmtree(workdir, ignore_errors=True)
        raise ClusterUnavailable(f"{type(error).__name__}: {error} {tail}".strip()) from None
    try:
        yield executor
    finally:
        _stop_quietly(executor)
        shutil.rmtree(workdir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop_quietly(executor: PostgreSQLExecutor) -> None:
    try:
        if executor.running():
            executor.stop()
    except Exception:  # best effort: the directory is removed next either way
        pass


def reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def unavailable(reason: str) -> None:
    if os.environ.get("ASX_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"ASX_REQUIRE_POSTGRES=1 but no PostgreSQL is available: {reason}")
    pytest.skip(f"no PostgreSQL available: {reason}")


@pytest.fixture(scope="session")
def postgres_admin_dsn(request: pytest.FixtureRequest) -> str:
    """A DSN allowed to CREATE DATABASE; never used by tests to hold data."""
    configured = os.environ.get("ASX_TEST_DATABASE_URL")
    if configured and os.environ.get("ASX_TEST_POSTGRES") != "cluster":
        if not reachable(configured):
            unavailable(f"ASX_TEST_DATABASE_URL ({scrub_dsn(configured)}) does not answer")
        return configured
    cluster_only = os.environ.get("ASX_TEST_POSTGRES") == "cluster"
    if not cluster_only and reachable(LOCAL_SERVER_DSN):
        return LOCAL_SERVER_DSN
    try:
        cluster = request.getfixturevalue("throwaway_cluster")
    except ClusterUnavailable as error:
        unavailable(f"nothing on 127.0.0.1:5432 and no throwaway cluster: {error}")
    return f"postgresql://{cluster.user}@{cluster.host}:{cluster.port}/{cluster.dbname}"


@contextmanager
def fresh_database(admin_dsn: str) -> Iterator[str]:
    """A new, empty database on the server of `admin_dsn`, dropped afterwards."""
    name = f"asx_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(admin_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def postgres_dsn(postgres_admin_dsn: str) -> Iterator[str]:
    """A database of its own for this test, dropped afterwards."""
    with fresh_database(postgres_admin_dsn) as dsn:
        yield dsn


@pytest.fixture
def migrated_dsn(postgres_dsn: str) -> str:
    """A fresh database with every migration applied."""
    apply_migrations(postgres_dsn)
    return postgres_dsn
