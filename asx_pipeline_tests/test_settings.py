"""Settings fail at load with the variable's name and what was expected, never its value."""

import datetime as dt
import traceback

import pytest

from asx_pipeline.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path) -> None:
    # A developer's own .env or exported variables must not leak into these tests.
    monkeypatch.chdir(tmp_path)
    for name in ("ASX_MARKET_DATA", "ASX_UNIVERSE", "ASX_START_DATE", "SUPABASE_DB_URL",
                 "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "ASX_SAMPLE_SYMBOLS",
                 "ASX_SMTP_PASSWORD", "ASX_ALERT_WEBHOOK_URL", "ASX_REPORT_EMAIL",
                 "ASX_EXECUTOR", "ASX_CELERY_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_select_yahoo_top_200_and_duckdb() -> None:
    settings = load_settings()
    assert settings.asx_market_data == "yahoo"
    assert settings.asx_universe == "top:200"
    assert settings.warehouse_backend == "duckdb"
    assert settings.asx_start_date <= dt.date.today() - dt.timedelta(days=5 * 365)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ASX_MARKET_DATA", "bloomberg", "ASX_MARKET_DATA: Input should be 'yahoo' or 'sample'"),
        ("ASX_UNIVERSE", "top:zero", "ASX_UNIVERSE: Value error, expected `all`, `top:N`"),
        ("ASX_START_DATE", "20-01-2024", "ASX_START_DATE: Input should be a valid date"),
        ("ASX_SAMPLE_SYMBOLS", "-3", "ASX_SAMPLE_SYMBOLS: Input should be greater than"),
        ("ASX_SMTP_PORT", "smtp", "ASX_SMTP_PORT: Input should be a valid integer"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch, variable, value, expected) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert expected in str(error.value)


def test_universe_forms_are_normalised(monkeypatch) -> None:
    monkeypatch.setenv("ASX_UNIVERSE", " bhp, cba ,CSL")
    assert load_settings().asx_universe == "BHP,CBA,CSL"
    monkeypatch.setenv("ASX_UNIVERSE", "TOP:50")
    assert load_settings().asx_universe == "top:50"
    monkeypatch.setenv("ASX_UNIVERSE", "all")
    assert load_settings().asx_universe == "all"
    # ALL is Aristocrat Leisure's code: upper case is a list of codes, not the keyword.
    monkeypatch.setenv("ASX_UNIVERSE", "ALL,bhp")
    assert load_settings().asx_universe == "ALL,BHP"
    monkeypatch.setenv("ASX_UNIVERSE", "ALL")
    assert load_settings().asx_universe == "ALL"


def test_a_bad_secret_is_never_echoed(monkeypatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", "not a url s3cr3t-value")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "eyJ-very-secret")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "SUPABASE_URL" in str(error.value)
    assert "s3cr3t" not in str(error.value) and "eyJ" not in str(error.value)


def test_rest_settings_go_together(monkeypatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://abc.supabase.co")
    with pytest.raises(SettingsError, match="SUPABASE_SERVICE_ROLE_KEY go together"):
        load_settings()
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "key")
    assert load_settings().warehouse_backend == "rest"


def test_db_url_wins_and_is_secret(monkeypatch) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", "postgresql://postgres:hunter2@db.example:5432/postgres")
    settings = load_settings()
    assert settings.warehouse_backend == "postgres"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


def test_dotenv_file_is_read(tmp_path) -> None:
    (tmp_path / ".env").write_text("ASX_MARKET_DATA=sample\nASX_UNIVERSE=top:5\n")
    settings = load_settings()
    assert (settings.asx_market_data, settings.asx_universe) == ("sample", "top:5")


# --- secrets: checked for shape at load, and never quoted in the error ----------------------------

DSN_EXPECTED = "expected postgresql://user:password@host:port/dbname"


@pytest.mark.parametrize(
    ("url", "password", "problem"),
    [
        # The two typos of the issue: libpq would quote these in its parse error.
        ("postgresql//user:S3cretPw@127.0.0.1:5432/db", "S3cretPw", "starts with neither"),
        ("postgresql://postgres:my secret@127.0.0.1:5432/postgres", "my secret", "a space"),
        # libpq parses these, but wrongly: the rest of the password becomes the host or database.
        ("postgresql://postgres:p@ssw0rd@127.0.0.1:5432/postgres", "p@ssw0rd", "an @ that is"),
        ("postgresql://postgres:pa/ssw0rd@127.0.0.1:5432/postgres", "pa/ssw0rd", "a / before"),
        ("postgresql://postgres:100%sure@127.0.0.1:5432/postgres", "100%sure", "a % that"),
        ("postgresql:/postgres:S3cretPw@127.0.0.1:5432/postgres", "S3cretPw", "starts with"),
        ("host=127.0.0.1 dbname=postgres password=my secret", "my secret", "key=value pairs"),
        ("postgresql://postgres:S3cretPw@127.0.0.1:5432", "S3cretPw", "names no database"),
        ("postgresql://postgres:S3cretPw@/postgres", "S3cretPw", "names no host"),
        ("postgresql://postgres:S3cretPw@127.0.0.1:5432/postgres\n", "S3cretPw", "line break"),
        ("mysql://root:S3cretPw@127.0.0.1/shop", "S3cretPw", "neither a postgresql:// URL"),
    ],
)
def test_a_malformed_db_url_is_refused_naming_it_without_quoting_it(
    monkeypatch, url, password, problem
) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", url)
    with pytest.raises(SettingsError) as error:
        load_settings()

    message = str(error.value)
    assert message.startswith("Invalid settings:\n  SUPABASE_DB_URL: ")
    assert problem in message and DSN_EXPECTED in message and "percent-encode" in message
    assert password not in message and "127.0.0.1" not in message
    # Nor in the traceback a crash prints: pydantic's error (it quotes the input) is not chained.
    printed = "".join(traceback.format_exception(error.value))
    assert password not in printed and error.value.__cause__ is None


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:S3cretPw@127.0.0.1:5432/postgres",
        "postgres://postgres:S3cretPw@127.0.0.1:5432/postgres?sslmode=require",
        "postgresql://postgres:my%20secret%40home%2F%25@127.0.0.1:5432/postgres",  # encoded
        # libpq and RFC 3986 read these as meant: the first `:` splits user and password, and
        # libpq keeps `#` and `'` in a password (they need no encoding, though encoding works).
        "postgresql://postgres:pa:ss@127.0.0.1:5432/postgres",
        "postgresql://postgres:pa#ss@127.0.0.1:5432/postgres",
        "postgresql://postgres:it's@127.0.0.1:5432/postgres",
        # libpq's key=value form, as psycopg's make_conninfo writes it.
        "user=postgres dbname=test host=127.0.0.1 port=5432",
        "host=127.0.0.1 dbname=postgres password='my secret'",
    ],
)
def test_well_formed_db_urls_are_accepted(monkeypatch, url) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", url)
    assert load_settings().supabase_db_url.get_secret_value() == url


ANON_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl"  # {"role":"anon"}
SERVICE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "is empty"),
        ("sb_secret_Abc123\n", "line break"),
        ("sb_secret_Abc 123", "a space"),
        ("sb_secret_Abc123é", "non-ASCII"),
        ("sb_publishable_Abc123", "is a publishable key"),
        (ANON_JWT, "is the legacy anon key"),
        (SERVICE_JWT.rsplit(".", 1)[0], "lacks one of its three parts"),
    ],
)
def test_a_service_role_key_that_cannot_be_one_is_refused(monkeypatch, key, problem) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://abcdefghijkl.supabase.co")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
    with pytest.raises(SettingsError) as error:
        load_settings()

    message = str(error.value)
    assert "SUPABASE_SERVICE_ROLE_KEY: " in message and problem in message
    assert "expected the project's secret key (sb_secret_...)" in message
    assert not key or key.strip()[-6:] not in message


@pytest.mark.parametrize("key", ["sb_secret_Abc123-_xyz", SERVICE_JWT, "a-self-hosted-key"])
def test_secret_keys_and_service_role_jwts_are_accepted(monkeypatch, key) -> None:
    monkeypatch.setenv("SUPABASE_URL", "https://abcdefghijkl.supabase.co")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
    assert load_settings().warehouse_backend == "rest"


def test_an_smtp_password_may_have_spaces_but_not_a_line_break(monkeypatch) -> None:
    # Google shows app passwords in groups of four: the spaces are kept as typed.
    monkeypatch.setenv("ASX_SMTP_PASSWORD", "abcd efgh ijkl mnop ")
    assert load_settings().asx_smtp_password.get_secret_value() == "abcd efgh ijkl mnop "
    monkeypatch.setenv("ASX_SMTP_PASSWORD", "Sm7pPassw0rd\n")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "ASX_SMTP_PASSWORD: " in str(error.value) and "line break" in str(error.value)
    assert "Sm7pPassw0rd" not in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "htps://hooks.slack.com/services/T000/B000/T0kenT0ken",
        "hooks.slack.com/services/T000/B000/T0kenT0ken",
        "https://hooks.slack.com:99999/services/T000/B000/T0kenT0ken",
        "ftp://discord.com/api/webhooks/1/T0kenT0ken",
    ],
)
def test_an_invalid_webhook_url_is_named_but_its_token_never_shown(monkeypatch, url) -> None:
    monkeypatch.setenv("ASX_ALERT_WEBHOOK_URL", url)
    with pytest.raises(SettingsError) as error:
        load_settings()

    assert "ASX_ALERT_WEBHOOK_URL: " in str(error.value)
    # pydantic's own str() of the error quotes the input (`input_value=...`); ours does not.
    assert "T0kenT0ken" not in "".join(traceback.format_exception(error.value))


def test_a_valid_webhook_url_stays_out_of_the_settings_repr(monkeypatch) -> None:
    monkeypatch.setenv("ASX_ALERT_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/T0kenT0ken")
    settings = load_settings()
    assert str(settings.asx_alert_webhook_url).endswith("T0kenT0ken")
    assert "T0kenT0ken" not in repr(settings)


def test_report_email_is_a_comma_list_of_addresses(monkeypatch) -> None:
    assert load_settings().asx_report_email is None
    monkeypatch.setenv("ASX_REPORT_EMAIL", " ops@example.com, Team@Example.ORG ,")
    # Trimmed, a trailing comma ignored; the domain is normalised as the mail system sees it.
    assert load_settings().asx_report_email == ["ops@example.com", "Team@example.org"]
    monkeypatch.setenv("ASX_REPORT_EMAIL", "")
    assert load_settings().asx_report_email is None
    assert load_settings(asx_report_email="me@example.com").asx_report_email == ["me@example.com"]


@pytest.mark.parametrize(
    ("value", "bad"),
    [
        ("ops@example.com,not-an-address", "'not-an-address'"),
        ("ops@example.com;me@example.com", "'ops@example.com;me@example.com'"),
        ("ops@", "'ops@'"),
    ],
)
def test_a_report_email_that_is_no_address_is_named_without_secrets(
    monkeypatch, value, bad
) -> None:
    monkeypatch.setenv("ASX_SMTP_PASSWORD", "Sm7pPassw0rd")
    monkeypatch.setenv("ASX_REPORT_EMAIL", value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    (line,) = [line for line in str(error.value).splitlines() if "ASX_REPORT_EMAIL" in line]
    assert line.startswith(f"  ASX_REPORT_EMAIL: Value error, {bad} is not an email address (")
    assert line.endswith("expected one or more email addresses separated by commas")
    assert "Sm7pPassw0rd" not in "".join(traceback.format_exception(error.value))


def test_celery_needs_a_broker_and_never_echoes_its_url(monkeypatch) -> None:
    monkeypatch.setenv("ASX_EXECUTOR", "celery")
    with pytest.raises(SettingsError, match="needs ASX_CELERY_BROKER_URL"):
        load_settings()
    # A password with an unencoded space: refused by name, the password never quoted.
    monkeypatch.setenv("ASX_CELERY_BROKER_URL", "redis://:open sesame@127.0.0.1:6379/0")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "ASX_CELERY_BROKER_URL: " in str(error.value)
    assert "sesame" not in str(error.value)
    monkeypatch.setenv("ASX_CELERY_BROKER_URL", "http://127.0.0.1:6379/0")
    with pytest.raises(SettingsError, match="does not start with one of redis://"):
        load_settings()


def test_celery_refuses_duckdb_unless_every_worker_is_on_this_box(monkeypatch) -> None:
    monkeypatch.setenv("ASX_EXECUTOR", "celery")
    monkeypatch.setenv("ASX_CELERY_BROKER_URL", "redis://:pw@10.0.0.5:6379/0")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "cannot share the embedded DuckDB warehouse" in str(error.value)
    assert "SUPABASE_DB_URL" in str(error.value) and "pw@" not in str(error.value)
    # The same remote broker with Postgres, and a broker on this box with DuckDB, are fine.
    monkeypatch.setenv("SUPABASE_DB_URL", "postgresql://u:p@db.example.com:5432/postgres")
    assert load_settings().asx_executor == "celery"
    monkeypatch.delenv("SUPABASE_DB_URL")
    for local in ("redis://127.0.0.1:6379/0", "amqp://guest:guest@localhost:5672//"):
        monkeypatch.setenv("ASX_CELERY_BROKER_URL", local)
        assert load_settings().warehouse_backend == "duckdb"

