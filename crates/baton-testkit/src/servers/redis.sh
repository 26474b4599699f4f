# A test Valkey/Redis deployment (one server, or the nodes of a cluster)
# shared by every test process of this user on this machine. Run by
# baton-testkit (src/servers/redis.rs) as
#
#   sh -c "$BATON_RS_SCRIPT" baton-redis serve
#
# with BATON_RS_DIR (coordination directory, one per kind of deployment) and
# BATON_RS_KIND (a short name for data directories).
#
# Like postgres.sh, but the test process does everything that talks to the
# servers (this script has no client): `serve` speaks a line protocol with
# it over its stdin/stdout while holding the state lock.
#   "check <url>"      -> the test process answers "alive" or "dead"
#   "start <data dir>" -> the test process starts the nodes, daemonized, each
#                         in <data dir>/<port>/ with its pid file there,
#                         waits for them (and forms the cluster), and
#                         answers "ok <url>" or "fail <message>"
# and finally prints "url <url>" or "error <message>". Then it stays alive,
# registered as a user of the deployment, until its stdin closes: stdin is a
# pipe whose writing end only the test process holds, so the registration
# ends when the test process exits, however it exits. (If the test process
# dies while starting nodes, the next read here ends and they are stopped.)
#
# Coordination, all under $BATON_RS_DIR:
#   state.lock  exclusive flock while a process checks, starts or stops the deployment
#   users.lock  shared flock held by every registered user
#   server      "<data directory> <url>" of the running deployment
# `reap` runs detached next to each deployment started: once nobody has held
# users.lock for three checks in a row it stops the nodes and deletes the
# data directory. Only processes whose pid file is in that directory and
# whose title names their port are ever signalled.

set -u
dir=$BATON_RS_DIR

fail() {
    echo "error $*"
    exit 1
}

# Is pid $1 the server node listening on port $2? (Its process title is
# "<binary> 127.0.0.1:<port>" or "... [cluster]".)
ours() {
    case "$1" in '' | *[!0-9]*) return 1 ;; esac
    # Never the default port, whatever runs there.
    [ "$2" != 6379 ] || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -Eq "127\.0\.0\.1:$2( |\$)"
}

# Stops every node of the deployment in data directory $1 and removes it.
stop() {
    pids=""
    for node in "$1"/*/; do
        [ -d "$node" ] || continue
        port=$(basename "$node")
        # A node started a moment ago may not have written its pid file yet.
        tries=0
        while [ ! -f "$node/server.pid" ] && [ "$tries" -lt 20 ]; do
            sleep 0.1
            tries=$((tries + 1))
        done
        pid=$(cat "$node/server.pid" 2>/dev/null)
        if ours "$pid" "$port"; then
            kill -TERM "$pid" 2>/dev/null
            pids="$pids $pid:$port"
        fi
    done
    # No persistence, so a node exits at once; give it five seconds.
    tries=0
    while [ -n "$pids" ] && [ "$tries" -lt 50 ]; do
        left=""
        for p in $pids; do
            if ours "${p%%:*}" "${p#*:}"; then left="$left $p"; fi
        done
        pids=$left
        [ -n "$pids" ] || break
        sleep 0.1
        tries=$((tries + 1))
    done
    for p in $pids; do
        if ours "${p%%:*}" "${p#*:}"; then kill -KILL "${p%%:*}" 2>/dev/null; fi
    done
    rm -rf "$1"
}

start() {
    data=$(mktemp -d "${TMPDIR:-/tmp}/baton-$BATON_RS_KIND.XXXXXX") || fail "cannot create a data directory"
    echo "start $data"
    if ! read -r answer; then
        stop "$data"
        exit 1
    fi
    case "$answer" in
    "ok "*) url=${answer#ok } ;;
    *)
        stop "$data"
        fail "${answer#fail }"
        ;;
    esac
    echo "$data $url" >"$dir/server"
    # The fds holding our locks are closed so the reaper never inherits them.
    setsid sh -c "$BATON_RS_SCRIPT" baton-redis reap "$data" "$url" \
        </dev/null >>"$dir/reaper.log" 2>&1 8>&- 9>&- &
}

serve() {
    # Should the test process die, writing to it must fail (and the next
    # read see the end of its stdin) rather than kill this script.
    trap '' PIPE
    mkdir -p "$dir" || fail "cannot create $dir"
    exec 2>>"$dir/serve.log"
    exec 9>>"$dir/state.lock"
    flock -x 9 || fail "cannot lock $dir/state.lock"
    url=""
    if [ -f "$dir/server" ]; then
        read -r data url <"$dir/server"
        if [ -n "$url" ]; then
            echo "check $url"
            read -r answer || exit 1
            [ "$answer" = alive ] || url=""
        fi
    fi
    [ -n "$url" ] || start
    exec 8>>"$dir/users.lock"
    flock -s 8 || fail "cannot register as a user of the server"
    exec 9>&-
    echo "url $url"
    exec cat >/dev/null
}

reap() {
    data=$1
    url=$2
    idle=0
    while sleep 1; do
        exec 9>>"$dir/state.lock"
        flock -x 9
        if [ "$(cat "$dir/server" 2>/dev/null)" != "$data $url" ]; then
            # Another deployment replaced this one (it had died): clean up ours.
            stop "$data"
            exit 0
        fi
        if flock -n -x "$dir/users.lock" true; then idle=$((idle + 1)); else idle=0; fi
        if [ "$idle" -ge 3 ]; then
            stop "$data"
            rm -f "$dir/server"
            exit 0
        fi
        exec 9>&-
    done
}

case "${1:-}" in
serve) serve ;;
reap) reap "$2" "$3" ;;
*) fail "usage: serve | reap DATA URL" ;;
esac
