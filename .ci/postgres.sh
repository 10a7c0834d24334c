#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL on 127.0.0.1 (Debian packages; run as root).
#   .ci/postgres.sh start DIR PORT   -> prints the URL of database "solo"
#   .ci/postgres.sh stop DIR
set -euo pipefail
action=$1; dir=$2; port=${3:-54329}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$action" in
  start)
    if [ -f "$dir/postmaster.pid" ]; then as_pg "$bin/pg_ctl" -D "$dir" -m immediate stop >/dev/null 2>&1 || true; fi
    rm -rf "$dir"; mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust >/dev/null
    as_pg "$bin/pg_ctl" -D "$dir" -w -l "$dir/server.log" \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on -c max_connections=200" start >/dev/null
    as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres solo
    echo "postgresql://postgres@127.0.0.1:$port/solo"
    ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
