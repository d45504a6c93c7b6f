#!/usr/bin/env bash
# What checksums cost the client's CPU, on SeaweedFS on loopback, over HTTP and over HTTPS:
#
#   upload: `s3-syncr append` of this build against S3SYNCR_CPU_BEFORE (an older build of the
#           command, e.g. one from before the checksums; that row is skipped without it)
#   read:   `s3-syncr cat` (objects checked against their stored CRC32C) against
#           `s3-syncr cat --no-verify`
#
# Client CPU is user + system time of the command (getrusage of the child, microseconds), for
# S3SYNCR_CPU_MIB (256) MiB of random bytes. The two variants of a row run alternately,
# S3SYNCR_CPU_RUNS (7) times each, so that a machine busy for a while slows both alike; the
# report gives each variant's median CPU seconds per GiB and their ratio. tools.sh measures
# whole commands against other tools; this isolates one change's CPU cost, which is a few
# percent and drowns in the noise of three runs. About 3 minutes on 2 cores once built.
#
# The report (markdown) goes to stdout, progress to stderr. Everything it starts is stopped
# on exit; all traffic stays on 127.0.0.1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=.ci/servers.sh
source .ci/servers.sh
ci_servers_init

MIB=${S3SYNCR_CPU_MIB:-256}
RUNS=${S3SYNCR_CPU_RUNS:-7}
BEFORE=${S3SYNCR_CPU_BEFORE:-}

cargo build --release --features cli --bin s3-syncr >&2
# The aws CLI creates the bucket: SeaweedFS has none to start with.
command -v aws >/dev/null || ci_pip_install awscli >&2
NOW=target/release/s3-syncr
SEAWEEDFS_VOLUME_MB=${SEAWEEDFS_VOLUME_MB:-4096}
ci_server_start seaweedfs_https >&2
plain=""
for pair in "${CI_S3_EXTRA_ENV[@]}"; do
    [[ $pair == S3SYNCR_TEST_PLAIN_ENDPOINT=* ]] && plain=${pair#*=}
done
ci_tmpdir
data=$CI_TMPDIR/cpu.data
head -c $((MIB << 20)) /dev/urandom >"$data"
bucket=cpu$RANDOM$RANDOM
AWS_ACCESS_KEY_ID=$CI_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CI_S3_SECRET_KEY \
    aws s3api create-bucket --region "$CI_S3_REGION" --endpoint-url "$plain" --bucket "$bucket" >/dev/null

AWS_CA_BUNDLE=$CI_S3_CA_FILE AWS_ACCESS_KEY_ID=$CI_S3_ACCESS_KEY \
    AWS_SECRET_ACCESS_KEY=$CI_S3_SECRET_KEY AWS_REGION=$CI_S3_REGION \
    python3 - "$NOW" "$BEFORE" "$data" "$MIB" "$RUNS" "$plain" "$CI_S3_ENDPOINT" "$bucket" <<'PY'
import os, resource, statistics, subprocess, sys

now, before, data, mib, runs, plain, https, bucket = sys.argv[1:]
mib, runs = int(mib), int(runs)
gib = mib / 1024

def cpu(cmd, stdin=None):
    """User + system seconds of one run of `cmd`, which must succeed."""
    start = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(stdin or os.devnull, "rb") as src, open(os.devnull, "wb") as sink:
        subprocess.run(cmd, stdin=src, stdout=sink, check=True)
    end = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime)

def row(name, a, b):
    """Runs `a` and `b` (label, command maker, stdin) alternately; a table row of medians."""
    got = {a[0]: [], b[0]: []}
    for i in range(runs):
        for label, make, stdin in (a, b):
            got[label].append(cpu(make(i), stdin))
            print(f"  {name} {label} run {i + 1}: {got[label][-1]:.3f} s", file=sys.stderr)
    ma, mb = (statistics.median(got[x[0]]) / gib for x in (a, b))
    return f"| {name} | {ma:.2f} | {mb:.2f} | {ma / mb:.2f}× |"

first = True
rows = {}
for scheme, endpoint in (("HTTP", plain), ("HTTPS", https)):
    tool = lambda binary: [binary, "--endpoint", endpoint]
    if first:
        # A new bucket gets its first SeaweedFS volume at its first write: done before timing.
        subprocess.run(tool(now) + ["append", f"s3://{bucket}/warm"], input=b"x", check=True)
        first = False
    stream = lambda who, i: f"s3://{bucket}/{scheme}-{who}-{i}"
    upload = []
    if before:
        upload.append(row(
            "upload: `append`",
            ("now", lambda i: tool(now) + ["append", stream("now", i)], data),
            ("before", lambda i: tool(before) + ["append", stream("before", i)], data),
        ))
    else:
        # Reads need a stream; the upload row needs the older build.
        cpu(tool(now) + ["append", stream("now", 0)], data)
    read = row(
        "read: `cat`",
        ("checked", lambda i: tool(now) + ["cat", stream("now", 0)], None),
        ("--no-verify", lambda i: tool(now) + ["cat", "--no-verify", stream("now", 0)], None),
    )
    rows[scheme] = upload + [read]

print(f"## Client CPU of checksums: SeaweedFS on loopback, {mib} MiB, median of {runs} alternating runs\n")
print("- CPU: user + system seconds of the command per GiB moved; `now` is this build, `before` is "
      + (f"`{os.path.basename(before)}`" if before else "not given (S3SYNCR_CPU_BEFORE)"))
print("- Ratio: the first column over the second; for reads, what checking costs (target ≤ 1.1×), for uploads this build against the older one\n")
for scheme, lines in rows.items():
    print(f"### {scheme}\n")
    print("| operation | now / checked (CPU s/GiB) | before / --no-verify (CPU s/GiB) | ratio |")
    print("|---|---:|---:|---:|")
    print("\n".join(lines) + "\n")
PY
