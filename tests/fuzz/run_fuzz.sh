#!/bin/bash
# Run a libFuzzer target for a fixed time over a fresh copy of its seeds.
#
# usage: run_fuzz.sh FUZZER FIXTURES_DIR SECONDS WORKDIR [SEED_DIR MAX_LEN
#                    [DICT]]
#
# The seed corpus is every .npy/.npz fixture of at most 8 KiB (or, given
# SEED_DIR, every file in it; inputs then have at most MAX_LEN bytes),
# copied into WORKDIR/corpus (in the build tree; the source tree is never
# written).  DICT, if given and not empty, is a libFuzzer dictionary.
# Crash inputs land in WORKDIR/artifacts.  Fails on any crash, leak,
# sanitizer report, timeout or out-of-memory the fuzzer reports.
set -u
fuzzer=$1 fixtures=$2 seconds=$3 work=$4
seeds=("$fixtures"/*.npy "$fixtures"/*.npz) min_seeds=20 max_len=8192
dict=()
if [ $# -ge 6 ]; then
    seeds=("$5"/*) min_seeds=5 max_len=$6
fi
if [ $# -ge 7 ] && [ -n "$7" ]; then
    dict=("-dict=$7")
fi

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts" || exit 99
nseeds=0
for f in "${seeds[@]}"; do
    [ -f "$f" ] || continue
    [ "$(stat -c %s "$f")" -le 8192 ] || continue
    cp "$f" "$work/corpus/" && nseeds=$((nseeds + 1))
done
if [ "$nseeds" -lt "$min_seeds" ]; then
    echo "only $nseeds seeds found for $fuzzer"
    exit 99
fi
echo "fuzzing $fuzzer for ${seconds}s from $nseeds seeds"

export OPENBLAS_NUM_THREADS=1
"$fuzzer" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" ${dict[@]+"${dict[@]}"} \
    "$work/corpus"
rc=$?
found=$(ls -A "$work/artifacts")
if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    echo "fuzzer failed (status $rc); artifacts in $work/artifacts:"
    ls -l "$work/artifacts"
    exit 1
fi
exit 0
