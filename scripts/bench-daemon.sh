#!/usr/bin/env bash
# The daemon's figures for the README: the whole-command time of
# `idmctl add`, `idmctl status` and `idmctl ls` with 1,000 and with
# BENCH_JOBS jobs in the store, idmd's peak memory with those jobs queued
# and with 3 active 1 GiB downloads. Run by make bench (scripts/bench.sh),
# or alone after make build. Prints a markdown table.
#
# Environment:
#   BENCH_JOBS       jobs in the full store (default 10000)
#   BENCH_ADD_RUNS   the last adds, each timed alone (default 100)
#   BENCH_FILL_PAR   idmctl add processes at once while filling (default 4)
#   RUNS             runs of each status and ls figure (default 31)
#   BENCH_FILE       the 1 GiB file (default .cache/bench/bench-1073741824.bin)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
RUNS=${RUNS:-31}
JOBS=${BENCH_JOBS:-10000}
ADD_RUNS=${BENCH_ADD_RUNS:-100}
FILL_PAR=${BENCH_FILL_PAR:-4}
FIRST=1000 # the store of the first figures, kept to compare with earlier runs
if ((JOBS <= FIRST || ADD_RUNS < 1 || ADD_RUNS > FIRST || ADD_RUNS >= JOBS - FIRST)); then
	echo "bench-daemon.sh: want BENCH_JOBS > $FIRST and 0 < BENCH_ADD_RUNS <= $FIRST, < BENCH_JOBS - $FIRST" >&2
	exit 2
fi
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
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
# median prints the median of the numbers on its input.
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# ms_since START prints the milliseconds since START, an EPOCHREALTIME.
ms_since() { awk -v s="$1" -v e="$EPOCHREALTIME" 'BEGIN {printf "%.3f\n", (e - s) * 1000}'; }

# median_ms CMD...: runs CMD $RUNS times, prints the median wall time in ms.
median_ms() {
	local s
	for _ in $(seq "$RUNS"); do
		s=$EPOCHREALTIME
		"$@" >/dev/null
		ms_since "$s"
	done | median
}

# source_of N prints the source of the Nth job: a port nothing listens on,
# at an address of its own in 127.0.0.0/8, so that every job is new (idmd
# refuses a second job with the same sources and directory).
source_of() { echo "idm://127.1.$(($1 / 250)).$(($1 % 250 + 1)):9"; }

# 1. A store of queued jobs. Their sources refuse connections, so the
#    three that start keep retrying and the rest wait. The first $FIRST
#    are added one after another, as a user would, and measured.
start_idmd "$work/state-jobs"
mkdir -p "$work/out"
# The first $ADD_RUNS adds are timed one by one, each a new job in a store
# of fewer than $ADD_RUNS: the same figure as the last adds below, with
# next to nothing in the store.
first_add_ms=$(
	for ((i = 1; i <= ADD_RUNS; i++)); do
		src=$(source_of "$i")
		s=$EPOCHREALTIME
		"$BIN/idmctl" add -o "$work/out" "$src" >/dev/null
		ms_since "$s"
	done | median
)
for ((i = ADD_RUNS + 1; i <= FIRST; i++)); do
	"$BIN/idmctl" add -o "$work/out" "$(source_of "$i")" >/dev/null
done
# The floor under every whole-command figure: idmctl's start and one
# round trip that does nothing.
version_ms=$(median_ms "$BIN/idmctl" version)
status_ms=$(median_ms "$BIN/idmctl" status 1)
ls_ms=$(median_ms "$BIN/idmctl" ls)
ls_json_ms=$(median_ms "$BIN/idmctl" --json ls)
first_peak=$(peak_kib "$IDMD_PID")

#    Then the store is filled up to $ADD_RUNS short of $JOBS, $FILL_PAR adds
#    at once, and the last $ADD_RUNS adds are timed one by one, each a new
#    job in an almost full store.
s=$EPOCHREALTIME
for ((i = FIRST + 1; i <= JOBS - ADD_RUNS; i++)); do source_of "$i"; done |
	xargs -P "$FILL_PAR" -n 1 "$BIN/idmctl" add -o "$work/out" >/dev/null
fill_s=$(awk -v ms="$(ms_since "$s")" 'BEGIN {printf "%.0f", ms / 1000}')
add_ms=$(
	for ((i = JOBS - ADD_RUNS + 1; i <= JOBS; i++)); do
		src=$(source_of "$i")
		s=$EPOCHREALTIME
		"$BIN/idmctl" add -o "$work/out" "$src" >/dev/null
		ms_since "$s"
	done | median
)
n=$("$BIN/idmctl" ls | tail -n +2 | wc -l) # less the header
if [ "$n" != "$JOBS" ]; then
	echo "the store holds $n jobs, want $JOBS" >&2
	exit 1
fi
full_status_ms=$(median_ms "$BIN/idmctl" status "$JOBS")
full_ls_ms=$(median_ms "$BIN/idmctl" ls)
full_ls_json_ms=$(median_ms "$BIN/idmctl" --json ls)
full_peak=$(peak_kib "$IDMD_PID")
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

# ok VALUE GOAL prints whether VALUE is under GOAL.
ok() { awk -v v="$1" -v g="$2" 'BEGIN {print (v + 0 < g + 0) ? "yes" : "**no**"}'; }
# ok_kib KIB MIB prints whether KIB KiB are under MIB MiB.
ok_kib() { ok "$(awk -v k="$1" 'BEGIN {print k / 1024}')" "$2"; }
# thousands N prints N with a comma between thousands, as the table writes it.
thousands() { printf '%s' "$1" | sed ':a; s/\B[0-9]\{3\}\>/,&/; ta'; }
full=$(thousands "$JOBS")
# ms VALUE prints VALUE, a time in milliseconds, to a tenth.
ms() { printf '%.1f ms' "$1"; }
echo "| Daemon figure | Measured | Goal | Met? |"
echo "|---|---|---|---|"
echo "| \`idmctl version\` round trip, median of $RUNS (whole command): the floor under the others | $(ms "$version_ms") | | |"
echo "| \`idmctl status\` round trip, median of $RUNS (whole command) | $(ms "$status_ms") | < 10 ms | $(ok "$status_ms" 10) |"
echo "| \`idmctl add\` of a new job into 0 to $((ADD_RUNS - 1)) jobs, median of $ADD_RUNS (whole command) | $(ms "$first_add_ms") | < 5 ms | $(ok "$first_add_ms" 5) |"
echo "| \`idmctl ls\` with $(thousands $FIRST) jobs, median of $RUNS | $(ms "$ls_ms") (\`--json\`: $(ms "$ls_json_ms")) | < 100 ms | $(ok "$ls_ms" 100) |"
echo "| idmd peak RSS, $(thousands $FIRST) queued jobs | $(mib "$first_peak") | < 60 MiB | $(ok_kib "$first_peak" 60) |"
echo "| \`idmctl add\` of a new job into $(thousands $((JOBS - ADD_RUNS))) to $(thousands $((JOBS - 1))) jobs, median of $ADD_RUNS (whole command) | $(ms "$add_ms") | < 5 ms | $(ok "$add_ms" 5) |"
echo "| \`idmctl status\` with $full jobs, median of $RUNS | $(ms "$full_status_ms") | < 10 ms | $(ok "$full_status_ms" 10) |"
echo "| \`idmctl ls\` with $full jobs, median of $RUNS | $(ms "$full_ls_ms") (\`--json\`: $(ms "$full_ls_json_ms")) | < 100 ms | $(ok "$full_ls_ms" 100) |"
echo "| idmd peak RSS, $full queued jobs | $(mib "$full_peak") | < 60 MiB | $(ok_kib "$full_peak" 60) |"
echo "| idmd peak RSS, 3 active 1 GiB downloads (4 servers each, ${secs} s for all three) | $(mib "$active_peak") | < 60 MiB | $(ok_kib "$active_peak" 60) |"
echo
echo "Filling the store from $(thousands $FIRST) to $(thousands $((JOBS - ADD_RUNS))) jobs took $fill_s s, $FILL_PAR \`idmctl add\` at once."
echo "Load average: $load_before before the daemon's figures, $(cut -d' ' -f1-3 /proc/loadavg) after."
