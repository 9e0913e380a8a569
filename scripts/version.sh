#!/bin/sh
# Prints the version of this build, in a form that Debian's version order
# sorts right: 1.2.3 at a tag v1.2.3, 1.2.3+git4.abc1234 four commits after
# it, and 0.1.0~git57.abc1234 before the first tag (a pre-release of 0.1.0).
# Outside a git checkout: 0.1.0~dev.
cd "$(dirname "$0")/.." || exit 1
if d=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
	echo "$d" | sed -E 's/^v//; s/-([0-9]+)-g([0-9a-f]+)$/+git\1.\2/'
elif n=$(git rev-list --count HEAD 2>/dev/null) && h=$(git rev-parse --short=7 HEAD 2>/dev/null); then
	echo "0.1.0~git$n.$h"
else
	echo "0.1.0~dev"
fi
