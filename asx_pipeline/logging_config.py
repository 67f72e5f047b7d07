"""Log lines as JSON objects (ASX_LOG_FORMAT=json), one per line, for journald and log shippers.

Two kinds of log line reach stdout/stderr, and both get the same shape:
- Dagster's run logs (`context.log`, step events) go through the job's `console` logger, which
  definitions.py swaps for `json_console_logger` when the format is json. Dagster hands that logger
  the run's metadata, so every line carries `run_id`, `job`, `step`, `asset` and `partition`.
- Plain Python logging (yfinance, the CLI, this package's modules) goes through the root handler
  that `configure_logging` installs. Those lines carry the same keys, null outside a run.

Text is the default because a person at a terminal reads it more easily.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

from dagster import Field, InitLoggerContext, logger

from asx_pipeline.calendar import partition_label
from asx_pipeline.dagster_compat import NodeHandle

_HANDLER_NAME = "asx-json"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; Dagster's run metadata when the record carries it."""

    def __init__(self, assets_by_step: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.assets_by_step = dict(assets_by_step or {})

    def format(self, record: logging.LogRecord) -> str:
        meta: Mapping[str, Any] = getattr(record, "dagster_meta", None) or {}
        step = meta.get("step_key")
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": meta.get("orig_message") or record.getMessage(),
            "run_id": meta.get("run_id"),
            "job": meta.get("job_name"),
            "step": step,
            "asset": _asset_of(meta, self.assets_by_step.get(step or "")),
            "partition": partition_label(meta.get("job_tags") or {}),
        }
        event = meta.get("dagster_event")
        if event is not None:
            line["event"] = event.event_type_value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _asset_of(meta: Mapping[str, Any], from_step: str | None) -> str | None:
    event = meta.get("dagster_event")
    asset_key = getattr(event, "asset_key", None) if event is not None else None
    return asset_key.to_user_string() if asset_key is not None else from_step


def assets_by_step(init_context: InitLoggerContext) -> dict[str, str]:
    """Op name -> the asset(s) it materialises, so a step's every line names its asset."""
    job = init_context.job_def
    if job is None:
        return {}
    layer = job.asset_layer
    found = {}
    for node in job.graph.node_dict.values():
        try:
            keys = layer.get_assets_def_for_node(NodeHandle(node.name, None)).keys
        except Exception:  # an op that is not an asset has no asset to name
            continue
        found[node.name] = ",".join(sorted(key.to_user_string() for key in keys))
    return found


@logger(
    config_schema={"log_level": Field(str, is_required=False, default_value="INFO")},
    description="Dagster's console logger, writing one JSON object per line to stderr.",
)
def json_console_logger(init_context: InitLoggerContext) -> logging.Logger:
    level = init_context.logger_config["log_level"]
    log = logging.getLogger(f"asx_pipeline.dagster.{init_context.run_id or 'no-run'}")
    log.setLevel(level.upper())
    log.propagate = False
    log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(assets_by_step(init_context)))
    log.addHandler(handler)
    return log


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Make the root logger write JSON lines to stderr (idempotent); text is left alone."""
    if log_format != "json":
        return
    root = logging.getLogger()
    if any(handler.get_name() == _HANDLER_NAME for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    # Replace text handlers so that no line reaches journald in two shapes.
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    # Third-party libraries stay at the root's level (WARNING): their INFO chatter (alembic's
    # plugin set-up on every instance load) is noise in a journal.
    logging.getLogger("asx_pipeline").setLevel(level)
    # Python warnings (deprecations, Dagster's preview notices) become JSON lines too.
    logging.captureWarnings(True)
    # And a crash: one JSON line with the traceback inside, not forty lines of text.
    sys.excepthook = _log_uncaught


def _log_uncaught(kind, error, trace) -> None:
    logging.getLogger("asx_pipeline").critical(
        f"Uncaught {kind.__name__}: {error}", exc_info=(kind, error, trace)
    )
