#!/usr/bin/env bash
# The benchmarks whose figures README.md reports; `make bench` runs this.
#
#   A       idm-server's HTTP side against nginx, both fetched by curl.
#   B       the download engine's Go benchmarks in daemon/engine/bench_test.go.
#   C       the CPU time idmd spends on a download, against curl's.
#   daemon  idmctl's and idmd's figures with many jobs (scripts/bench-daemon.sh).
#   M       downloads from HTTP mirrors, idmd against aria2c and curl
#           (scripts/bench-mirrors.sh).
#
# Every figure is the median of several runs, and each comparison is made
# side by side in the same run. The last thing printed is one markdown
# table and the machine it ran on.
#
# Environment:
#   BENCH_ONLY       the scenarios to run, e.g. "C" or "A C daemon M" (default all)
#   BENCH_COUNT      runs of each engine scenario but B1 (default 7)
#   BENCH_B1_RUNS    runs of B1, the engine against curl (default 11)
#   BENCH_HTTP_RUNS  runs of A, idm-server against nginx (default 21; they are quick)
#   BENCH_CPU_RUNS   rounds of C, idmd's CPU against curl's (default 9)
#   BENCH_CACHE      where the random test files are kept (default .cache/bench)
# scripts/bench-daemon.sh documents its own (BENCH_JOBS and others).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
count=${BENCH_COUNT:-7}
http_runs=${BENCH_HTTP_RUNS:-21}
b1_runs=${BENCH_B1_RUNS:-11}
cpu_runs=${BENCH_CPU_RUNS:-9}
only=" $(echo "${BENCH_ONLY:-A B C daemon M}" | tr ',' ' ') "
for sc in $only; do
	case $sc in
	A | B | C | daemon | M) ;;
	*)
		echo "bench.sh: BENCH_ONLY: unknown scenario $sc (want A, B, C, daemon or M)" >&2
		exit 2
		;;
	esac
done
cache=${BENCH_CACHE:-$root/.cache/bench}
size=$((1 << 30))
file=$cache/bench-$size.bin # daemon/engine/bench_test.go looks for this name
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
# want SCENARIO tells whether BENCH_ONLY asks for SCENARIO.
want() { [[ $only == *" $1 "* ]]; }
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

# The binaries as make build makes them (static, stripped), so that a
# scenario run alone never measures stale ones, nor ones the package
# does not ship: a plain go build links libc, and every idmctl command
# then pays for the dynamic loader.
say "building bin/"
make -C "$root" --no-print-directory build >/dev/null

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
if want A; then scenario_a; fi

# --- B: the engine's Go benchmarks ------------------------------------------
# Each of -count runs is one whole download (B1: four). B1 is the most
# sensitive to a busy machine, so it gets more runs. Metrics go to
# "<benchmark> <unit> <median>" lines.
scenario_b() {
	say "B: go test -bench (B1 $b1_runs times, the others $count times; this takes a few minutes)"
	IDM_BENCH_DIR=$cache go test -run '^$' -bench '^BenchmarkEngine_Unlimited$' \
		-benchtime 1x -count "$b1_runs" -timeout 30m ./daemon/engine | tee "$work/go-bench.txt" >&2
	IDM_BENCH_DIR=$cache go test -run '^$' -bench '^BenchmarkEngine_(RateLimited|ServerLost|CrashRestart|PeakRSS)$' \
		-benchtime 1x -count "$count" -timeout 30m ./daemon/engine | tee -a "$work/go-bench.txt" >&2
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
}
if want B; then scenario_b; fi

# --- C: the CPU time of a download, idmd against curl ------------------------
# idmd downloads the file from four idm-server servers and curl fetches it
# over HTTP from one of them, each onto the same disk. idmd's CPU time is
# the growth of utime + stime in /proc/PID/stat (all its threads, in clock
# ticks) from before `idmctl add` to after `idmctl wait`; curl's is what
# bash's `time` reports for it, which is getrusage(RUSAGE_CHILDREN) taken
# around the command. idmd makes its file durable (sync_file_range as it
# goes, then fsync) and curl does not, so curl+sync adds the CPU time of
# `sync FILE` (an fsync of curl's file) run after it.

# cpu_ticks PID prints the clock ticks PID has spent on a CPU so far.
cpu_ticks() {
	# Field 2, the command name in parentheses, may hold spaces: cut it off,
	# and utime and stime (fields 14 and 15) become the 12th and 13th.
	sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# timed OUT CMD... runs CMD, writing "<wall> <user> <system>" in seconds to
# OUT, to the millisecond. It fails when CMD does.
timed() {
	local out=$1 TIMEFORMAT='%3R %3U %3S'
	shift
	{ time "$@" 2>>"$work/c-errors"; } 2>"$out"
}

c_skip=
scenario_c() {
	if ! need curl curl; then
		c_skip="curl missing"
		return
	fi
	local name ports=() p
	name=$(basename "$file")
	while ((${#ports[@]} < 4)); do
		p=$(free_port)
		[[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
	done
	"$root/bin/idm-server" -i 3600 -n 4 -f "$file" -p "${ports[@]}" --bind 127.0.0.1 \
		</dev/null >"$work/c-server.log" 2>&1 &
	local server_pid=$!
	pids+=("$server_pid")
	for p in "${ports[@]}"; do wait_http "http://127.0.0.1:$p/$name" "$server_pid" "$work/c-server.log"; done
	local url=http://127.0.0.1:${ports[0]}/$name sources=()
	for p in "${ports[@]}"; do sources+=("idm://127.0.0.1:$p"); done

	local sock=$work/c-idmd.sock
	"$root/bin/idmd" run --system=false --state-dir "$work/c-state" --socket "$sock" \
		</dev/null >"$work/c-idmd.log" 2>&1 &
	local idmd_pid=$!
	pids+=("$idmd_pid")
	ctl() { "$root/bin/idmctl" --socket "$sock" "$@"; }
	local deadline=$((SECONDS + 30))
	until ctl version >/dev/null 2>&1; do
		if ! kill -0 "$idmd_pid" 2>/dev/null || ((SECONDS > deadline)); then
			loud "idmd did not start:"
			cat "$work/c-idmd.log" >&2
			return 1
		fi
		sleep 0.05
	done
	local tck gib
	tck=$(getconf CLK_TCK)
	gib=$(awk -v n="$size" 'BEGIN { print n / 2^30 }')
	say "C: CPU time of 1 GiB: idmd from 4 servers, curl from 1: $cpu_runs rounds of 4 downloads"

	# idm_run and curl_run each download the file once into a new
	# directory, delete it, and set cpu and wall (seconds; curl_run also
	# sync_cpu and sync_wall).
	local dir=$work/c-out cpu wall sync_cpu sync_wall
	idm_run() {
		local t0 t1 s e id
		mkdir "$dir"
		t0=$(cpu_ticks "$idmd_pid")
		s=$EPOCHREALTIME
		id=$(ctl add -o "$dir" "${sources[@]}")
		if ! ctl wait "$id" >/dev/null; then
			loud "idmd's job $id did not complete:"
			tail -n 20 "$work/c-idmd.log" >&2
			return 1
		fi
		e=$EPOCHREALTIME
		t1=$(cpu_ticks "$idmd_pid")
		if [ "$(stat -c %s "$dir/$name")" != "$size" ]; then
			loud "idmd's download is not $size bytes"
			return 1
		fi
		ctl rm "$id" >/dev/null
		rm -rf "$dir"
		cpu=$(awk -v t=$((t1 - t0)) -v hz="$tck" 'BEGIN { print t / hz }')
		wall=$(awk -v s="$s" -v e="$e" 'BEGIN { print e - s }')
	}
	curl_run() {
		local u s
		mkdir "$dir"
		if ! timed "$work/c-time" curl -sS --fail -o "$dir/curl.bin" "$url"; then
			loud "curl $url failed:"
			cat "$work/c-errors" >&2
			return 1
		fi
		read -r wall u s <"$work/c-time"
		cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')
		if [ "$(stat -c %s "$dir/curl.bin")" != "$size" ]; then
			loud "curl's download is not $size bytes"
			return 1
		fi
		timed "$work/c-time" sync "$dir/curl.bin"
		read -r sync_wall u s <"$work/c-time"
		sync_cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')
		rm -rf "$dir"
	}

	# Round 0 warms both up and is not counted: the first gigabyte written
	# is slow on the virtual machines this runs on (see daemon/engine/bench_test.go).
	# Each round runs idmd, curl, curl, idmd, so neither side always goes
	# first, and takes each side's mean over its two downloads.
	local i i1 i2 iw1 iw2 c1 c2 cw1 cw2 s1 s2 sw1 sw2 line
	for ((i = 0; i <= cpu_runs; i++)); do
		idm_run
		i1=$cpu iw1=$wall
		curl_run
		c1=$cpu cw1=$wall s1=$sync_cpu sw1=$sync_wall
		curl_run
		c2=$cpu cw2=$wall s2=$sync_cpu sw2=$sync_wall
		idm_run
		i2=$cpu iw2=$wall
		((i > 0)) || continue
		line=$(awk -v g="$gib" -v i1="$i1" -v i2="$i2" -v c1="$c1" -v c2="$c2" -v s1="$s1" -v s2="$s2" \
			-v iw1="$iw1" -v iw2="$iw2" -v cw1="$cw1" -v cw2="$cw2" -v sw1="$sw1" -v sw2="$sw2" 'BEGIN {
				idm = (i1 + i2) / 2 / g; curl = (c1 + c2) / 2 / g; synced = (c1 + s1 + c2 + s2) / 2 / g
				print idm, curl, synced, idm / curl, idm / synced,
					(iw1 + iw2) / 2 / g, (cw1 + cw2) / 2 / g, (cw1 + sw1 + cw2 + sw2) / 2 / g
			}')
		echo "$line" >>"$work/c-rounds"
		echo "$line" | awk -v i="$i" '{
			printf "   run %d: idmd %.2f CPU-s/GiB, curl %.2f (%.2f with fsync); wall idmd %.2f s, curl %.2f s (%.2f s)\n",
				i, $1, $2, $3, $6, $7, $8
		}' >&2
	done
	local k unit
	k=0
	for unit in idm-cpu-s curl-cpu-s curl+sync-cpu-s idm/curl idm/curl+sync idm-wall-s curl-wall-s curl+sync-wall-s; do
		k=$((k + 1))
		echo "C $unit $(awk -v k=$k '{ print $k }' "$work/c-rounds" | median)" >>"$results"
	done

	kill "$idmd_pid" "$server_pid"
	wait "$idmd_pid" "$server_pid" 2>/dev/null || true
	pids=()
}
if want C; then scenario_c; fi

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
	if want A || want B || want C; then
		echo "| Scenario | idm | Baseline | Ratio or figure | Goal | Met? |"
		echo "|---|---|---|---|---|---|"
	fi
	runs=()
	if ! want A; then
		:
	elif [ -n "$a_skip" ]; then
		echo "| A. curl fetches 1 GiB over HTTP: idm-server vs nginx | skipped | $a_skip | | ≥ 0.95 | n/a |"
	else
		v=$(get A idm/nginx)
		echo "| A. curl fetches 1 GiB over HTTP: idm-server vs nginx | $(num "$(get A idm-MB/s)" 0) MB/s | $(num "$(get A nginx-MB/s)" 0) MB/s (nginx) | $(num "$v" 2) | ≥ 0.95 | $(met "$v" '>=' 0.95) |"
		runs+=("$http_runs runs (A)")
	fi
	if want B; then
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
		runs+=("$b1_runs (B1)" "$count (B2 to B5)")
	fi
	if ! want C; then
		:
	elif [ -n "$c_skip" ]; then
		echo "| C. CPU time of 1 GiB: idmd from 4 servers vs curl from 1 | skipped | $c_skip | | ≤ 1.5 | n/a |"
	else
		v=$(get C idm/curl)
		echo "| C. CPU time of 1 GiB: idmd from 4 servers vs curl from 1 | $(num "$(get C idm-cpu-s)" 2) CPU-s/GiB | $(num "$(get C curl-cpu-s)" 2) CPU-s/GiB (curl) | $(num "$v" 2) | ≤ 1.5 | $(met "$v" '<=' 1.5) |"
		runs+=("$cpu_runs rounds (C)")
	fi
	if ((${#runs[@]})); then
		echo
		list=$(printf '%s, ' "${runs[@]}")
		echo "Medians of ${list%, }; each ratio is the median of the per-run ratios, both sides of a run measured side by side."
	fi
	echo
	echo "Machine: $(nproc) cores, $cpu, $mem RAM, Linux $(uname -r), $tools."
	echo "Load average: $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after."
	if want B; then
		echo
		echo "B1's baseline is curl's own figure, without syncing its file; counting the fsync that makes it as durable as the engine's, curl comes to $(num "$(get $u curl+sync-MB/s)" 0) MB/s and the engine's ratio to it is $(num "$(get $u idm/curl+sync)" 2)."
		echo "Engine details: after the last segment is verified, B1 spends $(num "$(get $u finish-s)" 2) s finishing (the sync, the link under its name), B2 $(num "$(get $r finish-s)" 2) s."
		echo "Servers sent $(num "$(get $r sent-twice-%)" 1) % of the file twice in B2, $(num "$(get $l sent-twice-%)" 1) % in B3 (lost with the stopped server or beaten by a faster copy)."
		echo "B4 crashed at $(num "$(get $c crash-at-%)" 1) % verified; B5 downloaded at $(num "$(get $p/1024MiB MB/s)" 0) MB/s."
		hash_s=$(IDM_BENCH_DIR=$cache go test -run '^$' -bench '^BenchmarkBuildManifest$' -benchtime 3x -count 3 ./transport |
			awk '/^BenchmarkBuildManifest/ {print $3 / 1e9}' | sort -n | sed -n 2p)
		echo "idm-server hashes a 1 GiB file at start-up (every segment and the whole file) in $(num "$hash_s" 2) s, median of 3."
	fi
	if want C && [ -z "$c_skip" ]; then
		echo
		echo "C's baseline is curl's own CPU time, without syncing its file; counting an fsync of it (\`sync FILE\`), curl spends $(num "$(get C curl+sync-cpu-s)" 2) CPU-s/GiB and idmd's ratio to it is $(num "$(get C idm/curl+sync)" 2)."
		echo "Wall time of C's downloads, per GiB: idmd $(num "$(get C idm-wall-s)" 2) s (from \`idmctl add\` to the end of \`idmctl wait\`), curl $(num "$(get C curl-wall-s)" 2) s, $(num "$(get C curl+sync-wall-s)" 2) s with its fsync."
	fi
	if want daemon; then
		echo
		BENCH_FILE="$cache/bench-1073741824.bin" bash scripts/bench-daemon.sh
	fi
	if want M; then
		echo
		if need aria2c aria2 && need nginx nginx-light; then
			BENCH_FILE="$cache/bench-1073741824.bin" bash scripts/bench-mirrors.sh
		else
			echo "M skipped: aria2c or nginx missing (apt-get install aria2 nginx-light)"
		fi
	fi
	echo
	echo "Took $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s."
} | tee "$cache/results.md"
