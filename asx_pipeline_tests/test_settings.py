"""Settings fail at load with the variable's name and what was expected, never its value."""

import datetime as dt

import pytest

from asx_pipeline.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path) -> None:
    # A developer's own .env or exported variables must not leak into these tests.
    monkeypatch.chdir(tmp_path)
    for name in ("ASX_MARKET_DATA", "ASX_UNIVERSE", "ASX_START_DATE", "SUPABASE_DB_URL",
                 "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "ASX_SAMPLE_SYMBOLS"):
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
