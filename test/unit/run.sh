#!/usr/bin/env bash
# Builds and runs the plain-C unit tests of the server-independent core: every
# test/unit/test_*.c is linked with src/*_core.c and must exit 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
cores=$(ls src/*_core.c 2>/dev/null || true)
for t in test/unit/test_*.c; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .c)
	gcc -std=c99 -O1 -g -Wall -Wextra -Werror -Isrc -o "$out/$name" "$t" $cores
	if "$out/$name"; then echo "ok   $name"; else echo "FAIL $name"; status=1; fi
done
exit $status
