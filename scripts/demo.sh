#!/usr/bin/env bash
# make demo: one download from four servers, end to end, on this machine.
# It makes a sample file, starts idm-server with 4 rate-limited servers and
# idmd on a temporary state directory, downloads with `idmctl get`, shuts
# server 2 down half way through, checks the result and cleans up.
#
# The servers listen on 127.0.0.1, ports 9001 to 9004 when they are free;
# when one is taken the demo moves to the first four free ports from 9001
# up and says so. DEMO_PORTS="p1 p2 p3 p4" chooses the ports: then a taken
# one is an error. Every wait is bounded: what fails is said with its log.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
work=$(mktemp -d "${TMPDIR:-/tmp}/idm-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n== %s\n' "$*"; }

# fail prints why the demo stops and the logs that say more.
fail() {
	echo "demo: $*" >&2
	for log in "$work/server.log" "$work/idmd.log"; do
		[ -s "$log" ] || continue
		echo "--- $(basename "$log"):" >&2
		sed 's/^/   /' "$log" >&2
	done
	exit 1
}

# answers PORT: something accepts connections on 127.0.0.1:PORT.
answers() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

if [ -n "${DEMO_PORTS:-}" ]; then
	PORTS=$DEMO_PORTS
	for p in $PORTS; do
		if answers "$p"; then
			fail "port $p is taken by another program; choose other ports with DEMO_PORTS=\"p1 p2 p3 p4\""
		fi
	done
else
	PORTS=""
	for p in $(seq 9001 9200); do
		answers "$p" && continue
		PORTS="${PORTS:+$PORTS }$p"
		[ "$(wc -w <<<"$PORTS")" -eq 4 ] && break
	done
	[ "$(wc -w <<<"$PORTS")" -eq 4 ] || fail "no four free ports between 9001 and 9200"
	if [ "$PORTS" != "9001 9002 9003 9004" ]; then
		taken=$(for p in 9001 9002 9003 9004; do answers "$p" && printf '%s ' "$p"; done || true)
		echo "demo: port(s) ${taken% } taken by another program; using $PORTS instead"
	fi
fi

say "Making an 8 MiB sample file"
sample=$work/sample
if command -v ffmpeg >/dev/null 2>&1 &&
	ffmpeg -loglevel error -f lavfi -i testsrc2=duration=10:size=1280x720:rate=30 \
		-c:v libx264 -b:v 6700k -pix_fmt yuv420p -y "$work/sample.mp4" 2>/dev/null; then
	mv "$work/sample.mp4" "$work/video.mp4"
	sample=$work/video.mp4
	echo "ffmpeg is here: a real 10-second test video, $(stat -c %s "$sample") bytes"
else
	sample=$work/video.bin
	head -c $((8 << 20)) /dev/urandom >"$sample"
	echo "no ffmpeg: 8 MiB of random bytes instead of a video"
fi

# 256Ki is 256 KiB/s, which idmctl's report shows as 256kb/s: its kb/s
# are KiB per second.
say "Starting idm-server on ports $PORTS: 4 servers at 256 KiB/s each, status every 3 s"
mkfifo "$work/console"
# shellcheck disable=SC2086
"$BIN/idm-server" -i 3 -n 4 -f "$sample" --bind 127.0.0.1 --rate 256Ki -p $PORTS \
	<"$work/console" 2>"$work/server.log" &
server=$!
pids+=("$server")
exec 3>"$work/console" # keeps the console open, and lets us type E2 later
for _ in $(seq 100); do
	kill -0 "$server" 2>/dev/null || fail "idm-server did not start"
	up=0
	for p in $PORTS; do answers "$p" && up=$((up + 1)); done
	[ "$up" -eq 4 ] && break
	sleep 0.1
done
[ "$up" -eq 4 ] || fail "idm-server's ports did not answer within 10 s"

say "Starting idmd on a temporary state directory"
export IDMD_SOCKET=$work/idmd.sock
"$BIN/idmd" run --system=false --state-dir "$work/state" 2>"$work/idmd.log" &
idmd=$!
pids+=("$idmd")
for _ in $(seq 100); do
	kill -0 "$idmd" 2>/dev/null || fail "idmd did not start"
	"$BIN/idmctl" version >/dev/null 2>&1 && break
	sleep 0.1
done
"$BIN/idmctl" version >/dev/null 2>&1 || fail "idmd did not answer within 10 s"

mkdir -p "$work/out"
(sleep 5 && echo "   >>> typing E2 on idm-server's console: server 2 goes down" && echo E2 >&3) &
pids+=($!)
say "idmctl get -i 1 -o $work/out -a 127.0.0.1 -p $PORTS"
# The download takes about 10 s; two minutes means that it is stuck.
# shellcheck disable=SC2086
timeout 120 "$BIN/idmctl" get -i 1 -o "$work/out" -a 127.0.0.1 -p $PORTS ||
	fail "idmctl get failed (exit $?)"

say "Checking the result against the original"
got=$(find "$work/out" -type f | head -n 1)
if [ -n "$got" ] && cmp "$sample" "$got"; then
	echo "identical: $(basename "$got"), $(stat -c %s "$got") bytes"
else
	fail "the downloaded file differs from the original"
fi
echo
echo "idmd's log:"
sed 's/^/   /' "$work/idmd.log"
