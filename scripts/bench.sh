#!/usr/bin/env bash
# The benchmarks whose figures README.md reports; `make bench` runs this.
#
#   A  idm-server's HTTP side against nginx, both fetched by curl.
#   B  the download engine's Go benchmarks in daemon/bench_test.go.
#
# Every figure is the median of several runs, and each comparison is made
# side by side in the same run. The last thing printed is one markdown
# table and the machine it ran on.
#
# Environment:
#   BENCH_COUNT      runs of each engine scenario but B1 (default 7)
#   BENCH_B1_RUNS    runs of B1, the engine against curl (default 11)
#   BENCH_HTTP_RUNS  runs of A, idm-server against nginx (default 21; they are quick)
#   BENCH_CACHE      where the random test files are kept (default .cache/bench)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
count=${BENCH_COUNT:-7}
http_runs=${BENCH_HTTP_RUNS:-21}
b1_runs=${BENCH_B1_RUNS:-11}
cache=${BENCH_CACHE:-$root/.cache/bench}
size=$((1 << 30))
file=$cache/bench-$size.bin # daemon/bench_test.go looks for this name
started=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
PATH=$PATH:/usr/sbin:/sbin # nginx lives in sbin

work=$(mktemp -d "${TMPDIR:-/tmp}/idm-bench.XXXXXX")
results=$work/results # "<scenario> <unit> <median>" lines
pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '== %s\n' "$*" >&2; }
loud() { printf '\n!! %s\n\n' "$*" >&2; }

# median prints the median of the numbers on its input, or nothing.
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# need CMD PACKAGE makes sure CMD exists, installing PACKAGE from Debian's
# archive when it does not and we are root. It fails, saying how to
# install it, when it cannot.
apt_updated=
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		loud "$1 is missing; install it first (Debian: sudo apt-get install -y $2)"
		return 1
	fi
	say "installing $2"
	if [ -z "$apt_updated" ]; then
		apt-get update -qq >&2
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
	command -v "$1" >/dev/null 2>&1
}

# free_port prints a loopback TCP port nothing answers on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# wait_http URL PID LOG waits until URL answers, failing if PID dies.
wait_http() {
	local deadline=$((SECONDS + 120))
	until curl -sf -o /dev/null -r 0-0 "$1"; do
		if ! kill -0 "$2" 2>/dev/null; then
			loud "server for $1 exited:"
			cat "$3" >&2
			return 1
		fi
		if ((SECONDS > deadline)); then
			loud "$1 did not answer within 120 s"
			return 1
		fi
		sleep 0.2
	done
}

# fetch URL has curl download URL to /dev/null and prints its MB/s.
fetch() {
	local out code n speed
	out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$1")
	read -r code n speed <<<"$out"
	if [ "$code" != 200 ] || [ "$n" != "$size" ]; then
		loud "curl $1: status $code, $n bytes, want 200 and $size"
		return 1
	fi
	awk -v s="$speed" 'BEGIN { printf "%.1f\n", s / 1e6 }'
}

# The 1 GiB file, made once.
if [ ! -f "$file" ] || [ "$(stat -c %s "$file")" != "$size" ]; then
	say "making a 1 GiB random file in $cache"
	mkdir -p "$cache"
	head -c "$size" /dev/urandom >"$file.tmp"
	mv "$file.tmp" "$file"
fi
chmod a+r "$file" # nginx's worker reads it as an unprivileged user

# --- A: idm-server's HTTP side against nginx -------------------------------
a_skip=
scenario_a() {
	if ! need curl curl; then
		a_skip="curl missing"
		return
	fi
	if ! need nginx nginx-light; then
		a_skip="nginx missing (apt-get install nginx-light)"
		return
	fi
	local server=$root/bin/idm-server
	if [ ! -x "$server" ]; then
		server=$work/idm-server
		go build -o "$server" ./cmd/idm-server
	fi
	local idm_port nginx_port
	idm_port=$(free_port)
	nginx_port=$(free_port)
	while [ "$nginx_port" = "$idm_port" ]; do nginx_port=$(free_port); done

	"$server" -i 3600 -n 1 -f "$file" -p "$idm_port" --bind 127.0.0.1 \
		</dev/null >"$work/idm-server.log" 2>&1 &
	local idm_pid=$!
	pids+=("$idm_pid")

	local ng=$work/nginx
	mkdir -p "$ng"
	cat >"$ng/nginx.conf" <<EOF
worker_processes 1;
error_log "$ng/error.log";
pid "$ng/nginx.pid";
events { worker_connections 64; }
http {
	access_log off;
	sendfile on;
	client_body_temp_path "$ng/body";
	proxy_temp_path "$ng/proxy";
	fastcgi_temp_path "$ng/fastcgi";
	uwsgi_temp_path "$ng/uwsgi";
	scgi_temp_path "$ng/scgi";
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$nginx_port;
		root "$cache";
	}
}
EOF
	nginx -c "$ng/nginx.conf" -p "$ng" -e "$ng/error.log" -g 'daemon off;' >"$ng/stdout.log" 2>&1 &
	local nginx_pid=$!
	pids+=("$nginx_pid")

	local name
	name=$(basename "$file")
	local idm_url=http://127.0.0.1:$idm_port/$name nginx_url=http://127.0.0.1:$nginx_port/$name
	wait_http "$nginx_url" "$nginx_pid" "$ng/error.log"
	wait_http "$idm_url" "$idm_pid" "$work/idm-server.log"
	say "A: curl fetches 1 GiB from idm-server and from nginx: $http_runs runs of 4 fetches"

	# Round 0 warms both up and is not counted. Each round fetches
	# idm-server, nginx, nginx, idm-server, so neither side always goes
	# first, and counts each side's speed over its two fetches.
	local i a1 a2 b1 b2 idm nginx
	for ((i = 0; i <= http_runs; i++)); do
		a1=$(fetch "$idm_url")
		b1=$(fetch "$nginx_url")
		b2=$(fetch "$nginx_url")
		a2=$(fetch "$idm_url")
		((i > 0)) || continue
		idm=$(awk -v x="$a1" -v y="$a2" 'BEGIN { printf "%.1f", 2 / (1 / x + 1 / y) }')
		nginx=$(awk -v x="$b1" -v y="$b2" 'BEGIN { printf "%.1f", 2 / (1 / x + 1 / y) }')
		printf '   run %d: idm-server %s MB/s, nginx %s MB/s\n' "$i" "$idm" "$nginx" >&2
		echo "$idm" >>"$work/a-idm"
		echo "$nginx" >>"$work/a-nginx"
		awk -v a="$idm" -v b="$nginx" 'BEGIN { print a / b }' >>"$work/a-ratio"
	done
	{
		echo "A idm-MB/s $(median <"$work/a-idm")"
		echo "A nginx-MB/s $(median <"$work/a-nginx")"
		echo "A idm/nginx $(median <"$work/a-ratio")"
	} >>"$results"

	kill "$idm_pid" "$nginx_pid"
	wait "$idm_pid" "$nginx_pid" 2>/dev/null || true
	pids=()
}
scenario_a

# --- B: the engine's Go benchmarks ------------------------------------------
# Each of -count runs is one whole download (B1: four). B1 is the most
# sensitive to a busy machine, so it gets more runs. Metrics go to
# "<benchmark> <unit> <median>" lines.
say "B: go test -bench (B1 $b1_runs times, the others $count times; this takes a few minutes)"
export IDM_BENCH_DIR=$cache
go test -run '^$' -bench '^BenchmarkEngine_Unlimited$' \
	-benchtime 1x -count "$b1_runs" -timeout 30m ./daemon | tee "$work/go-bench.txt" >&2
go test -run '^$' -bench '^BenchmarkEngine_(RateLimited|ServerLost|CrashRestart|PeakRSS)$' \
	-benchtime 1x -count "$count" -timeout 30m ./daemon | tee -a "$work/go-bench.txt" >&2
awk '/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		for (i = 3; i < NF; i += 2) print name, $(i + 1), $i
	}' "$work/go-bench.txt" |
	sort -k1,1 -k2,2 -k3,3g |
	awk 'function flush() {
			if (c) print key, (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
			c = 0
		}
		{ k = $1 " " $2; if (k != key) { flush(); key = k }; v[++c] = $3 }
		END { flush() }' >>"$results"

# --- The table ---------------------------------------------------------------
# get SCENARIO UNIT prints a median from the results, or nothing.
get() { awk -v s="$1" -v u="$2" '$1 == s && $2 == u { print $3 }' "$results"; }
# num VALUE DIGITS prints VALUE rounded, or n/a.
num() { if [ -n "$1" ]; then awk -v v="$1" -v d="$2" 'BEGIN { printf "%." d "f", v }'; else printf 'n/a'; fi; }
# met VALUE OP GOAL prints yes or no (or n/a without a value).
met() {
	[ -n "$1" ] || {
		printf 'n/a'
		return
	}
	awk -v v="$1" -v op="$2" -v g="$3" 'BEGIN { ok = (op == ">=") ? v >= g : v <= g; printf (ok ? "yes" : "**no**") }'
}

u=BenchmarkEngine_Unlimited r=BenchmarkEngine_RateLimited l=BenchmarkEngine_ServerLost
c=BenchmarkEngine_CrashRestart p=BenchmarkEngine_PeakRSS
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
tools=$(go version | awk '{ print $3 }')
if command -v curl >/dev/null 2>&1; then tools="$tools, $(curl --version | awk 'NR == 1 { print $1 " " $2 }')"; fi
if command -v nginx >/dev/null 2>&1; then tools="$tools, $(nginx -v 2>&1 | sed 's/.*nginx\//nginx /')"; fi

{
	echo
	echo "| Scenario | idm | Baseline | Ratio or figure | Goal | Met? |"
	echo "|---|---|---|---|---|---|"
	if [ -n "$a_skip" ]; then
		echo "| A. curl fetches 1 GiB over HTTP: idm-server vs nginx | skipped | $a_skip | | ≥ 0.95 | n/a |"
	else
		v=$(get A idm/nginx)
		echo "| A. curl fetches 1 GiB over HTTP: idm-server vs nginx | $(num "$(get A idm-MB/s)" 0) MB/s | $(num "$(get A nginx-MB/s)" 0) MB/s (nginx) | $(num "$v" 2) | ≥ 0.95 | $(met "$v" '>=' 0.95) |"
	fi
	v=$(get $u idm/curl)
	echo "| B1. Engine: 1 GiB from 4 unthrottled servers vs curl from 1 | $(num "$(get $u idm-MB/s)" 0) MB/s | $(num "$(get $u curl-MB/s)" 0) MB/s (curl) | $(num "$v" 2) | ≥ 0.9 | $(met "$v" '>=' 0.9) |"
	v=$(get $r elapsed/ideal)
	echo "| B2. 300 MB from 4 servers at 40, 20, 10, 5 MB/s | $(num "$(get $r s)" 2) s | $(num "$(get $r ideal-s)" 2) s (ideal) | $(num "$v" 3) | ≤ 1.08 | $(met "$v" '<=' 1.08) |"
	v=$(get $l elapsed/ideal)
	echo "| B3. B2 with the 20 MB/s server stopped at 30 % | $(num "$(get $l s)" 2) s | $(num "$(get $l ideal-s)" 2) s (ideal) | $(num "$v" 3) | ≤ 1.1 | $(met "$v" '<=' 1.1) |"
	v=$(get $c refetched-%)
	echo "| B4. Crash without flush at 50 % of 1 GiB, restart | $(num "$(get $c refetched-MiB)" 1) MiB fetched twice | | $(num "$v" 2) % of the file | ≤ 2 % | $(met "$v" '<=' 2) |"
	v=$(get $p/1024MiB peak-RSS-MiB)
	echo "| B5. Peak RSS of the engine's process, 1 GiB from 4 servers | $(num "$v" 1) MiB | $(num "$(get $p/256MiB peak-RSS-MiB)" 1) MiB for 256 MiB | $(num "$v" 1) MiB | ≤ 30 MiB | $(met "$v" '<=' 30) |"
	echo
	echo "Medians of $http_runs runs (A), $b1_runs (B1) and $count (B2 to B5); each ratio is the median of the per-run ratios, both sides of a run measured side by side."
	echo
	echo "Machine: $(nproc) cores, $cpu, $mem RAM, Linux $(uname -r), $tools."
	echo "Load average: $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after."
	echo
	echo "B1's baseline is curl's own figure, without syncing its file; counting the fsync that makes it as durable as the engine's, curl comes to $(num "$(get $u curl+sync-MB/s)" 0) MB/s and the engine's ratio to it is $(num "$(get $u idm/curl+sync)" 2)."
	echo "Engine details: after the last segment is verified, B1 spends $(num "$(get $u finish-s)" 2) s finishing (the rest of the whole-file hash, the sync, the rename), B2 $(num "$(get $r finish-s)" 2) s."
	echo "Servers sent $(num "$(get $r sent-twice-%)" 1) % of the file twice in B2, $(num "$(get $l sent-twice-%)" 1) % in B3 (lost with the stopped server or beaten by a faster copy)."
	echo "B4 crashed at $(num "$(get $c crash-at-%)" 1) % verified; B5 downloaded at $(num "$(get $p/1024MiB MB/s)" 0) MB/s."
	hash_s=$(IDM_BENCH_DIR=$cache go test -run '^$' -bench '^BenchmarkBuildManifest$' -benchtime 3x -count 3 ./transport |
		awk '/^BenchmarkBuildManifest/ {print $3 / 1e9}' | sort -n | sed -n 2p)
	echo "idm-server hashes a 1 GiB file at start-up (every segment and the whole file) in $(num "$hash_s" 2) s, median of 3."
	echo
	BENCH_FILE="$cache/bench-1073741824.bin" bash scripts/bench-daemon.sh
	echo
	echo "Took $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s."
} | tee "$cache/results.md"
