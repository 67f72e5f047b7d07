"""The ASX company directory: the CSV the ASX publishes of every listed company.

Two formats are in the wild and both must keep working, because the ASX changed the file without
notice and old copies are still mirrored:

- current: `"ASX code","Company name","GICs industry group","Listing date","Market Cap"`, no
  preamble, listing date as DD/MM/YYYY, market cap a number, `SUSPENDED` or `--`;
- older: a line `ASX listed companies as at <date>`, a blank line, then
  `Company name,ASX code,GICS industry group`.

Columns are therefore found by their header name (ignoring case, spacing and punctuation, so
`GICs` and `GICS` are the same), never by position, and the header row is searched for rather than
assumed to be the first line.

Every error is a `DirectoryError` whose `retryable` says whether trying again later can help: a
network failure, a timeout or an HTTP 408/425/429/5xx can pass; a missing file, any other HTTP
error (404, 403) or content that is not the directory (empty, binary, an HTML page, no code
column) cannot, so the asset fails at once instead of waiting through step retries.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import requests

from asx_pipeline.sources.market_data import DIRECTORY_COLUMNS

# The ASX's web front rejects the default python-requests agent, so look like a browser.
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)

# Header name (normalised) -> canonical column. Listing date and market cap only exist in the
# current format, so they are optional; the code and the name are what make a row a company.
_COLUMN_BY_HEADER = {
    "asxcode": "symbol",
    "companyname": "company_name",
    "gicsindustrygroup": "gics_industry_group",
    "listingdate": "listing_date",
    "marketcap": "market_cap",
}
_REQUIRED_HEADERS = {"symbol": "ASX code", "company_name": "Company name"}
_EXPECTED_HEADER = "ASX code, Company name, GICS industry group, Listing date, Market Cap"
EXPECTED = (
    f"expected the ASX directory CSV with columns {_EXPECTED_HEADER} (the first two required)"
)
_SOURCE_HINT = (
    "set ASX_DIRECTORY_SOURCE to the http(s) URL of the ASX directory CSV or the path of an "
    "existing CSV file"
)

# Bytes that never occur in a CSV text file (C0 controls other than tab, newlines and form feed,
# and DEL). UTF-8 never produces them inside a multi-byte character, so one is proof of binary.
_BINARY_BYTE = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
# What a file commonly is when it is not the CSV, by its first bytes.
_MAGIC_HINTS = {
    b"PK\x03\x04": "a ZIP archive, e.g. an .xlsx workbook: export it as CSV",
    b"\xd0\xcf\x11\xe0": "an old .xls workbook: export it as CSV",
    b"\x1f\x8b": "gzip-compressed: decompress it",
    b"%PDF": "a PDF document",
    b"\xff\xfe": "UTF-16 text: save it as UTF-8 CSV",
    b"\xfe\xff": "UTF-16 text: save it as UTF-8 CSV",
}
# HTTP statuses that say "try again later"; any other error status will not change by waiting.
_RETRYABLE_STATUSES = frozenset({408, 425, 429})

# ASX codes are 3 letters/digits for ordinary shares; 4-6 for options, partly paid and other classes
# (CCON, CHRCB, NWSLV), and some start with a digit (14D, 1AD).
_CODE_PATTERN = re.compile(r"[A-Z0-9]{3,6}")
_DATE_FORMAT = "%d/%m/%Y"
_SUSPENDED_MARKS = frozenset({"SUSPENDED", "--"})


class DirectoryError(Exception):
    """The ASX directory could not be loaded; the message names where and says why."""

    # Whether trying again later can succeed; False means fail now (Dagster: no step retry).
    retryable = False


class DirectoryFormatError(DirectoryError, ValueError):
    """The content is not an ASX directory we can trust (empty, binary, HTML, no code column)."""


class DirectorySourceError(DirectoryError, OSError):
    """ASX_DIRECTORY_SOURCE names nothing readable: a missing file, an HTTP 404, a bad URL."""


class DirectoryUnavailableError(DirectoryError, OSError):
    """The directory could not be fetched just now: network error, timeout, HTTP 429 or 5xx."""

    retryable = True


def load_directory(
    source: str, session: requests.Session | None = None, timeout: float = 30.0
) -> pd.DataFrame:
    """Read the directory from an http(s) URL or a local file path, with DIRECTORY_COLUMNS.

    Raises a `DirectoryError`; only a `DirectoryUnavailableError` is worth retrying.
    """
    if _is_url(source):
        origin = redact_url(source)
        content, content_type = _fetch(source, origin, session, timeout)
    else:
        origin = source
        content, content_type = _read_file(Path(source).expanduser(), origin), None
    text = _decode(content, origin)
    _refuse_html(text, origin, content_type)
    return parse_directory(text, origin)


def parse_directory(text: str, origin: str) -> pd.DataFrame:
    """Parse directory CSV text (either format) into DIRECTORY_COLUMNS, sorted by symbol.

    `origin` (a path or URL) is only used to say where a problem is.
    """
    # A BOM can survive when the caller decoded with plain utf-8.
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise DirectoryFormatError(f"{origin} is empty; {EXPECTED}")
    rows = list(csv.reader(io.StringIO(text)))
    header_index = _find_header(rows, origin)
    columns = _map_header(rows[header_index], origin)
    records = [
        _parse_row(row, columns, origin, line=header_index + offset + 2)
        for offset, row in enumerate(rows[header_index + 1 :])
        if any(cell.strip() for cell in row)
    ]
    if not records:
        raise DirectoryFormatError(f"{origin} has a header but no companies")
    _refuse_duplicates((record["symbol"] for record in records), origin)
    return _to_frame(records)


def redact_url(url: str) -> str:
    """The URL without user:password and without its query (the ASX feed takes an access token)."""
    parts = urlsplit(url)
    try:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a port that is not a number: still drop any user:password
        netloc = parts.netloc.rpartition("@")[2]
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _is_url(source: str) -> bool:
    return urlsplit(source).scheme.lower() in {"http", "https"}


def _fetch(
    url: str, origin: str, session: requests.Session | None, timeout: float
) -> tuple[bytes, str | None]:
    """The body and Content-Type of a successful GET; errors say whether waiting can help."""
    http = session or requests.Session()
    try:
        response = http.get(url, headers={"User-Agent": BROWSER_USER_AGENT}, timeout=timeout)
    except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema) as exc:
        raise DirectorySourceError(
            f"{origin} is not a URL that can be fetched ({type(exc).__name__}); {_SOURCE_HINT}"
        ) from None
    except requests.RequestException as exc:
        # str(exc) can repeat the full URL, query token included, so only its kind is reported.
        raise DirectoryUnavailableError(
            f"could not fetch the ASX directory from {origin}: {type(exc).__name__}"
        ) from None
    if not response.ok:
        status = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
        if response.status_code in _RETRYABLE_STATUSES or response.status_code >= 500:
            raise DirectoryUnavailableError(
                f"could not fetch the ASX directory from {origin}: {status}"
            )
        raise DirectorySourceError(
            f"could not fetch the ASX directory from {origin}: {status}"
            f"{_redirect_note(response, origin)}; expected the ASX directory CSV at that URL; "
            + _SOURCE_HINT
        )
    return response.content, response.headers.get("Content-Type")


def _redirect_note(response: requests.Response, origin: str) -> str:
    final = redact_url(response.url) if response.url else origin
    return f" (redirected to {final})" if final != origin else ""


def _read_file(path: Path, origin: str) -> bytes:
    shown = origin if str(path.absolute()) == origin else f"{origin} (that is {path.absolute()})"
    if not path.exists():
        raise DirectorySourceError(f"{shown} does not exist; {_SOURCE_HINT}")
    if not path.is_file():
        raise DirectorySourceError(f"{shown} is not a file; {_SOURCE_HINT}")
    try:
        return path.read_bytes()
    except PermissionError:
        raise DirectorySourceError(
            f"{shown} cannot be read (permission denied); make it readable by the user that "
            "runs Dagster"
        ) from None
    except OSError as exc:
        # An I/O error (a network mount gone away) may pass; let the step retry it.
        raise DirectoryUnavailableError(f"could not read {shown}: {exc.strerror or exc}") from None


def _decode(content: bytes, origin: str) -> str:
    """The text of a CSV file, or a DirectoryFormatError naming the first byte that is binary."""
    binary = _BINARY_BYTE.search(content)
    if binary is not None:
        raise _binary_error(content, binary.start(), origin)
    # The ASX serves UTF-8 (sometimes with a BOM); older mirrors were saved as cp1252 (a superset
    # of latin-1's letters). cp1252 leaves five bytes undefined: those are not text either.
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise _binary_error(content, exc.start, origin) from None


def _binary_error(content: bytes, offset: int, origin: str) -> DirectoryFormatError:
    hint = next(
        (
            f"; it looks like {what}"
            for magic, what in _MAGIC_HINTS.items()
            if content.startswith(magic)
        ),
        "",
    )
    return DirectoryFormatError(
        f"{origin}: not a CSV text file (binary content at byte {offset}: "
        f"0x{content[offset]:02x}{hint}); {EXPECTED}"
    )


def _refuse_html(text: str, origin: str, content_type: str | None) -> None:
    """A web page where the CSV should be: a moved download, a login or a bot-check page."""
    head = text.lstrip("\ufeff \t\r\n")[:4096].lower()
    looks_like_html = head.startswith("<") and any(
        tag in head for tag in ("<!doctype html", "<html", "<head", "<body")
    )
    if not looks_like_html:
        return
    title = re.search(r"<title[^>]*>(.*?)</title>", text[:8192], re.IGNORECASE | re.DOTALL)
    titled = f" titled {' '.join(title.group(1).split())[:80]!r}" if title else ""
    served = f" (Content-Type: {content_type})" if content_type else ""
    raise DirectoryFormatError(f"{origin} is an HTML page{titled}{served}, not a CSV; {EXPECTED}")


def _normalise_header(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _find_header(rows: Sequence[Sequence[str]], origin: str) -> int:
    """Index of the first row naming a known column; anything above it is preamble."""
    for index, row in enumerate(rows):
        if any(_normalise_header(cell) in _COLUMN_BY_HEADER for cell in row):
            return index
    first = next((",".join(row) for row in rows if any(cell.strip() for cell in row)), "")
    raise DirectoryFormatError(
        f"{origin} has no header row (first line: {first[:120]!r}); {EXPECTED}"
    )


def _map_header(header: Sequence[str], origin: str) -> dict[str, int]:
    """Canonical column -> position in this file's rows."""
    positions: dict[str, int] = {}
    for position, cell in enumerate(header):
        column = _COLUMN_BY_HEADER.get(_normalise_header(cell))
        if column is None:
            continue  # columns the ASX may add later are ignored rather than refused
        if column in positions:
            raise DirectoryFormatError(f"{origin} has the column {cell.strip()!r} twice")
        positions[column] = position
    found = ", ".join(cell.strip() for cell in header)
    for column, title in _REQUIRED_HEADERS.items():
        if column not in positions:
            raise DirectoryFormatError(
                f"{origin} has no {title!r} column; found columns: {found}; {EXPECTED}"
            )
    return positions


def _parse_row(
    row: Sequence[str], columns: dict[str, int], origin: str, line: int
) -> dict[str, object]:
    def cell(column: str) -> str:
        position = columns.get(column)
        if position is None or position >= len(row):
            return ""
        return row[position].strip()

    symbol = _parse_code(cell("symbol"), origin, line)
    raw_cap = cell("market_cap")
    return {
        "symbol": symbol,
        "company_name": cell("company_name"),
        # "Not Applic" and "Class Pend" are the ASX's own words for funds and new listings; kept.
        "gics_industry_group": cell("gics_industry_group") or None,
        "listing_date": _parse_listing_date(cell("listing_date"), symbol, origin),
        "market_cap": _parse_market_cap(raw_cap),
        # The ASX prints SUSPENDED, or "--" in the current format, where a suspended company's
        # market cap would be (issue 2); a blank cap (a pending listing) is not a suspension.
        "status": "suspended" if raw_cap.upper() in _SUSPENDED_MARKS else "active",
    }


def _parse_code(raw: str, origin: str, line: int) -> str:
    code = raw.upper()
    if not _CODE_PATTERN.fullmatch(code):
        raise DirectoryFormatError(
            f"{origin} line {line}: ASX code {raw!r} is not 3-6 letters or digits"
        )
    return code


def _parse_listing_date(raw: str, symbol: str, origin: str) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.datetime.strptime(raw, _DATE_FORMAT).date()
    except ValueError:
        raise DirectoryFormatError(
            f"{origin}: {symbol} has listing date {raw!r}; expected DD/MM/YYYY"
        ) from None


def _parse_market_cap(raw: str) -> float | None:
    # SUSPENDED, "--" and blank all mean "no number today"; the status column keeps the difference.
    try:
        value = float(raw.replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _refuse_duplicates(symbols: Iterable[str], origin: str) -> None:
    duplicates = sorted(symbol for symbol, count in Counter(symbols).items() if count > 1)
    if duplicates:
        raise DirectoryFormatError(f"{origin} lists these ASX codes more than once: {duplicates}")


def _to_frame(records: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=DIRECTORY_COLUMNS)
    # Fixed dtypes so both formats (and every day) give the same schema: market_cap is float64
    # with NaN for "no number", the rest are Python objects (str, datetime.date or None).
    frame = frame.astype({column: object for column in DIRECTORY_COLUMNS})
    frame["market_cap"] = pd.to_numeric(frame["market_cap"]).astype("float64")
    return frame.sort_values("symbol", ignore_index=True)
