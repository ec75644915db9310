#!/bin/sh
# Fresh Debian 12 to a running conversation: installs dependencies,
# builds into build/, generates with sinkd-run, then starts the daemon
# sinkd on a private socket and database, talks to it with sink (two
# turns, a restart of sinkd, and a third turn of the same
# conversation, then its state), and stops it.  The model is
# $SINKD_MODEL, default ../shared/models/stories260K.gguf; arguments go
# to sinkd-run (e.g. -m MODEL -p PROMPT).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/setup-debian.sh"
"$top/tools/build.sh" build
cd "$top"
model=${SINKD_MODEL:-$top/../shared/models/stories260K.gguf}
if [ $# -eq 0 ]; then
	set -- -m "$model" -p "Once upon a time" -n 200
fi
echo "== sinkd-run $*"
build/sinkd-run "$@"

echo "== sinkd and sink"
SINKD_SOCKET=$top/build/run/sock
export SINKD_SOCKET
db=$top/build/run/quickstart.db
rm -f "$db" "$db-wal" "$db-shm" "$db.lock"	# each run tells the same story
pid=
start_sinkd() {
	build/sinkd -m "$model" --db "$db" --log "$top/build/run.log" &
	pid=$!
	i=0
	until build/sink status >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 100 ] || { cat "$top/build/run.log"; exit 1; }
		sleep 0.1
	done
}
stop_sinkd() {
	kill -TERM "$pid"
	wait "$pid"
}
trap 'kill $pid 2>/dev/null' EXIT
start_sinkd
echo "> Once upon a time, there was a little dog."
build/sink -q -s quickstart -n 60 "Once upon a time, there was a little dog."
echo
echo "> What did the dog do next?"
build/sink -q -s quickstart -n 60 "What did the dog do next?"
echo
echo "== sinkd restarts: the conversation is in $db"
stop_sinkd
start_sinkd
build/sink ls
echo "> And then?"
build/sink -q -s quickstart -n 60 "And then?"
echo
stop_sinkd
trap - EXIT
echo "== done: the daemon's log is build/run.log"
