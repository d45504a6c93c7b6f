#!/usr/bin/env bash
# Reruns every benchmark and saves the report to benches/results.md (overwritten):
#   1. benches/throughput/ on its three setups: the in-process server, SeaweedFS on loopback
#      (installed and started here as .ci/run does), SeaweedFS behind the WAN relay;
#   2. benches/tools.sh: the s3-syncr command next to aws CLI and rclone.
# About 12 minutes on 2 cores once built; all traffic stays on 127.0.0.1, and every server or
# relay it starts is stopped on exit. Progress and cargo's output go to the terminal.
# The variables of benches/throughput/ (S3SYNCR_BENCH_SETUPS, _CASES, _MIB, _RUNS, ...) and of
# tools.sh (S3SYNCR_TOOLS_SETUPS, ...) pass through.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=.ci/servers.sh
source .ci/servers.sh
ci_servers_init

out=benches/results.md
ci_tmpdir
tmp=$CI_TMPDIR/results.md

# Built before SeaweedFS starts, so that it does not wait on the compiler.
cargo bench --no-run --bench throughput
# Volumes larger than a bucket receives here, as in tools.sh: a write that meets SeaweedFS
# growing a volume waits a second, which says nothing of the client.
SEAWEEDFS_VOLUME_MB=${SEAWEEDFS_VOLUME_MB:-4096}
ci_server_start seaweedfs >&2
# 128 MiB on loopback keeps the whole run near 12 minutes on a busy 2-core machine.
S3SYNCR_BENCH_MIB=${S3SYNCR_BENCH_MIB:-128} S3SYNCR_BENCH_SERVER_NAME="SeaweedFS $SEAWEEDFS_VERSION" \
    ci_with_server_env cargo bench --bench throughput >"$tmp"
# tools.sh starts a SeaweedFS of its own, on the same fixed ports.
ci_server_stop >&2
echo >>"$tmp"
# The throughput report is kept even if tools.sh fails.
bash benches/tools.sh >>"$tmp" || echo "(benches/tools.sh failed: its progress says where)" >>"$tmp"

cp "$tmp" "$out"
cat "$out"
echo "saved to $out" >&2
