"""What the psycopg backend, the migrations and the REST backend share about Postgres.

- Connecting: `connect` and the DSN helpers. Both postgres_backend.py and the migration commands
  (migrations.py) connect with the same DSN, and both must keep its password out of every message.
- The per-table advisory lock (`window_lock_key`): the backend's write transactions take it, and so
  do the SQL functions that migrations.py renders for the REST backend, so all writers queue.
- `python_values`: a frame column as the plain Python values Postgres is sent, whether psycopg
  dumps them (COPY, postgres_backend.py) or they travel as JSON (rest_backend.py).

It exists so that the warehouse imports run one way: migrations.py and rest_backend.py depend on
this module, never on postgres_backend.py, and postgres_backend.py depends on migrations.py (its
schema check) and on this module. The SQL type of each column type is `tables.sql_type`.

The DSN holds a password: it is kept private, never formatted into a message, and every error text
from the driver is scrubbed of it before it is raised. A DSN libpq cannot parse (or would misread)
is refused before libpq sees it, because libpq's parse errors quote the DSN, password and all, and
a redaction that has to parse the DSN to find its password cannot find it in one that does not.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any
from urllib.parse import quote, unquote

import pandas as pd
import psycopg
from dagster import Failure
from psycopg.conninfo import conninfo_to_dict

from asx_pipeline.settings import dsn_error, dsn_problem
from asx_pipeline.warehouse.frames import WarehouseError
from asx_pipeline.warehouse.tables import ColumnType, TableSpec

TRANSACTION_POOLER_PORT = "6543"
# The SQL functions of the migrations take the same lock, so REST and direct writers queue too.
WINDOW_LOCK_PREFIX = "asx_pipeline.replace_window:"


class InvalidDsnError(WarehouseError, Failure):
    """The connection string cannot be used as it is; the message never quotes any of it.

    A `Failure` that forbids retries, like postgres_backend's SchemaOutOfDateError: no retry
    fixes a typo.
    """

    def __init__(self, problem: str) -> None:
        message = f"SUPABASE_DB_URL is {dsn_error(problem)}"
        Failure.__init__(self, description=message, allow_retries=False)


def parse_dsn(dsn: str) -> dict[str, Any]:
    """libpq's reading of the DSN; InvalidDsnError when it cannot read it, or would misread it."""
    problem = dsn_problem(dsn)
    if problem:
        raise InvalidDsnError(problem)
    try:
        return conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # `from None`: libpq's message quotes the DSN.
        raise InvalidDsnError("does not parse") from None


_SHOWN_PARAMETERS = frozenset(
    {"sslmode", "sslrootcert", "application_name", "connect_timeout", "target_session_attrs"}
)


def scrub_dsn(dsn: str) -> str:
    """The DSN as a URL with the password replaced by `***`, safe for logs and messages."""
    try:
        params = parse_dsn(dsn)
    except InvalidDsnError:
        # Nothing of it is shown: with an unencoded @ the "host" is the end of the password.
        return "<unparseable connection string>"
    user = quote(params.get("user") or "", safe="")
    auth = f"{user}{':***' if params.get('password') else ''}@" if user else ""
    host = params.get("host") or "localhost"
    port = f":{params['port']}" if params.get("port") else ""
    # An allow-list: anything else (sslpassword, a key in `options`, ...) may be a secret.
    options = {k: v for k, v in params.items() if k in _SHOWN_PARAMETERS}
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in sorted(options.items()))
    return f"postgresql://{auth}{host}{port}/{params.get('dbname') or ''}" + (
        f"?{query}" if query else ""
    )


def redact(text: str, dsn: str) -> str:
    """`text` with the DSN's password (raw and URL-encoded) and the DSN itself removed.

    Works on a DSN libpq cannot parse too: its password is then found by the DSN's shape.
    """
    for secret in sorted({dsn, *dsn_passwords(dsn)}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def dsn_passwords(dsn: str) -> set[str]:
    """The DSN's passwords in every form a message may show: libpq's reading when it can read
    the DSN, else what looks like one; each as is, percent-encoded and percent-decoded."""
    secrets = password_candidates(dsn)
    with contextlib.suppress(psycopg.ProgrammingError):
        params = conninfo_to_dict(dsn)
        secrets |= {str(params[name]) for name in ("password", "sslpassword") if params.get(name)}
    return {form for secret in secrets for form in _encodings(secret)}


# `password=...` or `sslpassword=...` in libpq's key=value form: quoted, or up to a space.
_KEY_VALUE_PASSWORD = re.compile(r"(?:^|\s)(?:ssl)?password\s*=\s*(?:'((?:\\.|[^'\\])*)'?|(\S*))")
# ...and, for a password with an unquoted space, everything up to the next `key=` or the end.
_KEY_VALUE_TAIL = re.compile(r"(?:^|\s)(?:ssl)?password\s*=\s*(.*?)(?=\s+[A-Za-z_]+\s*=|\s*$)")


def password_candidates(dsn: str) -> set[str]:
    """Whatever in `dsn` may be a password, read by shape alone (libpq need not parse it).

    URL-like text (`scheme://user:password@host`, `postgresql//...`, `user:pw@host`): for every
    `@`, what follows the user name's colon, so an `@` or `/` in the password is covered too.
    Key=value text: the value of `password=` (quoted, bare, or running up to the next key).
    """
    found: set[str] = set()
    for at in (index for index, char in enumerate(dsn) if char == "@"):
        head = dsn[:at]
        slashes = head.find("//")
        userinfo = head[slashes + 2 :] if slashes >= 0 else head
        if ":" in userinfo:
            found |= {userinfo.split(":", 1)[1], userinfo.rsplit(":", 1)[1]}
    for match in _KEY_VALUE_PASSWORD.finditer(dsn):
        found |= {group for group in match.groups() if group}
    for match in _KEY_VALUE_TAIL.finditer(dsn):
        found.add(match.group(1))
    return {candidate for candidate in found if candidate}


def _encodings(secret: str) -> set[str]:
    """The forms a secret may take in a message: as is, percent-encoded, percent-decoded."""
    forms = {secret, quote(secret, safe=""), quote(secret), unquote(secret)}
    return {form for form in forms if form}


def is_transaction_pooler(dsn: str) -> bool:
    """Supavisor's transaction mode (port 6543) cannot keep prepared statements across calls."""
    ports = str(parse_dsn(dsn).get("port") or "").split(",")
    return TRANSACTION_POOLER_PORT in ports


def connect(
    dsn: str, *, connect_timeout_s: int = 10, application_name: str = "asx-pipeline"
) -> psycopg.Connection[Any]:
    """An autocommit connection (transactions are explicit); settings in the DSN win.

    SSL parameters (`sslmode`, `sslrootcert`, ...) pass through untouched from the DSN.
    InvalidDsnError, never libpq's quoting parse error, when the DSN cannot be used.
    """
    params = parse_dsn(dsn)
    extra: dict[str, Any] = {}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = connect_timeout_s
    if "application_name" not in params:
        extra["application_name"] = application_name
    if is_transaction_pooler(dsn):
        extra["prepare_threshold"] = None
    try:
        return psycopg.connect(dsn, autocommit=True, **extra)
    except psycopg.ProgrammingError:
        # Only parsing the conninfo raises this here (a refused connection is OperationalError),
        # and its message quotes the DSN.
        raise InvalidDsnError("does not parse") from None


def window_lock_key(table: TableSpec) -> str:
    return WINDOW_LOCK_PREFIX + table.name


def python_values(series: pd.Series, column_type: ColumnType) -> list[Any]:
    """One column as the Python values psycopg dumps, None for missing."""
    missing = series.isna().to_numpy()
    if column_type == "double":
        # NaN is "missing" in pandas; Postgres would store it as a real NaN, DuckDB as NULL.
        values = series.to_numpy(dtype="float64").astype(object)
    elif column_type == "timestamp":
        # Per-element Timestamp boxing is ~3x slower than the array's own conversion.
        values = pd.to_datetime(series, utc=True).array.to_pydatetime().astype(object)
    else:
        values = series.to_numpy(dtype=object, na_value=None)
    if missing.any():
        values[missing] = None
    return values.tolist()
