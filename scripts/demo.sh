#!/usr/bin/env bash
# make demo: one download from four servers, end to end, on this machine.
# It makes a sample file, starts idm-server with 4 rate-limited servers and
# idmd on a temporary state directory, downloads with `idmctl get`, shuts
# server 2 down half way through, checks the result and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
PORTS=${DEMO_PORTS:-"9001 9002 9003 9004"}
work=$(mktemp -d "${TMPDIR:-/tmp}/idm-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n== %s\n' "$*"; }

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

say "Starting idm-server: 4 servers at 250 kB/s each, status every 3 s"
mkfifo "$work/console"
# shellcheck disable=SC2086
"$BIN/idm-server" -i 3 -n 4 -f "$sample" --bind 127.0.0.1 --rate 250K -p $PORTS \
	<"$work/console" 2>"$work/server.log" &
pids+=($!)
exec 3>"$work/console" # keeps the console open, and lets us type E2 later

say "Starting idmd on a temporary state directory"
export IDMD_SOCKET=$work/idmd.sock
"$BIN/idmd" run --system=false --state-dir "$work/state" 2>"$work/idmd.log" &
pids+=($!)
for _ in $(seq 50); do [ -S "$IDMD_SOCKET" ] && break; sleep 0.1; done

mkdir -p "$work/out"
(sleep 5 && echo "   >>> typing E2 on idm-server's console: server 2 goes down" && echo E2 >&3) &
pids+=($!)
say "idmctl get -i 1 -o $work/out -a 127.0.0.1 -p $PORTS"
# shellcheck disable=SC2086
"$BIN/idmctl" get -i 1 -o "$work/out" -a 127.0.0.1 -p $PORTS

say "Checking the result against the original"
got=$(find "$work/out" -type f | head -n 1)
if cmp "$sample" "$got"; then
	echo "identical: $(basename "$got"), $(stat -c %s "$got") bytes"
else
	echo "DIFFERENT: the demo failed" >&2
	exit 1
fi
echo
echo "idmd's log:"
sed 's/^/   /' "$work/idmd.log"
