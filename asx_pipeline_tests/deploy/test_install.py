"""deploy/install.sh in a throwaway root folder: refusals, what it writes, and a rerun that changes
nothing. `--prefix` stages the install under a folder (no user, no chown, no systemctl) and
`--venv` reuses this test's virtualenv, so no root, no systemd and no network are needed."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "install.sh"
VENV = Path(sys.executable).parent.parent
UNITS = sorted(path.name for path in (REPO / "deploy" / "systemd").iterdir())
SECRET = "s3cret-value-that-must-not-be-printed"


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INSTALL), "--prefix", str(root), *args],
        capture_output=True, text=True, timeout=120,
    )


def env_file(root: Path, content: str = "ASX_MARKET_DATA=sample\n", mode: int = 0o600) -> Path:
    path = root / "etc" / "asx-pipeline" / "asx-pipeline.env"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(mode)
    return path


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under root: content, mode and modification time."""
    files = (path for path in sorted(root.rglob("*")) if path.is_file())
    return {
        str(path.relative_to(root)): (
            path.read_bytes(), path.stat().st_mode, path.stat().st_mtime_ns
        )
        for path in files
    }


def test_refuses_without_an_env_file_and_changes_nothing(tmp_path) -> None:
    root = tmp_path / "root"
    result = install(root, "--venv", str(VENV))
    assert result.returncode != 0
    assert "asx-pipeline.env does not exist" in result.stderr
    assert "install -D -m 0600" in result.stderr and "env.example" in result.stderr
    assert not (root / "opt").exists() and not (root / "etc" / "systemd").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o606])
def test_refuses_an_env_file_other_users_can_read_or_write(tmp_path, mode) -> None:
    root = tmp_path / "root"
    path = env_file(root, mode=mode)
    result = install(root, "--venv", str(VENV))
    assert result.returncode != 0
    assert f"mode {mode:o}" in result.stderr
    assert f"chmod 600 {path}" in result.stderr
    assert "Nothing was changed" in result.stderr
    assert not (root / "opt").exists() and not (root / "var").exists()


def test_installs_units_with_placeholders_filled_and_a_rerun_changes_nothing(tmp_path) -> None:
    root = tmp_path / "root"
    env_path = env_file(root)
    first = install(root, "--venv", str(VENV))
    assert first.returncode == 0, first.stdout + first.stderr

    state = root / "var" / "lib" / "asx-pipeline"
    unit_dir = root / "etc" / "systemd" / "system"
    assert sorted(path.name for path in unit_dir.iterdir()) == UNITS
    daemon = (unit_dir / "dagster-daemon.service").read_text()
    webserver = (unit_dir / "dagster-webserver.service").read_text()
    for text in (daemon, webserver):
        assert not re.search(r"@[A-Z_]+@", text)
        assert "User=asx\n" in text and "Group=asx\n" in text
        assert f"EnvironmentFile={env_path}\n" in text
        assert f"Environment=DAGSTER_HOME={state / 'dagster_home'}\n" in text
        assert f"Environment=ASX_DATA_DIR={state / 'data'}\n" in text
        assert f"ReadWritePaths={state}\n" in text
        assert f"WorkingDirectory={root / 'opt' / 'asx-pipeline'}\n" in text
    module = "--module-name asx_pipeline.definitions"
    assert f"ExecStart={VENV}/bin/dagster-daemon run {module}\n" in daemon
    assert f"ExecStart={VENV}/bin/dagster-webserver --host 127.0.0.1 --port 3000" in webserver
    for unit in UNITS:
        assert stat.S_IMODE((unit_dir / unit).stat().st_mode) == 0o644

    # DAGSTER_HOME's instance settings: SQLite (the repo's dagster.yaml) without DAGSTER_PG_*.
    instance_yaml = state / "dagster_home" / "dagster.yaml"
    assert instance_yaml.read_text() == (REPO / "dagster.yaml").read_text()
    assert stat.S_IMODE(instance_yaml.stat().st_mode) == 0o640
    for folder in (state, state / "dagster_home", state / "data"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    app = root / "opt" / "asx-pipeline"
    assert (app / "config" / "screeners.yml").read_text() == (
        REPO / "config" / "screeners.yml"
    ).read_text()
    assert "migrations" in first.stdout and "SUPABASE_DB_URL is not set" in first.stdout
    assert "systemctl skipped" in first.stdout

    before = snapshot(root)
    second = install(root, "--venv", str(VENV))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "writing:" not in second.stdout
    assert second.stdout.count("unchanged:") == len(UNITS) + 3  # + config, README, dagster.yaml
    assert snapshot(root) == before


def test_postgres_instance_settings_when_dagster_pg_host_is_set(tmp_path) -> None:
    production_yaml = REPO / "deploy" / "dagster.yaml"
    if not production_yaml.exists():
        pytest.skip("deploy/dagster.yaml (the production instance settings) is not written yet")
    root = tmp_path / "root"
    env_file(root, "DAGSTER_PG_HOST=127.0.0.1\nDAGSTER_PG_DB=dagster\n")
    result = install(root, "--venv", str(VENV))
    assert result.returncode == 0, result.stdout + result.stderr
    installed = root / "var" / "lib" / "asx-pipeline" / "dagster_home" / "dagster.yaml"
    assert installed.read_text() == production_yaml.read_text()


def test_dry_run_shows_venv_and_migration_steps_without_changing_or_printing_secrets(
    tmp_path,
) -> None:
    root = tmp_path / "root"
    env_file(root, f"SUPABASE_DB_URL='postgresql://postgres:{SECRET}@db.example.com:5432/postgres'\n")
    result = install(root, "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    venv = root / "opt" / "asx-pipeline" / "venv"
    assert f"+ python3 -m venv {venv}" in result.stdout
    assert f"+ {venv}/bin/python -m pip install --quiet {REPO}" in result.stdout
    assert f"{venv}/bin/asx-pipeline db migrate" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert "dry run" in result.stdout
    # Only the env file the test wrote is there: nothing was created.
    assert [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()] == [
        "etc/asx-pipeline/asx-pipeline.env"
    ]


def test_worker_only_installs_the_celery_worker_alone_and_needs_celery_settings(tmp_path) -> None:
    root = tmp_path / "root"
    env_file(root)
    refused = install(root, "--venv", str(VENV), "--worker-only")
    assert refused.returncode != 0 and "needs ASX_EXECUTOR=celery" in refused.stderr
    assert not (root / "etc" / "systemd").exists()
    env_file(root, "ASX_EXECUTOR=celery\nASX_CELERY_BROKER_URL=redis://:pw@10.0.0.5:6379/0\n")
    done = install(root, "--venv", str(VENV), "--worker-only")
    assert done.returncode == 0, done.stdout + done.stderr
    unit_dir = root / "etc" / "systemd" / "system"
    assert [path.name for path in unit_dir.iterdir()] == ["dagster-celery-worker.service"]
    assert f"ExecStart={VENV}/bin/asx-pipeline worker\n" in (
        unit_dir / "dagster-celery-worker.service"
    ).read_text()
    assert "pw@" not in done.stdout + done.stderr


def test_help_lists_the_options() -> None:
    result = subprocess.run(["bash", str(INSTALL), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for option in ("--env-file", "--prefix", "--venv", "--no-systemd", "--dry-run", "--user",
                   "--worker-only"):
        assert option in result.stdout
