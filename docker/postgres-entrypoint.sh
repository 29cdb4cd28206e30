#!/bin/sh
# The postgres image's entrypoint contract, in short: init PGDATA once with POSTGRES_USER
# (default postgres), POSTGRES_PASSWORD and POSTGRES_DB, then exec postgres as postgres.
#
# The image comes with PGDATA already initialised for the settings of its build arguments
# (the docker backend's: see postgres.Dockerfile), marked with a key of those settings: a
# container started with the same settings skips initdb (1-1.5 s of CPU, 5-6 s when four
# xdist workers start their stacks at once). Other settings get a fresh initdb, as before.
set -eu
case "${1:-postgres}" in -*) set -- postgres "$@" ;; esac
if [ "$1" != postgres ] && [ "$1" != bake ]; then exec "$@"; fi
if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  # only what postgres does not own yet (as the public image does): on overlayfs a chown of the
  # baked data would copy every file up into the container
  find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
  chmod 700 "$PGDATA"
  exec runuser -u postgres -- "$0" "$@"
fi
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
key=$(printf '%s\n' "$user" "$db" "$auth" "${POSTGRES_PASSWORD:-}" | sha256sum | cut -c1-32)
mark="$PGDATA/.sessionstorm-baked"
# the image's own data, made for other settings and never served (postgres writes postmaster.opts at
# every start): replaced by an initdb for these. Data a server ran on is never touched.
if [ -f "$mark" ] && [ "$(cat "$mark")" != "$key" ] && [ ! -e "$PGDATA/postmaster.opts" ]; then
  find "$PGDATA" -mindepth 1 -delete
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "postgres: POSTGRES_PASSWORD is empty; set it (or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
    --encoding=UTF8 --no-instructions >/dev/null
  rm -f "$pwfile"
  echo "host all all all $auth" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then  # single-user mode: no server to start and stop for one statement
    echo "CREATE DATABASE \"$db\"" | postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  if [ "$1" = bake ]; then printf '%s\n' "$key" >"$mark"; fi
fi
if [ "$1" = bake ]; then exit 0; fi
exec "$@"
