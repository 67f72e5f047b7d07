#!/usr/bin/env bash
# Install (or upgrade) asx-pipeline as two systemd services on one Ubuntu 24.04 box:
# dagster-webserver (UI on 127.0.0.1:3000) and dagster-daemon (schedules, sensors, backfills),
# plus a liveness check every 5 minutes. Safe to run again: every step is idempotent, and a rerun
# after `git pull` is the upgrade. See deploy/README.md.
#
#   sudo deploy/install.sh                      # the real thing (needs the env file first)
#   deploy/install.sh --dry-run                 # print what would be done, change nothing
#   deploy/install.sh --prefix /tmp/root --venv .venv --no-systemd   # a staging root (tests)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICE_USER=asx
PREFIX=""
ENV_FILE=""
EXISTING_VENV=""
PYTHON=python3
DRY_RUN=0
USE_SYSTEMD=1
WORKER_ONLY=0
UNITS=(dagster-webserver.service dagster-daemon.service dagster-daemon-health.service
       dagster-daemon-health.timer dagster-daemon-restart.service dagster-celery-worker.service)

usage() {
  cat <<EOF
Usage: sudo $0 [options]

Installs asx-pipeline under /opt/asx-pipeline (code, virtualenv), /var/lib/asx-pipeline
(DAGSTER_HOME, DuckDB warehouse, reports) and /etc/systemd/system (units), as user '$SERVICE_USER'.

Options:
  --env-file PATH  the settings file the services read (default /etc/asx-pipeline/asx-pipeline.env);
                   it must exist and be mode 0600: copy deploy/env.example there and fill it in
  --prefix DIR     install under DIR as if it were / (a staging root: no user is created, nothing
                   is chowned, systemctl is not run); the units then name paths under DIR
  --user NAME      the service user (default $SERVICE_USER)
  --venv DIR       use this existing virtualenv, which already has asx-pipeline installed,
                   instead of creating and upgrading /opt/asx-pipeline/venv
  --python PATH    the Python (3.11 or 3.12) that creates the virtualenv (default python3)
  --worker-only    an extra box for ASX_EXECUTOR=celery: install and start only the Celery
                   worker (dagster-celery-worker.service), no webserver or daemon
  --no-systemd     write the units but do not run systemctl
  --dry-run        print every step, change nothing
  -h, --help       this text
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
note() { echo "==> $*"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --env-file) ENV_FILE="${2:?--env-file needs a path}"; shift 2 ;;
    --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
    --user) SERVICE_USER="${2:?--user needs a name}"; shift 2 ;;
    --venv) EXISTING_VENV="${2:?--venv needs a folder}"; shift 2 ;;
    --python) PYTHON="${2:?--python needs a path}"; shift 2 ;;
    --no-systemd) USE_SYSTEMD=0; shift ;;
    --worker-only) WORKER_ONLY=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

[[ $WORKER_ONLY == 1 ]] && UNITS=(dagster-celery-worker.service)
if [[ -n "$PREFIX" ]]; then
  mkdir -p "$PREFIX" 2>/dev/null || [[ $DRY_RUN == 1 ]] || die "cannot create --prefix $PREFIX"
  PREFIX="$(cd "$PREFIX" 2>/dev/null && pwd || echo "$PREFIX")"
  USE_SYSTEMD=0
fi
APP_DIR="$PREFIX/opt/asx-pipeline"
STATE_DIR="$PREFIX/var/lib/asx-pipeline"
DAGSTER_HOME_DIR="$STATE_DIR/dagster_home"
DATA_DIR="$STATE_DIR/data"
UNIT_DIR="$PREFIX/etc/systemd/system"
ENV_FILE="${ENV_FILE:-$PREFIX/etc/asx-pipeline/asx-pipeline.env}"
if [[ -n "$EXISTING_VENV" ]]; then
  VENV="$(cd "$EXISTING_VENV" 2>/dev/null && pwd)" || die "--venv $EXISTING_VENV: no such folder"
else
  VENV="$APP_DIR/venv"
fi
# Only a real install (no staging root) as root manages users, owners and systemd.
MANAGE_SYSTEM=0
[[ -z "$PREFIX" && $EUID -eq 0 ]] && MANAGE_SYSTEM=1

# Print a command, and run it unless this is a dry run.
run() {
  echo "+ $*"
  [[ $DRY_RUN == 1 ]] || "$@"
}

# The value of KEY in the env file, quotes removed ("" when unset or empty). Never printed.
env_value() {
  local line
  line="$(grep -E "^[[:space:]]*$1[[:space:]]*=" "$ENV_FILE" | tail -n 1 || true)"
  line="${line#*=}"
  line="${line#"${line%%[![:space:]]*}"}"
  line="${line%"${line##*[![:space:]]}"}"
  line="${line%\"}"; line="${line#\"}"; line="${line%\'}"; line="${line#\'}"
  printf '%s' "$line"
}

# Write stdin to PATH with MODE, only when the content changed (so a rerun changes nothing).
write_file() {
  local path="$1" mode="$2" tmp
  tmp="$(mktemp)"
  cat >"$tmp"
  if [[ -f "$path" ]] && cmp -s "$tmp" "$path"; then
    echo "  unchanged: $path"
    rm -f "$tmp"
    return
  fi
  echo "  writing:   $path (mode $mode)"
  if [[ $DRY_RUN == 1 ]]; then
    rm -f "$tmp"
  else
    install -m "$mode" "$tmp" "$path"
    rm -f "$tmp"
  fi
}

# --- 1. the env file: present and private, or nothing happens ---------------------------------
if [[ ! -f "$ENV_FILE" ]]; then
  die "the env file $ENV_FILE does not exist.
  Create it from the example, fill it in, and make it private:
    sudo install -D -m 0600 $REPO/deploy/env.example $ENV_FILE
    sudo editor $ENV_FILE
  then run this script again. Nothing was changed."
fi
ENV_MODE="$(stat -c '%a' "$ENV_FILE")"
if (( 8#$ENV_MODE & 8#077 )); then
  die "the env file $ENV_FILE is readable or writable by other users (mode $ENV_MODE).
  It holds passwords and keys; make it private with:
    sudo chmod 600 $ENV_FILE
  then run this script again. Nothing was changed."
fi
if [[ $WORKER_ONLY == 1 && "$(env_value ASX_EXECUTOR)" != celery ]]; then
  die "--worker-only installs a Celery worker, which needs ASX_EXECUTOR=celery and
  ASX_CELERY_BROKER_URL in $ENV_FILE (the same settings as the daemon's box). Nothing was changed."
fi
if [[ $DRY_RUN == 0 && -z "$PREFIX" && $EUID -ne 0 ]]; then
  die "run as root (sudo $0), or use --dry-run, or --prefix DIR for a staging root."
fi
[[ $DRY_RUN == 1 ]] && note "dry run: nothing below is changed"

# --- 2. the service user and folders ------------------------------------------------------------
note "service user '$SERVICE_USER'"
if [[ $MANAGE_SYSTEM == 1 ]]; then
  if getent passwd "$SERVICE_USER" >/dev/null; then
    echo "  exists"
  else
    run useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "asx-pipeline services" "$SERVICE_USER"
  fi
else
  echo "  skipped (staging root or not root): the units still run as '$SERVICE_USER'"
fi

note "folders"
run install -d -m 0755 "$APP_DIR" "$APP_DIR/config" "$UNIT_DIR"
run install -d -m 0750 "$STATE_DIR" "$DAGSTER_HOME_DIR" "$DATA_DIR"
if [[ $MANAGE_SYSTEM == 1 ]]; then
  run chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR" "$DAGSTER_HOME_DIR" "$DATA_DIR"
fi

# --- 3. the code: a virtualenv with the project, its config and the deploy guide ---------------
note "virtualenv $VENV"
if [[ -n "$EXISTING_VENV" ]]; then
  [[ -x "$VENV/bin/dagster-daemon" && -x "$VENV/bin/asx-pipeline" ]] \
    || die "--venv $VENV has no dagster-daemon or asx-pipeline: pip install the project into it"
  echo "  using the existing virtualenv as it is"
else
  [[ -x "$VENV/bin/python" ]] || run "$PYTHON" -m venv "$VENV"
  run "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # Dependencies first, then the project itself forced in again: its version number does not
  # change between commits, and pip would otherwise keep the old code on an upgrade.
  run "$VENV/bin/python" -m pip install --quiet "$REPO"
  run "$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall "$REPO"
fi
for file in "$REPO"/config/*; do
  write_file "$APP_DIR/config/$(basename "$file")" 0644 <"$file"
done
write_file "$APP_DIR/README.md" 0644 <"$REPO/deploy/README.md"

# --- 4. DAGSTER_HOME with the production instance settings ------------------------------------
note "DAGSTER_HOME $DAGSTER_HOME_DIR"
if [[ -n "$(env_value DAGSTER_PG_HOST)" ]]; then
  echo "  instance on Postgres (DAGSTER_PG_HOST is set): deploy/dagster.yaml"
  INSTANCE_YAML="$REPO/deploy/dagster.yaml"
else
  echo "  DAGSTER_PG_HOST is not set: the instance stays in SQLite files under DAGSTER_HOME"
  echo "  (the repo's dagster.yaml); set DAGSTER_PG_* and rerun to move it to Postgres"
  INSTANCE_YAML="$REPO/dagster.yaml"
fi
[[ -f "$INSTANCE_YAML" ]] || die "$INSTANCE_YAML is missing from the clone"
write_file "$DAGSTER_HOME_DIR/dagster.yaml" 0640 <"$INSTANCE_YAML"
if [[ $MANAGE_SYSTEM == 1 && $DRY_RUN == 0 ]]; then
  chown "root:$SERVICE_USER" "$DAGSTER_HOME_DIR/dagster.yaml"
fi

# --- 5. the units, placeholders filled in -------------------------------------------------------
note "systemd units in $UNIT_DIR"
for unit in "${UNITS[@]}"; do
  rendered="$(sed \
    -e "s|@USER@|$SERVICE_USER|g" \
    -e "s|@GROUP@|$SERVICE_USER|g" \
    -e "s|@APP_DIR@|$APP_DIR|g" \
    -e "s|@VENV@|$VENV|g" \
    -e "s|@STATE_DIR@|$STATE_DIR|g" \
    -e "s|@DAGSTER_HOME@|$DAGSTER_HOME_DIR|g" \
    -e "s|@DATA_DIR@|$DATA_DIR|g" \
    -e "s|@ENV_FILE@|$ENV_FILE|g" \
    "$REPO/deploy/systemd/$unit")"
  if grep -qE '@[A-Z_]+@' <<<"$rendered"; then
    die "$unit still has a placeholder: $(grep -oE '@[A-Z_]+@' <<<"$rendered" | sort -u | xargs)"
  fi
  write_file "$UNIT_DIR/$unit" 0644 <<<"$rendered"
done

# --- 6. warehouse migrations, when Supabase is the warehouse ------------------------------------
note "warehouse migrations"
if [[ -n "$(env_value SUPABASE_DB_URL)" ]]; then
  # The env file is also valid shell (deploy/env.example says how to quote); it is sourced in a
  # subshell so its secrets never reach this script's own environment or output.
  as_user=()
  [[ $MANAGE_SYSTEM == 1 ]] && as_user=(runuser -u "$SERVICE_USER" --)
  echo "+ (load $ENV_FILE) ${as_user[*]} $VENV/bin/asx-pipeline db migrate"
  if [[ $DRY_RUN == 0 ]]; then
    (
      set -a
      # shellcheck disable=SC1090
      . "$ENV_FILE"
      set +a
      export DAGSTER_HOME="$DAGSTER_HOME_DIR" ASX_DATA_DIR="${ASX_DATA_DIR:-$DATA_DIR}"
      cd "$APP_DIR"
      "${as_user[@]}" "$VENV/bin/asx-pipeline" db migrate
    ) || die "asx-pipeline db migrate failed (see above); the services were not (re)started"
  fi
else
  echo "  skipped: SUPABASE_DB_URL is not set (REST-only Supabase needs the migrations applied"
  echo "  once from a machine with a Postgres connection; DuckDB needs none)"
fi

# --- 7. enable and (re)start ------------------------------------------------------------------
note "services"
if [[ $USE_SYSTEMD == 1 && -d /run/systemd/system ]]; then
  run systemctl daemon-reload
  if [[ $WORKER_ONLY == 0 ]]; then
    run systemctl enable dagster-webserver.service dagster-daemon.service dagster-daemon-health.timer
    # restart (not start): an upgrade must load the new code; it starts a stopped service too.
    run systemctl restart dagster-webserver.service dagster-daemon.service
    run systemctl restart dagster-daemon-health.timer
  fi
  # Workers load the code of every step they run: restarted with each upgrade, like the daemon.
  if [[ "$(env_value ASX_EXECUTOR)" == celery ]]; then
    run systemctl enable dagster-celery-worker.service
    run systemctl restart dagster-celery-worker.service
  else
    echo "  dagster-celery-worker.service written, not enabled (ASX_EXECUTOR is not celery)"
  fi
else
  echo "  systemctl skipped (--no-systemd, a staging root, or no systemd running)"
fi

cat <<EOF

Done. Schedules and sensors are on by default (DefaultScheduleStatus.RUNNING in
asx_pipeline/schedules.py): the daemon starts the daily refresh at ASX_DAILY_REFRESH_TIME.
  status:  systemctl status dagster-webserver dagster-daemon
  logs:    journalctl -u dagster-daemon -f
  UI:      ssh -N -L 3000:127.0.0.1:3000 <this box>, then open http://127.0.0.1:3000
EOF
