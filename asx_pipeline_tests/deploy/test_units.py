"""The systemd unit templates and the env example: what a careful admin would check by eye."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asx_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "deploy" / "systemd"
SERVICES = ("dagster-webserver.service", "dagster-daemon.service", "dagster-celery-worker.service")
HARDENING = {
    "CapabilityBoundingSet": "",
    "PrivateUsers": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ReadWritePaths": "@STATE_DIR@",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
}


def directives(path: Path) -> dict[str, list[str]]:
    """`Section.Key` -> every value it is given (systemd repeats keys such as Environment=)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def one(units: dict[str, list[str]], key: str) -> str:
    values = units.get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


@pytest.mark.parametrize("name", SERVICES)
def test_services_run_as_their_user_with_env_file_restart_journald_and_hardening(name) -> None:
    unit = directives(SYSTEMD / name)
    assert one(unit, "Service.User") == "@USER@"
    assert one(unit, "Service.EnvironmentFile") == "@ENV_FILE@"
    assert "DAGSTER_HOME=@DAGSTER_HOME@" in unit["Service.Environment"]
    assert "ASX_DATA_DIR=@DATA_DIR@" in unit["Service.Environment"]
    assert one(unit, "Service.Restart") == "on-failure"
    assert one(unit, "Service.StandardOutput") == "journal"
    assert one(unit, "Service.StandardError") == "journal"
    for key, value in HARDENING.items():
        assert one(unit, f"Service.{key}") == value, key
    assert one(unit, "Install.WantedBy") == "multi-user.target"
    assert one(unit, "Service.ExecStart").startswith("@VENV@/bin/")


def test_webserver_listens_on_loopback_port_3000_only() -> None:
    command = one(directives(SYSTEMD / "dagster-webserver.service"), "Service.ExecStart")
    assert "--host 127.0.0.1" in command
    assert "--port 3000" in command
    assert "--module-name asx_pipeline.definitions" in command


def test_daemon_loads_the_same_code_location_as_the_webserver() -> None:
    command = one(directives(SYSTEMD / "dagster-daemon.service"), "Service.ExecStart")
    assert command == "@VENV@/bin/dagster-daemon run --module-name asx_pipeline.definitions"


def test_celery_worker_runs_the_projects_worker_command_with_the_same_settings() -> None:
    worker = directives(SYSTEMD / "dagster-celery-worker.service")
    daemon = directives(SYSTEMD / "dagster-daemon.service")
    assert one(worker, "Service.ExecStart") == "@VENV@/bin/asx-pipeline worker"
    for key in ("Service.Environment", "Service.EnvironmentFile", "Service.WorkingDirectory"):
        assert worker[key] == daemon[key], key
    # A warm shutdown lets the steps in progress finish their one-transaction writes.
    assert int(one(worker, "Service.TimeoutStopSec")) >= 120


def test_health_check_uses_liveness_check_on_a_timer_and_restarts_the_daemon() -> None:
    health = directives(SYSTEMD / "dagster-daemon-health.service")
    assert one(health, "Service.ExecStart") == "@VENV@/bin/dagster-daemon liveness-check"
    assert one(health, "Service.User") == "@USER@"
    assert one(health, "Unit.OnFailure") == "dagster-daemon-restart.service"
    for key, value in HARDENING.items():
        assert one(health, f"Service.{key}") == value, key
    timer = directives(SYSTEMD / "dagster-daemon-health.timer")
    assert one(timer, "Timer.Unit") == "dagster-daemon-health.service"
    assert one(timer, "Timer.OnUnitActiveSec") == "5min"
    restart = directives(SYSTEMD / "dagster-daemon-restart.service")
    assert one(restart, "Service.ExecStart") == "/usr/bin/systemctl restart dagster-daemon.service"


def test_templates_name_no_machine_path() -> None:
    for path in SYSTEMD.iterdir():
        text = "\n".join(
            line for line in path.read_text().splitlines() if not line.startswith("#")
        )
        for machine_path in ("/home/", "/root", "/work/", "/tmp", "/opt/", "/var/lib/", "/etc/asx"):
            assert machine_path not in text, f"{path.name} hard-codes {machine_path}"
        for command in directives(path).get("Service.ExecStart", []):
            assert command.startswith(("@VENV@/", "/usr/bin/systemctl ")), command


def test_units_pass_systemd_analyze_verify_once_installed(tmp_path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    installed = _install(tmp_path)
    assert [path.name for path in installed] == sorted(path.name for path in SYSTEMD.iterdir())
    verified = subprocess.run(
        [analyze, "verify", *map(str, installed)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The tool really checks (no systemd needs to be running): a broken unit is refused.
    broken = tmp_path / "broken.service"
    broken.write_text("[Service]\nExecStart=/nonexistent/bin/dagster\n")
    refused = subprocess.run([analyze, "verify", str(broken)], capture_output=True, timeout=60)
    assert refused.returncode != 0


MAX_EXPOSURE = 3.0  # systemd-analyze security: 0 is fully locked down, 10 is unprotected


def _install(tmp_path: Path) -> list[Path]:
    """The units as deploy/install.sh renders them under a scratch prefix."""
    root = tmp_path / "root"
    env_file = root / "etc" / "asx-pipeline" / "asx-pipeline.env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text("ASX_MARKET_DATA=sample\n")
    env_file.chmod(0o600)
    venv = Path(sys.executable).parent.parent
    subprocess.run(
        ["bash", str(REPO / "deploy" / "install.sh"), "--prefix", str(root), "--venv", str(venv)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return sorted((root / "etc" / "systemd" / "system").iterdir())


def test_rendered_services_score_at_most_three_in_systemd_analyze_security(tmp_path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    installed = {path.name: path for path in _install(tmp_path)}
    scores = {}
    for name in (*SERVICES, "dagster-daemon-health.service"):
        shown = subprocess.run(
            [analyze, "security", "--offline=yes", str(installed[name])],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", shown.stdout)
        assert found, shown.stdout + shown.stderr
        scores[name] = float(found.group(1))
    print(f"systemd-analyze security: {scores}")
    assert all(score <= MAX_EXPOSURE for score in scores.values()), scores
    # The tool really scores: the same service without its hardening is rated exposed.
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nExecStart=/usr/bin/true\n")
    shown = subprocess.run(
        [analyze, "security", "--offline=yes", str(bare)], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", shown.stdout)
    assert found and float(found.group(1)) > MAX_EXPOSURE


def test_env_example_documents_every_setting_without_real_secrets() -> None:
    text = (REPO / "deploy" / "env.example").read_text()
    names = {name.upper() for name in Settings.model_fields}
    # The production instance (deploy/dagster.yaml) reads its Postgres settings from the env too.
    instance_yaml = REPO / "deploy" / "dagster.yaml"
    if instance_yaml.exists():
        names |= set(re.findall(r"env:\s*(\w+)", instance_yaml.read_text()))
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert names <= documented, sorted(names - documented)
    # systemd's EnvironmentFile= format: no `export`, and every setting line is KEY=value.
    assert not re.search(r"^\s*export ", text, flags=re.MULTILINE)
    for key in ("PASSWORD", "KEY", "DB_URL"):
        for line in re.findall(rf"^#?\w*{key}\w*=.*$", text, flags=re.MULTILINE):
            value = line.partition("=")[2]
            assert not value or re.search(r"your-|change-me|example", value), line
    # DAGSTER_HOME is the units' business (ReadWritePaths covers it), not the env file's.
    assert not re.search(r"^DAGSTER_HOME=", text, flags=re.MULTILINE)
