#!/bin/sh
# Runs the benchmarks in release and saves the report to benches/results.md (overwritten).
# Progress and cargo's output go to the terminal; the report is also printed.
# Scale and runs: S3SYNCR_BENCH_MIB (default 256), S3SYNCR_BENCH_RUNS (default 3).
# An external server: S3SYNCR_TEST_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
set -eu
cd "$(dirname "$0")/.."
out=benches/results.md
tmp="$out.tmp"
trap 'rm -f "$tmp"' EXIT
cargo bench --bench throughput > "$tmp"
mv "$tmp" "$out"
cat "$out"
echo "saved to $out" >&2
