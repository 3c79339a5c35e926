#!/usr/bin/env bash
# A throwaway PostgreSQL server for the UMS store tests, on a loopback port.
#
#   eval "$(scripts/postgres.sh start)"   # installs Debian's postgresql if missing, starts a
#                                         # cluster in a temp dir, prints `export AMIUP_TEST_PG=...`
#   scripts/postgres.sh url               # the URL again, if the server is running
#   scripts/postgres.sh stop              # stops it and removes the cluster
#
# Idempotent: `start` on a running cluster only prints the export line. The cluster runs as
# the `postgres` user when invoked as root (PostgreSQL refuses to run as root). Auth is `trust`
# on 127.0.0.1 only: this is a test fixture, never a production setup.
set -euo pipefail

DIR="${AMIUP_PG_DIR:-${TMPDIR:-/tmp}/amiup-pg}"
PORT="${AMIUP_PG_PORT:-54329}"
DB="amiup"
USER_NAME="amiup"

log() { echo "postgres.sh: $*" >&2; }

bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

install_pg() {
  if bindir >/dev/null; then return 0; fi
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "PostgreSQL is not installed and I cannot apt-get install it (need root + Debian)"
    exit 3
  fi
  log "installing Debian's postgresql (once)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
  bindir >/dev/null || { log "postgresql installed but initdb not found"; exit 3; }
}

# Run a command as the cluster owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

url() { echo "postgresql+psycopg://${USER_NAME}@127.0.0.1:${PORT}/${DB}"; }

running() {
  [ -f "$DIR/data/postmaster.pid" ] && as_owner "$(bindir)/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

start() {
  install_pg
  local bin
  bin="$(bindir)"
  if ! running; then
    if [ ! -f "$DIR/data/PG_VERSION" ]; then
      rm -rf "$DIR"
      mkdir -p "$DIR"
      chmod 700 "$DIR"
      if [ "$(id -u)" -eq 0 ]; then chown postgres: "$DIR"; fi
      as_owner "$bin/initdb" -D "$DIR/data" -U "$USER_NAME" -A trust -E UTF8 --no-locale \
        >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; exit 3; }
    fi
    as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      start >/dev/null || { tail -20 "$DIR/server.log" >&2; exit 3; }
    if ! as_owner "$bin/psql" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1; then
      as_owner "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" "$DB"
    fi
  fi
  echo "export AMIUP_TEST_PG=$(url)"
}

stop() {
  if bindir >/dev/null && [ -d "$DIR/data" ]; then
    as_owner "$(bindir)/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$DIR"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  url) running && url || { log "not running"; exit 3; } ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
