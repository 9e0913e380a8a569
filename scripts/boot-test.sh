#!/usr/bin/env bash
# make test-boot: the Debian package in a Debian booted by a real systemd.
#
#   scripts/boot-test.sh NEW.deb OLD.deb
#
# It builds (once, cached in .cache/boot/rootfs) a Debian bookworm root file
# system with debootstrap from the mirror this machine's apt uses, boots a
# copy of it with systemd-nspawn (systemd as PID 1) and runs commands in it
# with nsenter. The container shares this machine's network, so its idmd
# downloads from idm-server on 127.0.0.1. Then:
#
#   1. installs OLD.deb: idmd is active, a member of group idm uses idmctl;
#   2. queues job 1 and upgrades to NEW.deb while it runs: it finishes;
#   3. queues job 2 and cuts the power (kill -9 of the container's PID 1)
#      half way; boots again: idmd resumes the job by itself, it finishes;
#   4. queues job 3 and reboots cleanly (systemctl reboot) half way: same;
#   5. stops idmd: idmd status and idmctl say it is installed but stopped;
#   6. dpkg -r, then dpkg -P: nothing of idm is left but what is documented.
#
# Every downloaded file is compared with the served one (SHA-256). Each step
# prints how long it took. Runs as root; leaves no container or mount behind.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

die() {
	printf '\nboot-test: FAIL: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, systemd-nspawn and nsenter need it): sudo make test-boot"
[ $# = 2 ] || die "usage: $0 NEW.deb OLD.deb"
NEW_DEB=$(realpath "$1")
OLD_DEB=$(realpath "$2")
[ -f "$NEW_DEB" ] || die "no package $NEW_DEB (make deb)"
[ -f "$OLD_DEB" ] || die "no package $OLD_DEB"

SUITE=bookworm
CACHE=${BOOT_CACHE:-$REPO/.cache/boot}
ROOTFS=$CACHE/rootfs      # pristine, built once
RUN=$CACHE/run            # this run: the container's root and the logs
ROOT=$RUN/root            # an overlay on ROOTFS (or a copy of it)
SERVER=$REPO/bin/idm-server
FILE_MIB=${BOOT_FILE_MIB:-32}
RATE=${BOOT_RATE:-1M}     # per server; 4 servers
DEADLINE=${BOOT_DEADLINE:-180}
ALICE=alice
mkdir -p "$CACHE"

# ---- timings ---------------------------------------------------------------

TIMINGS=()
T0=$EPOCHREALTIME
step_start=$T0
step() { step_start=$EPOCHREALTIME; printf '\n== %s\n' "$*"; }
done_step() {
	local d
	d=$(awk -v a="$step_start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}')
	TIMINGS+=("$(printf '%8ss  %s' "$d" "$*")")
	printf '   [%ss] %s\n' "$d" "$*"
}
say() { printf '   %s\n' "$*"; }

# ---- the container ---------------------------------------------------------

NSPID=    # systemd-nspawn
PID1=     # the container's systemd
SRVPID=   # idm-server
BOOTS=0

# ct runs a command in the container, as root, with a clean environment.
ct() {
	nsenter -t "$PID1" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}
# as_alice runs a command in the container as the member of group idm.
as_alice() { ct runuser -u "$ALICE" -- "$@"; }

# boot starts the container and waits until systemd reports the system up.
boot() {
	BOOTS=$((BOOTS + 1))
	local log=$RUN/console.$BOOTS.log
	systemd-nspawn -D "$ROOT" -b --register=no --keep-unit --machine=idm-boot \
		</dev/null >"$log" 2>&1 &
	NSPID=$!
	PID1=
	local end=$((SECONDS + 30)) p
	while [ -z "$PID1" ]; do
		kill -0 "$NSPID" 2>/dev/null || { cat "$log" >&2; die "systemd-nspawn exited while starting"; }
		[ $SECONDS -lt $end ] || die "the container's systemd did not appear"
		for p in $(pgrep -P "$NSPID" || true); do
			[ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ] && PID1=$p
		done
		[ -n "$PID1" ] || sleep 0.05
	done
	# systemctl answers once systemd listens on its private socket.
	local state
	end=$((SECONDS + 60))
	until state=$(timeout 60 nsenter -t "$PID1" -a systemctl is-system-running --wait 2>&1) ||
		[[ $state =~ ^(running|degraded|maintenance|stopping|offline)$ ]]; do
		[ $SECONDS -lt $end ] || break
		sleep 0.05
	done
	if [ "$state" != running ]; then
		ct systemctl --failed --no-pager >&2 || true
		die "the container's systemd says \"$state\", not running"
	fi
}

# wait_exit waits for systemd-nspawn to end and returns its status.
wait_exit() {
	local rc=0
	wait "$NSPID" || rc=$?
	NSPID= PID1=
	return $rc
}

# unmount_all unmounts the overlay and anything a container left below it.
unmount_all() {
	local m
	for m in $(findmnt -rno TARGET | grep -F "$RUN/" | sort -r || true); do umount -l "$m" || true; done
}

cleanup() {
	local rc=$?
	set +e
	if [ $rc != 0 ] && [ -n "$PID1" ] && kill -0 "$PID1" 2>/dev/null; then
		echo "--- idmd in the container:" >&2
		ct systemctl status idmd --no-pager -l >&2
		ct journalctl -u idmd --no-pager -n 60 >&2
	fi
	if [ -n "$PID1" ]; then kill -9 "$PID1" 2>/dev/null; fi
	if [ -n "$NSPID" ]; then
		for _ in $(seq 100); do kill -0 "$NSPID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$NSPID" 2>/dev/null
		wait "$NSPID" 2>/dev/null
	fi
	if [ -n "$SRVPID" ]; then
		kill "$SRVPID" 2>/dev/null
		wait "$SRVPID" 2>/dev/null
	fi
	# nspawn's mounts live in its own namespace; this is for the unexpected.
	unmount_all
	rm -rf "$ROOT" "$RUN/upper" "$RUN/work" "$RUN/file.bin"
	if [ $rc != 0 ]; then
		echo "boot-test: logs in $RUN" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- jobs ------------------------------------------------------------------

# field ID KEY prints a top-level field of the job; verified prints its
# verified bytes.
field() { as_alice idmctl --json status "$1" | sed -n "s/^  \"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n 1; }
verified() { as_alice idmctl --json status "$1" | sed -n 's/^    "verified": \([0-9]*\),$/\1/p' | head -n 1; }
percent() { awk -v v="$(verified "$1")" -v s="$FILE_BYTES" 'BEGIN{printf "%.0f", 100*v/s}'; }

# add DIR queues the served file into DIR as alice and prints the job ID.
add() {
	local id
	id=$(as_alice idmctl add -o "$1" "${SOURCES[@]}") || die "idmctl add -o $1 failed"
	[[ $id =~ ^[0-9]+$ ]] || die "idmctl add printed \"$id\", not a job ID"
	echo "$id"
}

# wait_percent ID P waits until job ID has P% of the file verified.
wait_percent() {
	local end=$((SECONDS + DEADLINE))
	while [ "$(percent "$1")" -lt "$2" ]; do
		[ "$(field "$1" state)" != completed ] || die "job $1 completed before it reached $2%: too fast to interrupt (raise BOOT_FILE_MIB)"
		[ $SECONDS -lt $end ] || die "job $1 did not reach $2% in ${DEADLINE}s"
		sleep 0.1
	done
}

# finish ID PATH waits for job ID without touching it and compares the
# file with the served one.
finish() {
	local id=$1 path=$2 st end=$((SECONDS + DEADLINE))
	while st=$(field "$id" state); [ "$st" != completed ]; do
		case $st in failed | cancelled | paused) die "job $id is $st" ;; esac
		[ $SECONDS -lt $end ] || die "job $id did not complete in ${DEADLINE}s (state $st)"
		sleep 0.2
	done
	as_alice idmctl wait "$id" >/dev/null || die "idmctl wait $id: not completed"
	local got
	got=$(ct sha256sum "$path" | cut -d' ' -f1)
	[ "$got" = "$FILE_SHA" ] || die "job $id: $path has SHA-256 $got, the served file $FILE_SHA"
	say "job $id completed; $path is byte-identical to the served file (sha256 ${got:0:16}...)"
}

# opened prints the "state opened" line of idmd in this boot.
opened() { ct journalctl -u idmd -b 0 --no-pager -o cat | grep 'state opened' | tail -n 1; }

# ---- 0. tools, mirror, root file system -----------------------------------

step "tools"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v nsenter >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "${missing[@]}" >"$CACHE/apt.log" 2>&1 ||
		{ apt-get update >>"$CACHE/apt.log" 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >>"$CACHE/apt.log" 2>&1; } ||
		die "apt-get install ${missing[*]} failed; see $CACHE-apt.log"
fi
[ -x "$SERVER" ] || die "no $SERVER (make build)"
done_step "tools present (debootstrap, systemd-nspawn, nsenter)"

# mirror prints the first Debian archive URI of apt's sources: one that
# serves a plain suite (not -security or -updates).
mirror() {
	{
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
				if (i < NF && $(i+1) !~ /[-\/]/) print $i }'
		cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
			awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no") { n = split(suites, s, " "); for (i = 1; i <= n; i++) if (s[i] !~ /[-\/]/) { split(uris, u, " "); print u[1]; break } } types = uris = suites = enabled = "" }
				/^[[:space:]]*$/ { flush(); next }
				/^Types:/ { sub(/^Types:[[:space:]]*/, ""); types = $0 }
				/^URIs:/ { sub(/^URIs:[[:space:]]*/, ""); uris = $0 }
				/^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
				/^Enabled:/ { sub(/^Enabled:[[:space:]]*/, ""); enabled = $0 }
				END { flush() }'
	} | head -n 1
}

step "root file system"
if [ -f "$ROOTFS/.idm-boot-ready" ]; then
	done_step "root file system: cached in $ROOTFS"
else
	MIRROR=${BOOT_MIRROR:-$(mirror)}
	[ -n "$MIRROR" ] || die "no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d (set BOOT_MIRROR)"
	say "debootstrap $SUITE from $MIRROR (once; cached afterwards)"
	rm -rf "$CACHE/rootfs.tmp"
	mkdir -p "$CACHE"
	if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus \
		"$SUITE" "$CACHE/rootfs.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
		tail -n 15 "$CACHE/debootstrap.log" >&2
		printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
		printf '!!! debootstrap could not build Debian %s from %s\n' "$SUITE" "$MIRROR" >&2
		printf '!!! (is the mirror reachable?). The boot test did NOT run.\n' >&2
		printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
		die "debootstrap failed; log: $CACHE/debootstrap.log"
	fi
	echo idm-boot >"$CACHE/rootfs.tmp/etc/hostname"
	: >"$CACHE/rootfs.tmp/etc/machine-id"
	touch "$CACHE/rootfs.tmp/.idm-boot-ready"
	rm -rf "$ROOTFS"
	mv "$CACHE/rootfs.tmp" "$ROOTFS"
	done_step "root file system: debootstrap $SUITE from $MIRROR"
fi

step "a fresh root for the container, and idm-server on the host"
# A container left by an interrupted run has the same root; end it.
for p in $(pgrep -f "systemd-nspawn -D $ROOT " || true); do
	for c in $(pgrep -P "$p" || true); do kill -9 "$c" 2>/dev/null || true; done
	kill -9 "$p" 2>/dev/null || true
done
unmount_all
rm -rf "$RUN"
mkdir -p "$RUN/upper" "$RUN/work" "$ROOT"
# Every run starts from the pristine root: an overlay keeps its changes in
# RUN/upper; where overlayfs is missing, a copy does.
if mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$RUN/upper,workdir=$RUN/work" "$ROOT" 2>/dev/null; then
	how="an overlay on the root file system"
else
	cp -a "$ROOTFS/." "$ROOT"
	how="a copy of the root file system"
fi
cp "$OLD_DEB" "$ROOT/root/idm-old.deb"
cp "$NEW_DEB" "$ROOT/root/idm-new.deb"

head -c $((FILE_MIB << 20)) /dev/urandom >"$RUN/file.bin"
FILE_BYTES=$((FILE_MIB << 20))
FILE_SHA=$(sha256sum "$RUN/file.bin" | cut -d' ' -f1)
# Four free ports on the loopback interface.
free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
base=$((20000 + RANDOM % 20000))
until free $base && free $((base + 1)) && free $((base + 2)) && free $((base + 3)); do base=$((base + 4)); done
PORTS=($base $((base + 1)) $((base + 2)) $((base + 3)))
SOURCES=()
for p in "${PORTS[@]}"; do SOURCES+=("idm://127.0.0.1:$p"); done
"$SERVER" -i 5 -n 4 -f "$RUN/file.bin" -p "${PORTS[@]}" --rate "$RATE" --bind 127.0.0.1 \
	</dev/null >"$RUN/idm-server.log" 2>&1 &
SRVPID=$!
end=$((SECONDS + 30))
until ! free "${PORTS[3]}"; do
	kill -0 "$SRVPID" 2>/dev/null || { cat "$RUN/idm-server.log" >&2; die "idm-server exited"; }
	[ $SECONDS -lt $end ] || die "idm-server did not listen on ${PORTS[*]}"
	sleep 0.05
done
done_step "$how; idm-server: $FILE_MIB MiB file, 4 servers x $RATE/s on ports ${PORTS[*]}"

# ---- 1. install ------------------------------------------------------------

step "boot"
boot
done_step "boot 1: systemd is PID 1 of the container and the system is running"

step "install the older package"
ct dpkg -i /root/idm-old.deb >"$RUN/dpkg-install.log" 2>&1 || { cat "$RUN/dpkg-install.log" >&2; die "dpkg -i of the older package failed"; }
ct systemctl is-active --quiet idmd || die "idmd is not active after dpkg -i"
ct systemctl is-enabled --quiet idmd || die "idmd is not enabled after dpkg -i"
user=$(ct stat -c %U "/proc/$(ct systemctl show -p MainPID --value idmd)")
say "$(ct idmd version); idmd.service active and enabled, running as user $user"
[ "$user" = idm ] || die "idmd does not run as user idm"
ct stat -c '   socket: %n %A %U:%G' /run/idmd/idmd.sock
mode=$(ct stat -c %a /var/lib/idmd/downloads)
say "/var/lib/idmd/downloads: mode $mode"
[ "$mode" = 3775 ] || die "/var/lib/idmd/downloads has mode $mode, want 3775 (group idm, sticky)"
done_step "dpkg -i $(basename "$OLD_DEB")"

step "a member of group idm uses idmctl"
ct useradd --create-home --groups idm "$ALICE"
as_alice idmctl ls >/dev/null || die "$ALICE (group idm) cannot use idmctl ls"
ct useradd --create-home bob
if ct runuser -u bob -- idmctl --socket /run/idmd/idmd.sock ls >/dev/null 2>&1; then
	die "bob, not in group idm, may use the socket"
fi
say "$ALICE (groups: $(ct id -nG "$ALICE")): idmctl ls works; bob (not in idm) is refused"
# A download directory outside the state, as an administrator adds one.
ct install -d -g idm -m 3775 /srv/downloads /srv/downloads/job1 /srv/downloads/job3
ct sed -i 's|^IDMD_DOWNLOAD_DIRS=.*|IDMD_DOWNLOAD_DIRS="/srv/downloads"|' /etc/default/idmd
ct systemctl daemon-reload
ct systemctl restart idmd
say "IDMD_DOWNLOAD_DIRS=\"/srv/downloads\" in /etc/default/idmd; $(ct systemctl show -p ReadWritePaths idmd)"
done_step "idmctl as a member of idm; /srv/downloads configured"

# ---- 2. upgrade with a job under way ---------------------------------------

step "upgrade while job 1 downloads"
J1=$(add /srv/downloads/job1)
wait_percent "$J1" 20
# As packages before the sticky bit left the shared directory: the upgrade
# must add it.
ct chmod -t /var/lib/idmd/downloads
say "job $J1 at $(percent "$J1")%; /var/lib/idmd/downloads made $(ct stat -c %a /var/lib/idmd/downloads); dpkg -i $(basename "$NEW_DEB")"
ct dpkg -i /root/idm-new.deb >"$RUN/dpkg-upgrade.log" 2>&1 || { cat "$RUN/dpkg-upgrade.log" >&2; die "dpkg -i (upgrade) failed"; }
ct systemctl is-active --quiet idmd || die "idmd is not active after the upgrade"
mode=$(ct stat -c %a /var/lib/idmd/downloads)
[ "$mode" = 3775 ] || die "after the upgrade /var/lib/idmd/downloads has mode $mode, want 3775"
say "now $(ct idmd version); job $J1 is $(field "$J1" state) at $(percent "$J1")%"
finish "$J1" /srv/downloads/job1/file.bin
done_step "upgrade over the older package with job $J1 under way; it finished by itself; the shared directory is sticky again"

# ---- 3. power cut ----------------------------------------------------------

step "power cut while job 2 downloads"
J2=$(add /var/lib/idmd/downloads)
wait_percent "$J2" 25
at=$(percent "$J2")
kill -9 "$PID1"
rc=0
wait_exit || rc=$?
say "job $J2 at $at%: kill -9 of the container's PID 1; systemd-nspawn exited ($rc)"
done_step "power cut at $at% of job $J2"

step "boot after the power cut"
boot
ct systemctl is-active --quiet idmd || die "idmd is not active after the power cut"
say "idmd: $(opened)"
opened | grep -q 'clean_shutdown=false' || die "idmd did not notice the unclean shutdown"
done_step "boot 2: idmd active again"

step "job 2 goes on by itself"
say "job $J2 is $(field "$J2" state) at $(percent "$J2")%"
finish "$J2" /var/lib/idmd/downloads/file.bin
done_step "job $J2 finished after the power cut, untouched"

# ---- 4. clean reboot -------------------------------------------------------

step "clean reboot while job 3 downloads"
J3=$(add /srv/downloads/job3)
wait_percent "$J3" 25
at=$(percent "$J3")
ct systemctl reboot
rc=0
wait_exit || rc=$?
[ $rc = 133 ] || die "systemd-nspawn exited with $rc after systemctl reboot, not 133 (reboot)"
say "job $J3 at $at%: systemctl reboot; systemd-nspawn exited 133 (reboot)"
done_step "clean reboot at $at% of job $J3"

step "boot after the reboot"
boot
ct systemctl is-active --quiet idmd || die "idmd is not active after the reboot"
say "idmd: $(opened)"
opened | grep -q 'clean_shutdown=true' || die "idmd's shutdown at the reboot was not clean"
say "job $J3 is $(field "$J3" state) at $(percent "$J3")%"
finish "$J3" /srv/downloads/job3/file.bin
done_step "boot 3, and job $J3 finished after the reboot, untouched"

# ---- 5. installed but stopped ----------------------------------------------

step "installed but stopped"
ct systemctl stop idmd
rc=0
out=$(as_alice idmd status) || rc=$?
say "idmd status: $out (exit $rc)"
[ $rc = 3 ] && [[ $out == *"installed but not running"*"sudo systemctl start idmd"* ]] || die "idmd status does not say that the service is stopped"
rc=0
out=$(as_alice idmctl ls 2>&1) || rc=$?
say "idmctl ls: $out (exit $rc)"
[[ $out == *"installed but not running"*"sudo systemctl start idmd"* ]] || die "idmctl does not say that the service is installed but stopped"
ct systemctl start idmd
out=$(as_alice idmd status) || die "idmd status after start: $out"
say "after systemctl start: $out"
done_step "idmd status and idmctl on a stopped service"

# ---- 6. remove and purge ---------------------------------------------------

# leftovers prints every file of idm's in the container.
leftovers() {
	ct find / -xdev \( -path /proc -o -path /sys -o -path /home -o -path /srv/downloads -o -path /root \) -prune -o \
		\( -name 'idm' -o -name 'idm-*' -o -name 'idm_*' -o -name 'idmd*' -o -name 'idmctl*' \) -print 2>/dev/null
	ct find /run -xdev -name '*idmd*' -print 2>/dev/null
}

step "dpkg -r"
ct dpkg -r idm >"$RUN/dpkg-remove.log" 2>&1 || { cat "$RUN/dpkg-remove.log" >&2; die "dpkg -r failed"; }
left=$(ct find /proc -maxdepth 1 -regex '/proc/[0-9]+' -user idm)
[ -z "$left" ] || die "processes of user idm still run after dpkg -r: $left"
ct systemctl is-active --quiet idmd && die "idmd is still active after dpkg -r"
left=$(leftovers | sort)
say "left after dpkg -r: the settings and the jobs, as documented:"
printf '%s\n' "$left" | sed 's/^/      /'
for f in /usr/bin/idmd /usr/bin/idmctl /usr/bin/idm-server /lib/systemd/system/idmd.service /lib/systemd/system-generators/idmd-generator /run/idmd; do
	ct test ! -e "$f" || die "$f is left after dpkg -r"
done
[ "$left" = $'/etc/default/idmd\n/var/lib/idmd\n/var/lib/idmd/idmd.db' ] || die "unexpected files after dpkg -r"
ct test -f /var/lib/idmd/downloads/file.bin || die "dpkg -r deleted a download"
done_step "dpkg -r: binaries and unit gone, idmd stopped; settings, jobs and downloads kept"

step "install again after dpkg -r"
ct dpkg -i /root/idm-new.deb >"$RUN/dpkg-reinstall.log" 2>&1 || { cat "$RUN/dpkg-reinstall.log" >&2; die "dpkg -i after dpkg -r failed"; }
ct systemctl is-active --quiet idmd || die "idmd is not active after installing again"
ct systemctl is-enabled --quiet idmd || die "idmd is not enabled after installing again"
n=$(as_alice idmctl ls | grep -c ' completed ') || true
[ "$n" = 3 ] || die "after installing again idmctl ls shows $n completed jobs, not 3"
say "idmd enabled and active again, with the 3 jobs of before"
done_step "dpkg -i after dpkg -r"

step "dpkg -P"
ct dpkg -P idm >"$RUN/dpkg-purge.log" 2>&1 || { cat "$RUN/dpkg-purge.log" >&2; die "dpkg -P failed"; }
left=$(leftovers)
[ -z "$left" ] || die "left after dpkg -P: $left"
ct dpkg-query -W idm >/dev/null 2>&1 && die "dpkg still knows the package after dpkg -P"
say "nothing of idm is left; kept as documented: the account $(ct getent passwd idm | cut -d: -f1-3) and group $(ct getent group idm), and the downloads in /srv/downloads (the administrator's)"
done_step "dpkg -P: nothing left"

# ---- timings ---------------------------------------------------------------

total=$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b-a}')
printf '\nboot-test: PASS in %ss\n' "$total"
printf '%s\n' "${TIMINGS[@]}"
