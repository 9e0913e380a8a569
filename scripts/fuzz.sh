#!/usr/bin/env bash
# make fuzz: every fuzz target of the packages given, for FUZZTIME each.
#
#   scripts/fuzz.sh FUZZTIME PACKAGE...
#
# A failing input the fuzzer writes to PACKAGE/testdata/fuzz fails at once.
# Go's fuzzing coordinator may also fail a target at the end of -fuzztime
# with a bare "context deadline exceeded" and no failing input, when the
# machine is busy (golang/go#75804, fixed in Go 1.27): such a run proves
# nothing either way, and is run once more.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
fuzztime=$1
shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
inputs() { find "$1/testdata/fuzz/$2" -type f 2>/dev/null | sort; }
for p in "$@"; do
	for t in $($GO test -list 'Fuzz.*' "$p" | grep '^Fuzz'); do
		for try in 1 2; do
			echo "== $p $t"
			before=$(inputs "$p" "$t")
			$GO test -run '^$' -fuzz "^$t\$" -fuzztime "$fuzztime" "$p" 2>&1 | tee "$out"
			[ "${PIPESTATUS[0]}" -eq 0 ] && break
			if [ "$try" -eq 1 ] && [ "$(inputs "$p" "$t")" = "$before" ] &&
				grep -qx '    context deadline exceeded' "$out" && ! grep -q 'Failing input written' "$out"; then
				echo "fuzz.sh: $t failed at its deadline with no failing input (golang/go#75804): once more"
				continue
			fi
			exit 1
		done
	done
done
