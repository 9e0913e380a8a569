#!/usr/bin/env bash
# Downloads from HTTP mirrors, idmd against aria2c (and curl), side by
# side on the very same nginx servers, for the README. Run by make bench
# (scripts/bench.sh, scenario M), or alone after make build. Prints a
# markdown table.
#
#   M1  1 GiB from 4 mirrors: idmd (to a verified, durable file) against
#       aria2c -s4 -x1 (to an unverified file in the page cache).
#   M2  300 MB from 4 mirrors capped at 40, 20, 10 and 5 MB/s (idm-server's
#       HTTP side): each against the ideal time, 4 s.
#   M3  M2 with the 20 MB/s mirror stopped at 30 % of the ideal time:
#       each against the ideal time of what remained.
#   M4  1 GiB from one mirror: idmd (4 connections by default) against
#       aria2c -x4 -s4 and curl.
#   M5  idm-server's start on an unchanged 4 GiB file: the first, which
#       hashes it, and a restart, which finds its manifest in the cache.
#
# Environment:
#   RUNS        runs of each side of each scenario (default 5)
#   BENCH_FILE  the 1 GiB file (default .cache/bench/bench-1073741824.bin)
#   BENCH_HUGE  the 4 GiB file of M5 (default .cache/bench/bench-4294967296.bin)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
RUNS=${RUNS:-5}
big=${BENCH_FILE:-$PWD/.cache/bench/bench-1073741824.bin}
PATH=$PATH:/usr/sbin:/sbin
for tool in nginx aria2c curl; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "bench-mirrors.sh: $tool is missing (Debian: apt-get install nginx-light aria2 curl)" >&2
		exit 1
	fi
done
work=$(mktemp -d "${TMPDIR:-/tmp}/idm-bench-mirrors.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
say() { printf '== %s\n' "$*" >&2; }
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
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

# The files: the 1 GiB one, and its first 300 MB.
if [ ! -f "$big" ]; then
	mkdir -p "$(dirname "$big")"
	head -c $((1 << 30)) /dev/urandom >"$big"
fi
files=$work/files
mkdir -p "$files"
ln -s "$big" "$files/big.bin"
head -c 300000000 "$big" >"$files/mid.bin"
chmod -R a+rX "$files" "$big"

# nginx_start NAME RATE... starts one nginx with a server per RATE ("0"
# for no cap), and sets NGINX_PID and NGINX_PORTS, in RATE's order.
nginx_start() {
	local name=$1 dir=$work/nginx-$1 servers="" p r
	shift
	NGINX_PORTS=()
	mkdir -p "$dir"
	for r in "$@"; do
		p=$(free_port)
		while [[ " ${NGINX_PORTS[*]} " == *" $p "* ]]; do p=$(free_port); done
		NGINX_PORTS+=("$p")
		servers+="server { listen 127.0.0.1:$p; root $files; $([ "$r" = 0 ] || echo "limit_rate $r;") }"$'\n'
	done
	cat >"$dir/nginx.conf" <<EOF
$([ "$(id -u)" = 0 ] && echo "user root;")
worker_processes 2;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 256; }
http {
	access_log off;
	sendfile on;
	client_body_temp_path $dir/body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	default_type application/octet-stream;
	$servers
}
EOF
	nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" </dev/null >"$dir/out.log" 2>&1 &
	NGINX_PID=$!
	pids+=("$NGINX_PID")
	for p in "${NGINX_PORTS[@]}"; do
		until curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$p/mid.bin"; do sleep 0.05; done
	done
}

# idmd, once for every scenario.
export IDMD_SOCKET=$work/idmd.sock
"$BIN/idmd" run --system=false --state-dir "$work/state" 2>>"$work/idmd.log" &
pids+=($!)
until "$BIN/idmctl" version >/dev/null 2>&1; do sleep 0.05; done

# idm_get OUT URL... downloads with idmd into a new directory and prints
# the seconds from idmctl add to the end of idmctl wait.
idm_get() {
	local dir=$work/out s id
	rm -rf "$dir" && mkdir -p "$dir"
	s=$EPOCHREALTIME
	id=$("$BIN/idmctl" add -o "$dir" "$@")
	"$BIN/idmctl" wait "$id" >/dev/null
	awk -v s="$s" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", e - s }'
	"$BIN/idmctl" rm "$id" >/dev/null
	rm -rf "$dir"
}

# aria_get ARGS... downloads with aria2c and prints its seconds.
aria_get() {
	local dir=$work/out s
	rm -rf "$dir" && mkdir -p "$dir"
	s=$EPOCHREALTIME
	aria2c -q -d "$dir" -o f.bin --file-allocation=none --allow-overwrite=true --auto-file-renaming=false "$@"
	awk -v s="$s" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", e - s }'
	rm -rf "$dir"
}

# curl_get URL downloads with curl and prints its seconds.
curl_get() {
	local dir=$work/out s
	rm -rf "$dir" && mkdir -p "$dir"
	s=$EPOCHREALTIME
	curl -sS --fail -o "$dir/f.bin" "$1"
	awk -v s="$s" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", e - s }'
	rm -rf "$dir"
}

# urls FILE PORT... prints the URLs of FILE on each port.
urls() {
	local f=$1 p
	shift
	for p in "$@"; do echo "http://127.0.0.1:$p/$f"; done
}

# --- M1 and M4: unlimited mirrors -----------------------------------------
nginx_start fast 0 0 0 0
mapfile -t m1 < <(urls big.bin "${NGINX_PORTS[@]}")
say "M1: 1 GiB from 4 mirrors, idmd and aria2c -s4 -x1, $RUNS runs each (and one to warm up)"
for ((i = 0; i <= RUNS; i++)); do
	a=$(idm_get "${m1[@]}")
	b=$(aria_get -s4 -x1 "${m1[@]}")
	((i > 0)) || continue
	echo "$a" >>"$work/m1-idm"
	echo "$b" >>"$work/m1-aria"
	awk -v a="$a" -v b="$b" 'BEGIN { print a / b }' >>"$work/m1-ratio"
	printf '   run %d: idmd %s s, aria2c %s s\n' "$i" "$a" "$b" >&2
done
say "M4: 1 GiB from one mirror, idmd (4 connections), aria2c -x4 -s4 and curl, $RUNS runs each"
for ((i = 0; i <= RUNS; i++)); do
	a=$(idm_get "${m1[0]}")
	b=$(aria_get -x4 -s4 "${m1[0]}")
	c=$(curl_get "${m1[0]}")
	((i > 0)) || continue
	echo "$a" >>"$work/m4-idm"
	echo "$b" >>"$work/m4-aria"
	echo "$c" >>"$work/m4-curl"
	awk -v a="$a" -v b="$b" 'BEGIN { print a / b }' >>"$work/m4-ratio"
	printf '   run %d: idmd %s s, aria2c %s s, curl %s s\n' "$i" "$a" "$b" "$c" >&2
done
kill "$NGINX_PID"
wait "$NGINX_PID" 2>/dev/null || true

# --- M2 and M3: mirrors capped at 40, 20, 10 and 5 MB/s ---------------------
# idm-server's HTTP side, whose --rate caps each server whatever the
# requests: nginx's limit_rate holds per request and lets the first
# second's worth of each one through at once, which would favour a client
# that asks for many short ranges. Its console stops a server (E2).

# servers_start starts four servers of mid.bin capped at 40, 20, 10 and
# 5 MB/s, with their console on a pipe, and sets SERVERS_PID, SERVERS_IN
# (a descriptor writing to the console) and M2 (their URLs).
servers_start() {
	local ports=() p
	while ((${#ports[@]} < 4)); do
		p=$(free_port)
		[[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
	done
	rm -f "$work/console"
	mkfifo "$work/console"
	"$BIN/idm-server" -i 3600 -n 4 -f "$files/mid.bin" -p "${ports[@]}" --bind 127.0.0.1 \
		--rate 40M,20M,10M,5M <"$work/console" >"$work/servers.log" 2>&1 &
	SERVERS_PID=$!
	pids+=("$SERVERS_PID")
	exec {SERVERS_IN}>"$work/console"
	M2=()
	for p in "${ports[@]}"; do
		until curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$p/mid.bin"; do sleep 0.05; done
		M2+=("http://127.0.0.1:$p/mid.bin")
	done
}
servers_stop() {
	exec {SERVERS_IN}>&-
	kill "$SERVERS_PID" 2>/dev/null || true
	wait "$SERVERS_PID" 2>/dev/null || true
}

ideal2=4 # 300 MB at 75 MB/s
# Stopped at 30 % of the ideal time: 90 MB done by then, and 210 MB left
# at 55 MB/s.
stop_at=1.2
ideal3=$(awk 'BEGIN { printf "%.3f", 1.2 + 210 / 55 }')
say "M2: 300 MB from idm-server's HTTP side at 40, 20, 10 and 5 MB/s, $RUNS runs each"
for ((i = 1; i <= RUNS; i++)); do
	for side in idm aria; do
		servers_start
		if [ $side = idm ]; then t=$(idm_get "${M2[@]}"); else t=$(aria_get -s4 -x1 "${M2[@]}"); fi
		servers_stop
		echo "$t" >>"$work/m2-$side"
		printf '   run %d: %s %s s (ideal %s s)\n' "$i" "$side" "$t" "$ideal2" >&2
	done
done
say "M3: the same, the 20 MB/s server stopped after $stop_at s, $RUNS runs each"
for ((i = 1; i <= RUNS; i++)); do
	for side in idm aria; do
		servers_start
		(sleep "$stop_at" && echo E2 >&"$SERVERS_IN") &
		stopper=$!
		if [ $side = idm ]; then
			t=$(idm_get "${M2[@]}")
		else
			t=$(aria_get -s4 -x1 --max-tries=1 --retry-wait=1 "${M2[@]}")
		fi
		wait "$stopper" 2>/dev/null || true
		servers_stop
		echo "$t" >>"$work/m3-$side"
		printf '   run %d: %s %s s (ideal %s s)\n' "$i" "$side" "$t" "$ideal3" >&2
	done
done

# --- M5: idm-server's start, hashing and from its cache -------------------
huge=${BENCH_HUGE:-$(dirname "$big")/bench-4294967296.bin}
if [ ! -f "$huge" ] || [ "$(stat -c %s "$huge")" != $((4 << 30)) ]; then
	say "making a 4 GiB random file"
	head -c $((4 << 30)) /dev/urandom >"$huge.tmp" && mv "$huge.tmp" "$huge"
fi
# server_start prints the seconds from idm-server's exec to its port
# answering, the file's manifest built or read from the cache in $1.
server_start() {
	local p s
	p=$(free_port)
	s=$EPOCHREALTIME
	"$BIN/idm-server" -i 3600 -n 1 -f "$huge" -p "$p" --bind 127.0.0.1 --cache-dir "$1" \
		</dev/null >"$work/m5.log" 2>&1 &
	local pid=$!
	until (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || { cat "$work/m5.log" >&2; return 1; }
	done
	awk -v s="$s" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.3f\n", e - s }'
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}
cat "$huge" >/dev/null # in the page cache, as for a restart
say "M5: idm-server's start on a 4 GiB file, first and from the cache, 3 runs each"
for ((i = 1; i <= 3; i++)); do
	rm -rf "$work/m5-cache"
	install -d -m 0700 "$work/m5-cache"
	first=$(server_start "$work/m5-cache")
	again=$(server_start "$work/m5-cache")
	echo "$first" >>"$work/m5-first"
	echo "$again" >>"$work/m5-again"
	printf '   run %d: first start %s s, restart %s s\n' "$i" "$first" "$again" >&2
done

ms() { awk -v s="$1" 'BEGIN { printf "%.2f s", s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
m1i=$(median <"$work/m1-idm") m1a=$(median <"$work/m1-aria") m1r=$(median <"$work/m1-ratio")
m2i=$(median <"$work/m2-idm") m2a=$(median <"$work/m2-aria")
m3i=$(median <"$work/m3-idm") m3a=$(median <"$work/m3-aria")
m4i=$(median <"$work/m4-idm") m4a=$(median <"$work/m4-aria") m4c=$(median <"$work/m4-curl") m4r=$(median <"$work/m4-ratio")
ok() { awk -v v="$1" -v g="$2" 'BEGIN { printf (v <= g ? "yes" : "**no**") }'; }
echo "| Mirror scenario (median of $RUNS) | idmd | aria2c | Ratio | Goal | Met? |"
echo "|---|---|---|---|---|---|"
echo "| M1. 1 GiB from 4 mirrors (idmd to a verified, durable file; aria2c -s4 -x1) | $(ms "$m1i") | $(ms "$m1a") | $(printf '%.2f' "$m1r") | <= 1.0 (stretch 0.77) | $(ok "$m1r" 1.0) |"
echo "| M2. 300 MB from 4 mirrors at 40/20/10/5 MB/s, against the ideal $ideal2 s | $(ms "$m2i") | $(ms "$m2a") | idmd $(ratio "$m2i" "$ideal2"), aria2c $(ratio "$m2a" "$ideal2") | idmd <= 1.08 and ahead | $(awk -v a="$m2i" -v b="$m2a" -v g="$ideal2" 'BEGIN { printf ((a / g <= 1.08 && a < b) ? "yes" : "**no**") }') |"
echo "| M3. M2 with the 20 MB/s mirror stopped at 30 %, against the ideal $ideal3 s | $(ms "$m3i") | $(ms "$m3a") | idmd $(ratio "$m3i" "$ideal3"), aria2c $(ratio "$m3a" "$ideal3") | idmd <= 1.1 | $(ok "$(ratio "$m3i" "$ideal3")" 1.1) |"
echo "| M4. 1 GiB from one mirror (idmd 4 connections, aria2c -x4 -s4; curl $(ms "$m4c")) | $(ms "$m4i") | $(ms "$m4a") | $(printf '%.2f' "$m4r") | | |"
m5f=$(median <"$work/m5-first") m5a=$(median <"$work/m5-again")
echo "| M5. idm-server's start on an unchanged 4 GiB file (median of 3): first, hashing it | $(ms "$m5f") | | | | |"
echo "| M5. the same, restarted: its manifest from the cache | $(awk -v s="$m5a" 'BEGIN { printf "%.3f s", s }') | | | < 0.1 s | $(ok "$m5a" 0.1) |"
echo
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -r); $(aria2c --version | head -1), $(nginx -v 2>&1 | sed 's/.*: //')."
