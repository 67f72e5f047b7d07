"""Steps on Celery workers (ASX_EXECUTOR=celery): the executor every job gets, the worker that
`asx-pipeline worker` starts, and the checks that a run's steps have somewhere to go.

dagster-celery does the work: its executor sends each step of a run to the broker's `dagster`
queue, and a worker runs it with the code location's own definitions (it imports them from the
run's code pointer, so every worker needs this package and the same settings in its environment)
and records the step's events in the run's instance. Concurrency pools are claimed by the run's
orchestrating process before a step is sent, so the `yahoo` pool holds across every worker.

The broker URL is a secret (it may carry a password): the executor reads it from the environment
when a run starts (`EnvVar`-style config), and it is only ever shown sanitised by kombu.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    # Only for the annotation: settings.py imports this module, and must stay quick to import.
    from dagster import ExecutorDefinition

BROKER_ENV = "ASX_CELERY_BROKER_URL"
# dagster-celery's executor sends every step to this queue (make_app's routes).
QUEUE = "dagster"
DEFAULT_WORKER_NAME = "asx@%h"
# Brokers, by URL scheme, that Celery (kombu) can use here: Redis (the `redis` extra) and AMQP.
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")
BROKER_EXPECTED = (
    "expected a Celery broker URL such as redis://127.0.0.1:6379/0 or "
    "amqp://user:password@host:5672// (percent-encode special characters in a password)"
)
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
# Celery 5 has no `amqp` result backend ("Unknown result backend: 'amqp'"): with RabbitMQ the
# results come back over the broker itself (`rpc://`), still the one server the workers write to.
_AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
RPC_BACKEND = "rpc://"


class NoWorkerError(RuntimeError):
    """No Celery worker answers on the configured broker (or the broker does not answer)."""


def broker_url_problem(url: str) -> str | None:
    """Why `url` cannot be a broker URL, never quoting it (it may hold a password); None if fine."""
    if not url or url != url.strip() or any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "is empty or contains a space, line break or control character"
    scheme, _, rest = url.partition("://")
    if scheme not in BROKER_SCHEMES or not rest:
        return f"does not start with one of {', '.join(s + '://' for s in BROKER_SCHEMES)}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        return "has a host or port that does not parse (an unencoded @, / or : in the password?)"
    return None


def broker_is_local(url: str) -> bool:
    """Whether the broker runs on this box (a loopback host), so every worker that can reach it
    with this URL runs here too."""
    return (urlsplit(url).hostname or "") in _LOCAL_HOSTS


def _is_amqp(broker_url: str) -> bool:
    return broker_url.partition("://")[0] in _AMQP_SCHEMES


def result_backend(broker_url: str) -> str:
    """The result backend for `broker_url`: the same server, since a backend the workers do not
    write to leaves a run waiting for ever. Redis stores results itself; RabbitMQ sends them
    back as messages (`rpc://`)."""
    return RPC_BACKEND if _is_amqp(broker_url) else broker_url


def executor_definition() -> ExecutorDefinition:
    """dagster-celery's executor with the broker and its `result_backend` from the environment
    (read when a run starts; only the scheme is looked at here, to choose the backend)."""
    from celery.exceptions import DuplicateTaskNameWarning
    from dagster_celery import celery_executor

    # dagster-celery registers its step task again for every step it sends (the same function,
    # a new closure); Celery 5.7 warns about each, in the output of every run.
    warnings.filterwarnings("ignore", category=DuplicateTaskNameWarning)
    return celery_executor.configured(
        {
            "broker": {"env": BROKER_ENV},
            # Never the URL itself in the config: it may hold the broker's password.
            "backend": (
                RPC_BACKEND if _is_amqp(os.environ.get(BROKER_ENV, "")) else {"env": BROKER_ENV}
            ),
            "config_source": {"broker_connection_retry_on_startup": True},
        },
        name="celery",
    )


def _app(broker_url: str):
    """The Celery app the executor uses, with the task that runs a step registered on it."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    app = make_app(
        CeleryExecutor.for_cli(
            broker=broker_url,
            backend=result_backend(broker_url),
            config_source={"broker_connection_retry_on_startup": True},
        ).app_args()
    )
    create_task(app)
    return app


def answering_workers(broker_url: str, timeout: float = 2.0) -> list[str]:
    """The names of the workers that answer a ping on the broker; NoWorkerError when none does
    or the broker itself cannot be reached (the error names the broker, password masked)."""
    from kombu.utils.url import maybe_sanitize_url

    app = _app(broker_url)
    shown = maybe_sanitize_url(broker_url)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        replies = app.control.ping(timeout=timeout)
    except (OSError, ConnectionError) as error:
        raise NoWorkerError(
            f"the Celery broker {shown} ({BROKER_ENV}) does not answer: {error}"
        ) from None
    except Exception as error:  # kombu wraps transport errors in its own OperationalError
        if type(error).__name__ != "OperationalError":
            raise
        raise NoWorkerError(
            f"the Celery broker {shown} ({BROKER_ENV}) does not answer: {error}"
        ) from None
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise NoWorkerError(
            f"no Celery worker answers on {shown} ({BROKER_ENV}); start one with "
            "`asx-pipeline worker` (on this box or another with the same settings)"
        )
    return names


def run_worker(broker_url: str, concurrency: int, name: str = DEFAULT_WORKER_NAME) -> None:
    """Run a Celery worker for this code location until SIGTERM/SIGINT (a warm shutdown: the
    steps it is running finish first).

    A thin wrapper over what `dagster-celery worker start` runs, minus what does not fit a
    service: that command writes the resolved broker URL (with its password) into a config file
    under DAGSTER_HOME on every start, and a SIGTERM to it leaves its `celery` child running.
    """
    # Imported before the pool forks, so every pool process starts with the project loaded
    # (and a bad setting fails here, once, with settings.py's message).
    import asx_pipeline.definitions  # noqa: F401

    _quiet_worker_log()
    app = _app(broker_url)
    app.worker_main(
        [
            "worker",
            "--queues",
            QUEUE,
            "--hostname",
            name,
            "--concurrency",
            str(concurrency),
            # A step is long and uneven: a worker takes one at a time per pool process.
            "--prefetch-multiplier=1",
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
        ]
    )


def _quiet_worker_log() -> None:
    """Keep the worker's log to what a person reads: Celery logs each task's return value, which
    for a step is its whole serialised event stream (already in the run's event log), and
    Dagster's SQLite storage logs two Alembic lines each time a step opens it."""
    from celery.app import trace

    trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
