"""The ASX directory parser against the two real published formats (shared fixtures, no network)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import requests
import responses

from asx_pipeline.sources.asx_directory import (
    EXPECTED,
    DirectoryError,
    DirectoryFormatError,
    DirectorySourceError,
    DirectoryUnavailableError,
    load_directory,
    parse_directory,
)
from asx_pipeline.sources.market_data import DIRECTORY_COLUMNS

CURRENT_FILE = "asx/ASX_Listed_Companies.csv"
OLDER_FILE = "asx/ASXListedCompanies.csv"
# Counted with `wc -l` and by eye on the fixture files: data rows below the header.
CURRENT_ROWS = 1838
OLDER_ROWS = 1985
# In the current file: 74 rows with "--" and one (SCX, a pending listing) with a blank market cap.
CURRENT_WITHOUT_MARKET_CAP = 75
DIRECTORY_URL = "https://asx.example.test/asx-research/directory/file"
SOURCE_HINT = (
    "set ASX_DIRECTORY_SOURCE to the http(s) URL of the ASX directory CSV or the path of an "
    "existing CSV file"
)


def _text(fixtures_dir: Path, name: str) -> str:
    return (fixtures_dir / name).read_text(encoding="utf-8")


def _row(frame: pd.DataFrame, symbol: str) -> dict[str, object]:
    rows = frame.loc[frame["symbol"] == symbol].to_dict("records")
    assert len(rows) == 1, f"{symbol} should appear exactly once"
    return rows[0]


def _rewrite_rows(text: str, change: dict[str, dict[str, str]]) -> str:
    """The current-format text with some cells of some rows (by ASX code) replaced."""
    reader = csv.DictReader(io.StringIO(text))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [], quoting=csv.QUOTE_ALL)
    writer.writeheader()
    for row in reader:
        writer.writerow({**row, **change.get(row["ASX code"], {})})
    return out.getvalue()


@pytest.fixture
def current_text(fixtures_dir: Path) -> str:
    return _text(fixtures_dir, CURRENT_FILE)


@pytest.fixture
def older_text(fixtures_dir: Path) -> str:
    return _text(fixtures_dir, OLDER_FILE)


@pytest.fixture
def current(current_text: str) -> pd.DataFrame:
    return parse_directory(current_text, CURRENT_FILE)


@pytest.fixture
def older(older_text: str) -> pd.DataFrame:
    return parse_directory(older_text, OLDER_FILE)


# --- the current format -------------------------------------------------------------------------


def test_current_format_has_every_company_once_sorted(current: pd.DataFrame) -> None:
    assert list(current.columns) == DIRECTORY_COLUMNS
    assert len(current) == CURRENT_ROWS
    assert current["symbol"].is_unique
    assert current["symbol"].tolist() == sorted(current["symbol"])
    assert current["symbol"].iloc[0] == "10X"
    assert current["symbol"].iloc[-1] == "ZNO"


def test_current_format_bhp_row(current: pd.DataFrame) -> None:
    assert _row(current, "BHP") == {
        "symbol": "BHP",
        "company_name": "BHP GROUP LIMITED",
        "gics_industry_group": "Materials",
        "listing_date": dt.date(1885, 8, 13),
        "market_cap": 334284993458.0,
        "status": "active",
    }


def test_dash_market_cap_is_null_and_suspended(current: pd.DataFrame) -> None:
    row = _row(current, "4DS")
    assert math.isnan(row["market_cap"])
    assert row["status"] == "suspended"
    assert row["listing_date"] == dt.date(2010, 12, 9)
    assert int(current["market_cap"].isna().sum()) == CURRENT_WITHOUT_MARKET_CAP
    # 74 rows print "--" (suspended); SCX's blank cap is a pending listing, still active.
    assert current["status"].value_counts().to_dict() == {
        "active": CURRENT_ROWS - 74,
        "suspended": 74,
    }


def test_blank_market_cap_and_asx_placeholder_groups_are_kept(current: pd.DataFrame) -> None:
    pending = _row(current, "SCX")
    assert pending["gics_industry_group"] == "Class Pend"
    assert pending["listing_date"] == dt.date(2026, 8, 21)
    assert math.isnan(pending["market_cap"])
    assert pending["status"] == "active"
    assert _row(current, "ACQ")["gics_industry_group"] == "Not Applic"


def test_suspended_market_cap_is_null_and_suspended(current_text: str) -> None:
    # The published file happens to have no suspension on its day; mark a real row as one.
    text = _rewrite_rows(current_text, {"14D": {"Market Cap": "SUSPENDED"}})
    frame = parse_directory(text, "suspended.csv")
    row = _row(frame, "14D")
    assert math.isnan(row["market_cap"])
    assert row["status"] == "suspended"
    assert row["company_name"] == "1414 DEGREES LIMITED"
    assert frame["status"].value_counts().to_dict() == {
        "active": CURRENT_ROWS - 75,
        "suspended": 75,
    }


def test_codes_of_four_and_five_characters_and_leading_digits_are_kept(
    current: pd.DataFrame,
) -> None:
    long_codes = sorted(current.loc[current["symbol"].str.len() > 3, "symbol"])
    assert long_codes == ["CCON", "CHRCB", "EMUCA", "HGODB", "ID8DA", "NWSLV", "SGLLV"]
    assert _row(current, "CCON")["company_name"] == "THE CALMER CO INTERNATIONAL LIMITED"
    assert _row(current, "14D")["market_cap"] == 43541178.0
    assert _row(current, "1AD")["gics_industry_group"] == (
        "Pharmaceuticals, Biotechnology & Life Sciences"
    )


# --- the older format ---------------------------------------------------------------------------


def test_older_format_skips_the_preamble(older: pd.DataFrame) -> None:
    assert list(older.columns) == DIRECTORY_COLUMNS
    assert len(older) == OLDER_ROWS
    assert older["symbol"].is_unique
    assert older["symbol"].tolist() == sorted(older["symbol"])
    assert (older["symbol"].str.len() == 3).all()
    assert older["listing_date"].isna().all()
    assert older["market_cap"].isna().all()
    assert (older["status"] == "active").all()


def test_older_format_bhp_row(older: pd.DataFrame) -> None:
    row = _row(older, "BHP")
    assert row["company_name"] == "BHP GROUP LIMITED"
    assert row["gics_industry_group"] == "Materials"
    assert row["listing_date"] is None
    assert math.isnan(row["market_cap"])
    assert row["status"] == "active"


def test_both_formats_give_the_same_schema(current: pd.DataFrame, older: pd.DataFrame) -> None:
    assert list(current.columns) == list(older.columns) == DIRECTORY_COLUMNS
    assert current.dtypes.to_dict() == older.dtypes.to_dict()
    assert current["market_cap"].dtype == "float64"
    # The two files are from different days: 1757 codes are in both, almost all named alike.
    shared = current.merge(older, on="symbol", suffixes=("_current", "_older"))
    assert len(shared) == 1757
    assert int((shared["company_name_current"] == shared["company_name_older"]).sum()) == 1740
    assert _row(shared, "CBA")["company_name_older"] == "COMMONWEALTH BANK OF AUSTRALIA."


# --- columns by name, not position --------------------------------------------------------------


def test_header_is_found_by_name_when_columns_are_reordered(
    current_text: str, current: pd.DataFrame
) -> None:
    rows = list(csv.reader(io.StringIO(current_text)))
    order = [4, 2, 0, 3, 1]  # Market Cap, GICs, ASX code, Listing date, Company name
    header = ["market  CAP", "GICS Industry Group", " asx code ", "LISTING DATE", "company name"]
    out = io.StringIO()
    out.write("ASX listed companies as at Fri Dec 05 08:08:59 AEDT 2025\n\n")
    writer = csv.writer(out)
    writer.writerow([*header, "Extra column"])
    writer.writerows([[row[i] for i in order] + ["ignored"] for row in rows[1:]])

    reordered = parse_directory(out.getvalue(), "reordered.csv")

    pd.testing.assert_frame_equal(reordered, current)


def test_missing_code_column_is_refused_naming_the_origin(older_text: str) -> None:
    rows = list(csv.reader(io.StringIO(older_text)))
    header_at = 2
    without_code = [row[:1] + row[2:] for row in rows[header_at:]]
    out = io.StringIO()
    csv.writer(out).writerows(without_code)

    with pytest.raises(DirectoryFormatError) as caught:
        parse_directory(out.getvalue(), "/data/ASXListedCompanies.csv")

    message = str(caught.value)
    assert message.startswith("/data/ASXListedCompanies.csv has no 'ASX code' column")
    assert "found columns: Company name, GICS industry group" in message
    assert message.endswith(
        "; expected the ASX directory CSV with columns ASX code, Company name, GICS industry "
        "group, Listing date, Market Cap (the first two required)"
    )


def test_text_without_any_header_is_refused_showing_its_first_line() -> None:
    with pytest.raises(DirectoryFormatError) as caught:
        parse_directory('\n"BHP","BHP GROUP LIMITED","Materials"\n', "x.csv")
    assert str(caught.value) == (
        f"x.csv has no header row (first line: 'BHP,BHP GROUP LIMITED,Materials'); {EXPECTED}"
    )


# --- refusals -----------------------------------------------------------------------------------


def test_malformed_listing_date_is_refused_naming_the_code(current_text: str) -> None:
    text = _rewrite_rows(current_text, {"BHP": {"Listing date": "1885-08-13"}})
    with pytest.raises(DirectoryFormatError) as caught:
        parse_directory(text, "bad-date.csv")
    assert str(caught.value) == (
        "bad-date.csv: BHP has listing date '1885-08-13'; expected DD/MM/YYYY"
    )


@pytest.mark.parametrize("text", ["", "   \n\n", "\ufeff"])
def test_empty_file_is_refused(text: str) -> None:
    with pytest.raises(DirectoryFormatError, match=r"^empty\.csv is empty; expected"):
        parse_directory(text, "empty.csv")


def test_header_without_companies_is_refused() -> None:
    with pytest.raises(DirectoryFormatError, match="has a header but no companies"):
        parse_directory('"ASX code","Company name"\n\n', "header-only.csv")


@pytest.mark.parametrize("code", ["BH", "B-P", "TOOLONGX", ""])
def test_code_that_is_not_three_to_six_alphanumerics_is_refused(code: str) -> None:
    text = f'ASX code,Company name\nBHP,BHP GROUP LIMITED\n"{code}",ODD LIMITED\n'
    with pytest.raises(DirectoryFormatError) as caught:
        parse_directory(text, "codes.csv")
    assert str(caught.value) == (
        f"codes.csv line 3: ASX code {code!r} is not 3-6 letters or digits"
    )


def test_duplicate_codes_are_refused() -> None:
    text = "ASX code,Company name\nBHP,BHP GROUP LIMITED\nbhp ,BHP AGAIN\nCBA,CBA\n"
    with pytest.raises(
        DirectoryFormatError, match=r"lists these ASX codes more than once: \['BHP'\]"
    ):
        parse_directory(text, "dupes.csv")


# --- load_directory -----------------------------------------------------------------------------


def test_load_from_a_path_matches_parse(fixtures_dir: Path, current: pd.DataFrame) -> None:
    loaded = load_directory(str(fixtures_dir / CURRENT_FILE))
    pd.testing.assert_frame_equal(loaded, current)


def test_load_tolerates_a_bom_and_falls_back_to_cp1252(tmp_path: Path) -> None:
    with_bom = tmp_path / "bom.csv"
    with_bom.write_bytes("ASX code,Company name\nBHP,BHP GROUP LIMITED\n".encode("utf-8-sig"))
    assert load_directory(str(with_bom))["symbol"].tolist() == ["BHP"]

    # Latin-1 letters are the same bytes in cp1252; cp1252 adds typography such as 0x92 (U+2019).
    legacy = tmp_path / "legacy.csv"
    name = "NESTLÉ AUSTRALIA\u2019S"
    legacy.write_bytes(f"ASX code,Company name\nNES,{name}\n".encode("cp1252"))
    assert load_directory(str(legacy))["company_name"].tolist() == [name]


# --- sources that waiting cannot fix: not retryable, and saying what was expected -----------


def test_missing_file_names_it_and_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(DirectorySourceError) as caught:
        load_directory(str(missing))
    assert str(caught.value) == f"{missing} does not exist; {SOURCE_HINT}"
    assert caught.value.retryable is False


def test_missing_relative_path_also_shows_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DirectorySourceError) as caught:
        load_directory("data/asx.csv")
    assert str(caught.value) == (
        f"data/asx.csv (that is {tmp_path / 'data' / 'asx.csv'}) does not exist; {SOURCE_HINT}"
    )


def test_a_folder_is_not_a_directory_file(tmp_path: Path) -> None:
    with pytest.raises(DirectorySourceError) as caught:
        load_directory(str(tmp_path))
    assert str(caught.value) == f"{tmp_path} is not a file; {SOURCE_HINT}"


def test_an_empty_file_names_it_and_what_was_expected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DirectoryFormatError) as caught:
        load_directory(str(empty))
    assert str(caught.value) == f"{empty} is empty; {EXPECTED}"
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"\x00\x01\x02junk\xff", "binary content at byte 0: 0x00"),
        # Valid-looking text, then a NUL: the offset points at it.
        (b"ASX code,Company name\nBHP,BHP\x00\n", "binary content at byte 29: 0x00"),
        # No control bytes, but 0x81 is not a character in UTF-8 nor in cp1252.
        (b"ASX code,Company name\nBHP,B\x81HP\n", "binary content at byte 27: 0x81"),
        (
            b"PK\x03\x04\x14\x00\x06\x00[Content_Types].xml",
            "binary content at byte 2: 0x03; it looks like a ZIP archive, e.g. an .xlsx "
            "workbook: export it as CSV",
        ),
        (
            "ASX code,Company name\n".encode("utf-16"),
            "binary content at byte 3: 0x00; it looks like UTF-16 text: save it as UTF-8 CSV",
        ),
    ],
)
def test_binary_content_names_the_file_the_byte_and_what_was_expected(
    tmp_path: Path, content: bytes, detail: str
) -> None:
    junk = tmp_path / "junk.csv"
    junk.write_bytes(content)
    with pytest.raises(DirectoryFormatError) as caught:
        load_directory(str(junk))
    assert str(caught.value) == f"{junk}: not a CSV text file ({detail}); {EXPECTED}"


def test_a_saved_web_page_is_refused_as_html(tmp_path: Path) -> None:
    page = tmp_path / "directory.csv"
    page.write_text("\n  <!doctype html><html><head><title>ASX</title></head></html>")
    with pytest.raises(DirectoryFormatError) as caught:
        load_directory(str(page))
    assert str(caught.value) == f"{page} is an HTML page titled 'ASX', not a CSV; {EXPECTED}"


def test_the_real_files_pass_the_binary_and_html_checks(fixtures_dir: Path) -> None:
    assert len(load_directory(str(fixtures_dir / CURRENT_FILE))) == CURRENT_ROWS
    assert len(load_directory(str(fixtures_dir / OLDER_FILE))) == OLDER_ROWS


@responses.activate
def test_load_from_a_url(fixtures_dir: Path, current: pd.DataFrame) -> None:
    responses.get(DIRECTORY_URL, body=(fixtures_dir / CURRENT_FILE).read_bytes())

    loaded = load_directory(DIRECTORY_URL, session=requests.Session(), timeout=5)

    pd.testing.assert_frame_equal(loaded, current)
    assert responses.calls[0].request.headers["User-Agent"].startswith("Mozilla/5.0")


@responses.activate
def test_http_404_names_the_url_and_status_without_credentials() -> None:
    secret_url = "https://user:hunter2@asx.example.test/directory/file?access_token=s3cret"
    responses.get(secret_url, status=404)

    with pytest.raises(DirectorySourceError) as caught:
        load_directory(secret_url)

    assert str(caught.value) == (
        "could not fetch the ASX directory from https://asx.example.test/directory/file"
        "?<redacted>: HTTP 404 Not Found; expected the ASX directory CSV at that URL; "
        + SOURCE_HINT
    )
    assert caught.value.retryable is False


@responses.activate
def test_a_redirect_to_a_missing_page_says_where_it_went() -> None:
    responses.get(DIRECTORY_URL, status=302, headers={"Location": "https://asx.example.test/gone"})
    responses.get("https://asx.example.test/gone", status=404)
    with pytest.raises(DirectorySourceError) as caught:
        load_directory(DIRECTORY_URL)
    assert str(caught.value).startswith(
        f"could not fetch the ASX directory from {DIRECTORY_URL}: HTTP 404 Not Found "
        "(redirected to https://asx.example.test/gone); expected"
    )


@responses.activate
@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (400, DirectorySourceError, False),
        (403, DirectorySourceError, False),
        (404, DirectorySourceError, False),
        (410, DirectorySourceError, False),
        (408, DirectoryUnavailableError, True),
        (425, DirectoryUnavailableError, True),
        (429, DirectoryUnavailableError, True),
        (500, DirectoryUnavailableError, True),
        (502, DirectoryUnavailableError, True),
        (503, DirectoryUnavailableError, True),
        (504, DirectoryUnavailableError, True),
    ],
)
def test_only_statuses_that_can_pass_are_retryable(
    status: int, error: type[DirectoryError], retryable: bool
) -> None:
    responses.get(DIRECTORY_URL, status=status)
    with pytest.raises(error) as caught:
        load_directory(DIRECTORY_URL)
    assert caught.value.retryable is retryable
    assert f"from {DIRECTORY_URL}: HTTP {status}" in str(caught.value)


@responses.activate
@pytest.mark.parametrize(
    "failure",
    [
        requests.ConnectionError("refused"),
        requests.ConnectTimeout("slow"),
        requests.ReadTimeout("slow"),
        requests.exceptions.ChunkedEncodingError("cut"),
    ],
)
def test_network_failure_is_retryable_and_names_the_url(failure: Exception) -> None:
    responses.get(DIRECTORY_URL, body=failure)
    with pytest.raises(DirectoryUnavailableError) as caught:
        load_directory(DIRECTORY_URL)
    assert str(caught.value) == (
        f"could not fetch the ASX directory from {DIRECTORY_URL}: {type(failure).__name__}"
    )
    assert caught.value.retryable is True


@responses.activate  # nothing may leave the machine, should the URL ever parse
def test_a_url_that_cannot_be_fetched_is_not_retryable_and_hides_its_password() -> None:
    with pytest.raises(DirectorySourceError) as caught:
        load_directory("https://user:hunter2@asx.example.test:99999/file")
    assert str(caught.value) == (
        "https://asx.example.test:99999/file is not a URL that can be fetched (InvalidURL); "
        + SOURCE_HINT
    )
    assert caught.value.retryable is False


@responses.activate
def test_an_html_page_instead_of_the_csv_names_the_url_and_what_was_expected() -> None:
    secret_url = f"{DIRECTORY_URL}?token=s3cret"
    responses.get(
        secret_url,
        body="<!DOCTYPE html>\n<html><head><title>Just a\n moment...</title></head></html>",
        content_type="text/html",
    )
    with pytest.raises(DirectoryFormatError) as caught:
        load_directory(secret_url)
    assert str(caught.value) == (
        f"{DIRECTORY_URL}?<redacted> is an HTML page titled 'Just a moment...' "
        f"(Content-Type: text/html), not a CSV; {EXPECTED}"
    )
    assert caught.value.retryable is False


@responses.activate
def test_a_url_serving_something_else_is_a_format_error_naming_the_url() -> None:
    responses.get(DIRECTORY_URL, body='{"error": "gone"}')
    with pytest.raises(
        DirectoryFormatError, match="^" + re.escape(f"{DIRECTORY_URL} has no header row")
    ):
        load_directory(DIRECTORY_URL)
