# The test Postgres server shared by every test process of this user on this
# machine. Run by baton-testkit (src/servers/postgres.rs) as
#
#   sh -c "$BATON_PG_SCRIPT" baton-postgres serve
#
# with BATON_PG_DIR (coordination directory), BATON_PG_BIN (server binaries)
# and BATON_PG_PORT (a free loopback port, used if a server must be started).
#
# `serve` joins the running server or starts one, prints one line —
# "url <base url>" or "error <message>" — and then stays alive, registered as
# a user of the server, until its stdin closes: stdin is a pipe whose writing
# end only the test process holds, so the registration ends when the test
# process exits, however it exits.
#
# Coordination, all under $BATON_PG_DIR:
#   state.lock  exclusive flock while a process checks, starts or stops the server
#   users.lock  shared flock held by every registered user
#   server      "<port> <data directory>" of the running server
# `reap` runs detached next to each server it starts: once nobody has held
# users.lock for three checks in a row it stops the server (immediate mode)
# and deletes its data directory.

set -u
dir=$BATON_PG_DIR
bin=$BATON_PG_BIN
as=""
# initdb and the server refuse to run as root.
if [ "$(id -u)" = 0 ]; then as="runuser -u postgres --"; fi

fail() {
    echo "error $*"
    exit 1
}

alive() {
    "$bin/psql" -X -h 127.0.0.1 -p "$1" -U postgres -d baton_test -tAc 'SELECT 1' >/dev/null 2>&1
}

stop() {
    $as "$bin/pg_ctl" -D "$2/db" -m immediate stop >/dev/null 2>&1
    rm -rf "$2"
}

start() {
    port=$BATON_PG_PORT
    data=$(mktemp -d "${TMPDIR:-/tmp}/baton-pg.XXXXXX") || fail "cannot create a data directory"
    if [ -n "$as" ]; then
        chown postgres "$data" || fail "cannot give $data to the postgres user"
    fi
    if ! $as "$bin/initdb" -D "$data/db" -U postgres --auth=trust --no-sync -E UTF8 --locale=C \
        >"$data/initdb.log" 2>&1 </dev/null 8>&- 9>&-; then
        msg=$(tail -n 3 "$data/initdb.log" | tr '\n' ' ')
        rm -rf "$data"
        fail "initdb failed: $msg"
    fi
    # Default settings, durable commits; the fds holding our locks are closed
    # so the server never inherits them.
    if ! $as "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 \
        -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c synchronous_commit=on -c fsync=on" \
        start >"$data/pg_ctl.log" 2>&1 </dev/null 8>&- 9>&-; then
        msg=$(tail -n 3 "$data/server.log" 2>/dev/null | tr '\n' ' ')
        stop "$port" "$data"
        fail "the server did not start on port $port: $msg"
    fi
    if ! "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres baton_test >>"$data/pg_ctl.log" 2>&1; then
        stop "$port" "$data"
        fail "cannot create the baton_test database on port $port"
    fi
    echo "$port $data" >"$dir/server"
    setsid sh -c "$BATON_PG_SCRIPT" baton-postgres reap "$port" "$data" \
        </dev/null >>"$dir/reaper.log" 2>&1 8>&- 9>&- &
}

serve() {
    mkdir -p "$dir" || fail "cannot create $dir"
    exec 2>>"$dir/serve.log"
    exec 9>>"$dir/state.lock"
    flock -x 9 || fail "cannot lock $dir/state.lock"
    port=""
    if [ -f "$dir/server" ]; then
        read -r port data <"$dir/server"
        alive "$port" || port=""
    fi
    [ -n "$port" ] || start
    exec 8>>"$dir/users.lock"
    flock -s 8 || fail "cannot register as a user of the server"
    exec 9>&-
    echo "url postgres://postgres@127.0.0.1:$port/baton_test"
    exec cat >/dev/null
}

reap() {
    port=$1
    data=$2
    idle=0
    while sleep 1; do
        exec 9>>"$dir/state.lock"
        flock -x 9
        if [ "$(cat "$dir/server" 2>/dev/null)" != "$port $data" ]; then
            # Another server replaced this one (it had died): clean up ours.
            stop "$port" "$data"
            exit 0
        fi
        if flock -n -x "$dir/users.lock" true; then idle=$((idle + 1)); else idle=0; fi
        if [ "$idle" -ge 3 ]; then
            stop "$port" "$data"
            rm -f "$dir/server"
            exit 0
        fi
        exec 9>&-
    done
}

case "${1:-}" in
serve) serve ;;
reap) reap "$2" "$3" ;;
*) fail "usage: serve | reap PORT DATA" ;;
esac
