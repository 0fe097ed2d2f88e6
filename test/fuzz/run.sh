#!/usr/bin/env bash
# Builds the libFuzzer harnesses test/fuzz/fuzz_*.c and runs each for a bounded time.
#
#   bash test/fuzz/run.sh [SECONDS] [NAME...]
#
# SECONDS: how long each harness runs (default 20); NAME: fuzz_code, fuzz_email, ...
# (default: every test/fuzz/fuzz_*.c).  Each harness is linked with src/*_core.c only
# (plain C, no server code) and built with clang-14 -fsanitize=fuzzer,address,undefined,
# so a memory error, undefined behaviour, a leak or a failed property check is a crash.
# Prints the executions of each harness; exits non-zero if a build fails or a harness
# crashes (the crashing input is kept and its path printed).
#
# Environment: FUZZ_CORPUS_DIR keeps the corpora between runs (default: a temporary
# directory, removed afterwards); FUZZ_ARTIFACT_DIR receives crashing inputs
# (default /tmp/referral-fuzz-artifacts); FUZZ_WORKERS runs that many fuzzing processes
# per harness, sharing the corpus (default 1).
set -uo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-20}
shift || true
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
	echo "fuzz: SECONDS must be a positive integer (got '$seconds')" >&2
	exit 2
fi
workers=${FUZZ_WORKERS:-1}
if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]]; then
	echo "fuzz: FUZZ_WORKERS must be a positive integer (got '$workers')" >&2
	exit 2
fi

# clang-14 and its libFuzzer runtime (Debian 12: clang-14, libclang-rt-14-dev).
missing=()
for p in clang-14 libclang-rt-14-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "fuzz: missing packages: ${missing[*]}; run as root or install them with apt-get" >&2
		exit 1
	fi
	echo "fuzz: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
		echo "fuzz: apt-get install ${missing[*]} failed" >&2
		exit 1
	}
fi

harnesses=()
if [ $# -gt 0 ]; then
	for name in "$@"; do
		name=${name%.c}
		name=${name#test/fuzz/}
		[ -f "test/fuzz/$name.c" ] || { echo "fuzz: no harness test/fuzz/$name.c" >&2; exit 2; }
		harnesses+=("$name")
	done
else
	for f in test/fuzz/fuzz_*.c; do
		[ -e "$f" ] && harnesses+=("$(basename "$f" .c)")
	done
fi
if [ ${#harnesses[@]} -eq 0 ]; then
	echo "fuzz: no harness in test/fuzz/" >&2
	exit 1
fi

work=$(mktemp -d /tmp/referral-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
corpora=${FUZZ_CORPUS_DIR:-$work/corpus}
artifacts=${FUZZ_ARTIFACT_DIR:-/tmp/referral-fuzz-artifacts}
mkdir -p "$corpora" "$artifacts"
cores=$(ls src/*_core.c)

# A few seeds per harness, so that short runs start from meaningful inputs.
seed() {	# seed HARNESS NAME PRINTF-FORMAT [ARGS...]
	local dir="$corpora/$1" name=$2
	shift 2
	mkdir -p "$dir"
	# shellcheck disable=SC2059
	printf "$@" > "$dir/seed-$name"
}
seed fuzz_code 1 'K7QX-M3PA'
seed fuzz_code 2 'OLIVIA10'
seed fuzz_code 3 '0l1v 1a10'
seed fuzz_code 4 'ab'
seed fuzz_code 5 'ABCDEFGHIJKLM'
seed fuzz_code 6 'AB-#X'
seed fuzz_code 7 '7XK2M9QD7XK2M9QD7XK2M9QD7XK2M9QD7XK2M9QD7XK2M9QD'
seed fuzz_email 1 'Alice.Smith+news@GoogleMail.com'
seed fuzz_email 2 '  bob@example.com '
seed fuzz_email 3 'a@b@c.example'
seed fuzz_email 4 '+tag@example.com'
seed fuzz_url 1 '\001https://shop.example/p?a=1#top\376K7QXM3PA\376news letter'
seed fuzz_url 2 '\000http://shop.example\376OLIVIA10'
seed fuzz_url 3 '\001HTTPS://x.example/?\376a b&c\376'
seed fuzz_url 4 '\001https://s.example/?ref=OLD&utm_source=a&x=1&&utm_medium=b&ref#f\376AB3\376mail'

status=0
summary=()
for h in "${harnesses[@]}"; do
	bin="$work/$h"
	echo "== $h: build (clang-14, fuzzer + address + undefined, $(echo $cores | wc -w) core files)"
	if ! clang-14 -g -O2 -Wall -Wextra -Werror \
			-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
			-Isrc -o "$bin" "test/fuzz/$h.c" $cores -lm; then
		echo "fuzz: $h does not build" >&2
		summary+=("$h: BUILD FAILED")
		status=1
		continue
	fi
	mkdir -p "$corpora/$h"
	echo "== $h: fuzzing for ${seconds}s ($workers worker(s))"
	log="$work/$h.log"
	pids=()
	for w in $(seq 1 "$workers"); do
		"$bin" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix="$artifacts/$h-" \
			"$corpora/$h" > "$log.$w" 2>&1 &
		pids+=($!)
	done
	runs=0
	crashed=0
	for i in "${!pids[@]}"; do
		w=$((i + 1))
		if ! wait "${pids[$i]}"; then
			crashed=1
		fi
		n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log.$w" | tail -1)
		if [ -z "$n" ]; then
			crashed=1
			n=0
		fi
		runs=$((runs + n))
	done
	if [ $crashed -ne 0 ]; then
		for w in $(seq 1 "$workers"); do
			if grep -qE '^(==[0-9]+==ERROR|SUMMARY|MS: |artifact_prefix|Test unit written)' "$log.$w"; then
				echo "---- $h worker $w: last lines of its log"
				tail -n 60 "$log.$w"
			fi
		done
		summary+=("$h: CRASHED after $runs executions (inputs in $artifacts)")
		status=1
	else
		cov=$(grep -oE 'cov: [0-9]+' "$log.1" | tail -1)
		summary+=("$h: $runs executions in ${seconds}s, no crash (${cov:-cov: ?})")
	fi
done

echo "== fuzz summary"
for line in "${summary[@]}"; do
	echo "   $line"
done
exit $status
