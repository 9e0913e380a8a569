#!/usr/bin/env bash
# The daemon's figures for the README: the round trip of `idmctl status`,
# `idmctl ls` with 1,000 jobs in the store, and idmd's peak memory with
# 1,000 queued jobs and with 3 active 1 GiB downloads. Run by make bench
# (scripts/bench.sh), or alone after make build. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
RUNS=${RUNS:-31}
work=$(mktemp -d "${TMPDIR:-/tmp}/idm-bench-daemon.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

export IDMD_SOCKET=$work/idmd.sock
start_idmd() { # state dir
	"$BIN/idmd" run --system=false --state-dir "$1" 2>>"$work/idmd.log" &
	IDMD_PID=$!
	pids+=("$IDMD_PID")
	for _ in $(seq 100); do "$BIN/idmctl" version >/dev/null 2>&1 && return; sleep 0.05; done
	echo "idmd did not start" >&2
	exit 1
}
stop_idmd() {
	kill -TERM "$IDMD_PID"
	wait "$IDMD_PID" 2>/dev/null || true
}
peak_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f MiB", k / 1024}'; }

# median_ms CMD...: runs CMD $RUNS times, prints the median wall time in ms.
median_ms() {
	local times=() s e
	for _ in $(seq "$RUNS"); do
		s=$EPOCHREALTIME
		"$@" >/dev/null
		e=$EPOCHREALTIME
		times+=("$(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f", (e - s) * 1000}')")
	done
	printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

# 1. A store with 1,000 queued jobs. Their sources are closed loopback
#    ports, so the three that start keep retrying and the rest wait.
start_idmd "$work/state-1000"
mkdir -p "$work/out"
for i in $(seq 1000); do
	"$BIN/idmctl" add -o "$work/out" "idm://127.0.0.1:$((20000 + i))" >/dev/null
done
status_ms=$(median_ms "$BIN/idmctl" status 1)
ls_ms=$(median_ms "$BIN/idmctl" ls)
ls_json_ms=$(median_ms "$BIN/idmctl" --json ls)
queued_peak=$(peak_kib "$IDMD_PID")
stop_idmd

# 2. Three active 1 GiB downloads, each from 4 servers.
big=${BENCH_FILE:-$PWD/.cache/bench/bench-1073741824.bin}
if [ ! -f "$big" ]; then
	mkdir -p "$(dirname "$big")"
	head -c $((1 << 30)) /dev/urandom >"$big"
fi
ports=(29101 29102 29103 29104)
"$BIN/idm-server" -i 3600 -n 4 -f "$big" --bind 127.0.0.1 -p "${ports[@]}" </dev/null >/dev/null 2>"$work/server.log" &
pids+=($!)
start_idmd "$work/state-3"
for j in 1 2 3; do
	mkdir -p "$work/dl$j"
	args=()
	for p in "${ports[@]}"; do args+=("idm://127.0.0.1:$p"); done
	"$BIN/idmctl" add -o "$work/dl$j" "${args[@]}" >/dev/null
done
s=$EPOCHREALTIME
for j in 1 2 3; do "$BIN/idmctl" wait "$j" >/dev/null; done
e=$EPOCHREALTIME
active_peak=$(peak_kib "$IDMD_PID")
stop_idmd
secs=$(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.1f", e - s}')
for j in 1 2 3; do cmp -s "$big" "$work/dl$j/$(basename "$big")" || { echo "download $j differs" >&2; exit 1; }; done

ok() { awk -v v="$1" -v g="$2" 'BEGIN {print (v + 0 <= g + 0) ? "yes" : "**no**"}'; }
echo "| Daemon figure | Measured | Goal | Met? |"
echo "|---|---|---|---|"
echo "| \`idmctl status\` round trip, median of $RUNS (whole command) | $status_ms ms | < 10 ms | $(ok "$status_ms" 10) |"
echo "| \`idmctl ls\` with 1,000 jobs, median of $RUNS | $ls_ms ms (\`--json\`: $ls_json_ms ms) | < 100 ms | $(ok "$ls_ms" 100) |"
echo "| idmd peak RSS, 1,000 queued jobs | $(mib "$queued_peak") | < 60 MiB | $(ok "$((queued_peak / 1024))" 60) |"
echo "| idmd peak RSS, 3 active 1 GiB downloads (4 servers each, ${secs} s for all three) | $(mib "$active_peak") | < 60 MiB | $(ok "$((active_peak / 1024))" 60) |"
