#!/usr/bin/env bash
# CI stage "SLURM": the demo through profiles/slurm on a real one-node SLURM cluster, and a
# train job killed at its time limit that resumes from its checkpoint on rerun.
#
#   bash .ci/slurm/run.sh        # from .ci/run: repo root as cwd, the venv active, as root
#
# 1. installs Debian's slurmctld, slurmd, slurm-client, slurmdbd, munge and mariadb-server
#    (apt is skipped when they are installed) and the executor plugin (pip install -e ".[slurm]");
# 2. starts munged, MariaDB, slurmdbd, slurmctld and slurmd as plain background processes
#    (no systemd) from a fresh run directory under /tmp: own munge key and socket, free
#    ports, configs rendered from .ci/slurm/*.in, SLURM_CONF pointing at them (nothing is
#    written to /etc); one node `hostname -s` with 2 CPUs and one fake GPU (/dev/null),
#    partitions ci_cpu and ci_gpu on it; cluster, account and user registered in slurmdbd;
# 3. runs the full demo (24 train jobs) with a site copy of profiles/slurm made by check.py
#    (partitions, account, memory, CPUs, run times of this node; everything else kept;
#    status via the plugin's default, sacct, since accounting is up) in a copy of the
#    working tree, then checks with sacct that every train job of the DAG went through
#    sbatch with a GPU request and completed;
# 4. trains one longer run with a 1-minute limit and the profile's documented squeue status
#    command: SLURM kills it (TIMEOUT), the workflow fails, the checkpoint stays; a rerun
#    resumes from it and equals an uninterrupted local `ssimsr train` bit for bit;
# 5. stops the daemons by PID on exit, failure included (after scancel of leftover jobs).
#
# About 10 minutes on 2 cores with the 2-run demo and 150 timeout epochs (demo 3, timeout and resume 6,
# the uninterrupted reference run beside the killed job and its rerun);
# .ci/run trains 2 runs of the demo (SR, one seed) through SLURM. Run it last in .ci/run: once
# the plugin is installed, snakemake imports it and runs `scontrol show config`.
# SSIMSR_SLURM_KEEP=1 keeps the run directory (configs, logs, work copies) after success;
# it is always kept after a failure. SSIMSR_SLURM_DEMO_ARGS adds arguments to the demo run
# (e.g. "--configfile profiles/demo/demo-config.yaml /tmp/one-seed.yaml", a file holding
# `seeds: [0]`, halves it; a second --configfile replaces the first, so repeat the demo's).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/.ci/slurm
T0=$SECONDS
log() { printf '[slurm %s] %s\n' "$(date +%T)" "$*"; }
die() { printf '[slurm %s] FAIL: %s\n' "$(date +%T)" "$*" >&2; exit 1; }
took() { log "$1 took $((SECONDS - $2))s"; }

if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "needs root (packages, munge/mysql users, daemons)"
    exec sudo -E env "PATH=$PATH" bash "$0" "$@"
fi
command -v python >/dev/null || die "no python on PATH: activate the project's venv first"

CLUSTER=ssimsrci
ACCOUNT=ci
CPU_PARTITION=ci_cpu
GPU_PARTITION=ci_gpu
HOST=$(hostname -s)
USER_NAME=$(id -un)
# A train run that takes a few minutes here: killed after 1 minute, several epochs done (about
# 1.8 s per epoch on this 2-core CPU: 100 epochs outlive the limit 3x over).
TIMEOUT_EPOCHS=${SSIMSR_SLURM_TIMEOUT_EPOCHS:-150}
TIMEOUT_RUN=results/train/demo/corrected/sr/photos/ls1/b4c4-b5c4/seed0

# --------------------------------------------------------------------------- install
t=$SECONDS
PKGS=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PKGS[@]}"
else
    log "Debian packages already installed: ${PKGS[*]}"
fi
# the executor plugin (.ci/run installs it before starting the slow tests beside this stage: a
# re-install of the editable package under running tests would break their imports)
python -m pip show -q snakemake-executor-plugin-slurm 2>/dev/null || python -m pip install -q -e "$REPO[slurm]"
python -m pip show snakemake-executor-plugin-slurm | grep -E '^(Name|Version)' | tr '\n' ' '; echo
took "install" "$t"

# --------------------------------------------------------------------------- cluster
t=$SECONDS
RUN=$(mktemp -d /tmp/ssimsr-slurm.XXXXXX)
chmod 755 "$RUN"
mkdir -p "$RUN"/{etc,log,pids,state,spool,munge,mysql,mysqld}
log "run directory $RUN"
DAEMONS=()     # "name:pid" in start order; stopped in reverse order

stop_pid() {   # name pid: TERM, up to 30 s, then KILL
    local name=$1 pid=$2 i
    kill -0 "$pid" 2>/dev/null || { log "$name ($pid) already gone"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) ignored SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    log "stopped $name ($pid)"
}

cleanup() {
    local rc=$? i entry f
    set +e
    trap - EXIT INT TERM
    if [ "$rc" -ne 0 ]; then
        for f in "$RUN"/log/slurm*.log "$RUN"/munge/munged.log; do
            [ -s "$f" ] && { printf '\n--- last lines of %s\n' "$f"; tail -n 25 "$f"; }
        done
    fi
    if [ -n "${REFERENCE_PID:-}" ]; then  # the reference training run, on a failure before its end
        pkill -P "$REFERENCE_PID" 2>/dev/null
        kill "$REFERENCE_PID" 2>/dev/null
    fi
    if [ -n "${SLURM_CONF:-}" ] && [ ${#DAEMONS[@]} -gt 0 ] && timeout 10 squeue -h -o %i 2>/dev/null | grep -q .; then
        log "cancelling leftover jobs"
        timeout 10 scancel -u "$USER_NAME"
        for i in $(seq 30); do timeout 10 squeue -h -t R,CG -o %i 2>/dev/null | grep -q . || break; sleep 1; done
    fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        entry=${DAEMONS[i]}
        stop_pid "${entry%%:*}" "${entry#*:}"
    done
    if [ "$rc" -eq 0 ] && [ "${SSIMSR_SLURM_KEEP:-0}" != 1 ]; then
        rm -rf "$RUN"
    else
        log "kept $RUN (logs in $RUN/log)"
    fi
    log "SLURM stage total $((SECONDS - T0))s, exit $rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() {   # description seconds command...: retry the command until it succeeds
    local what=$1 limit=$2 end=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || die "$what: not ready after ${limit}s"
        sleep 1
    done
}

started() {    # name pid
    DAEMONS+=("$1:$2")
    echo "$2" > "$RUN/pids/$1.pid.ci"
    log "started $1 (pid $2)"
}

read -r CTLD_PORT SLURMD_PORT DBD_PORT MYSQL_PORT < <(python - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
MEM_TOTAL=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
MEM_MB=$(( MEM_TOTAL - 2048 < 16000 ? MEM_TOTAL - 2048 : 16000 ))
[ "$MEM_MB" -ge 6000 ] || die "only ${MEM_TOTAL} MB of memory: the CI node needs 8 GB"
DB_PASS=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
MUNGE_SOCKET=$RUN/munge/munge.socket.2
render() {     # template output
    sed -e "s|@CLUSTER@|$CLUSTER|g; s|@HOST@|$HOST|g; s|@RUN@|$RUN|g; s|@MUNGE_SOCKET@|$MUNGE_SOCKET|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g; s|@SLURMD_PORT@|$SLURMD_PORT|g; s|@DBD_PORT@|$DBD_PORT|g" \
        -e "s|@MYSQL_PORT@|$MYSQL_PORT|g; s|@DB_PASS@|$DB_PASS|g; s|@MEM_MB@|$MEM_MB|g" \
        -e "s|@CPU_PARTITION@|$CPU_PARTITION|g; s|@GPU_PARTITION@|$GPU_PARTITION|g" "$1" > "$2"
}
render "$HERE/slurm.conf.in" "$RUN/etc/slurm.conf"
render "$HERE/gres.conf.in" "$RUN/etc/gres.conf"
render "$HERE/slurmdbd.conf.in" "$RUN/etc/slurmdbd.conf"
chmod 600 "$RUN/etc/slurmdbd.conf"
export SLURM_CONF=$RUN/etc/slurm.conf   # slurmdbd.conf and gres.conf are read from its folder
log "ports: slurmctld $CTLD_PORT, slurmd $SLURMD_PORT, slurmdbd $DBD_PORT, mariadb $MYSQL_PORT"
# The slurm-jobstep plugin starts each job's command with `srun` after removing nearly all
# SLURM_* variables, SLURM_CONF included, so srun would look for /etc/slurm/slurm.conf (where
# real clusters keep it, or run configless). This cluster's config stays private to the run
# directory: an srun first on PATH (jobs inherit it: sbatch --export=ALL) puts SLURM_CONF back.
mkdir -p "$RUN/bin"
printf '#!/bin/sh\nexport SLURM_CONF="${SLURM_CONF:-%s}"\nexec %s "$@"\n' "$SLURM_CONF" "$(command -v srun)" > "$RUN/bin/srun"
chmod 755 "$RUN/bin/srun"
export PATH=$RUN/bin:$PATH

# munge: a fresh key, our own socket; as the munge user where there is one
MUNGE_USER=root
id munge >/dev/null 2>&1 && MUNGE_USER=munge
dd if=/dev/urandom of="$RUN/munge/munge.key" bs=1024 count=1 status=none
chown -R "$MUNGE_USER:" "$RUN/munge"
chmod 0755 "$RUN/munge"
chmod 0400 "$RUN/munge/munge.key"
setpriv --reuid="$MUNGE_USER" --regid="$(id -g "$MUNGE_USER")" --init-groups \
    munged --foreground --key-file="$RUN/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$RUN/munge/munged.pid" --log-file="$RUN/munge/munged.log" \
    --seed-file="$RUN/munge/munged.seed" > "$RUN/log/munged.out" 2>&1 &
started munged $!
munge_ok() { timeout 10 munge -n --socket="$MUNGE_SOCKET" | timeout 10 unmunge --socket="$MUNGE_SOCKET"; }
wait_for "munged" 20 munge_ok

# MariaDB: a private datadir, TCP on 127.0.0.1 only
chown mysql: "$RUN/mysql" "$RUN/mysqld"
mariadb-install-db --no-defaults --user=mysql --datadir="$RUN/mysql" --auth-root-authentication-method=socket \
    --skip-test-db > "$RUN/log/mariadb-install-db.log" 2>&1 || die "mariadb-install-db (see $RUN/log/mariadb-install-db.log)"
mariadbd --no-defaults --user=mysql --datadir="$RUN/mysql" --socket="$RUN/mysqld/mysqld.sock" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$RUN/mysqld/mariadbd.pid" \
    --log-error="$RUN/mysqld/mariadb.log" --innodb-buffer-pool-size=256M --innodb-log-file-size=64M \
    --innodb-lock-wait-timeout=900 > "$RUN/log/mariadbd.out" 2>&1 &
started mariadbd $!
sql() { timeout 30 mariadb --no-defaults --socket="$RUN/mysqld/mysqld.sock" -u root "$@"; }
wait_for "mariadbd" 60 sql -e "SELECT 1"
sql <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF

# slurmdbd, then cluster, account and user, then the controller and the node
slurmdbd -D > "$RUN/log/slurmdbd.out" 2>&1 &
started slurmdbd $!
wait_for "slurmdbd" 90 timeout 15 sacctmgr -n list cluster
sacctmgr -i add cluster "$CLUSTER" > /dev/null
sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="CI" Organization=ssimsr > /dev/null
sacctmgr -i add user "$USER_NAME" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" Cluster="$CLUSTER" > /dev/null
slurmctld -D > "$RUN/log/slurmctld.out" 2>&1 &
started slurmctld $!
wait_for "slurmctld" 60 timeout 15 scontrol ping
slurmd -D -N "$HOST" > "$RUN/log/slurmd.out" 2>&1 &
started slurmd $!
node_idle() { [ "$(timeout 15 sinfo -h -n "$HOST" -p "$GPU_PARTITION" -o %T)" = idle ]; }
wait_for "node $HOST idle" 90 node_idle
sinfo -o "%P %a %D %T %c %m %G %N"
sacctmgr -n -P list association cluster="$CLUSTER" format=cluster,account,user | tr '\n' ' '; echo
took "cluster start" "$t"

# --------------------------------------------------------------------------- demo
copy_tree() {  # the working tree without outputs, caches and environments
    mkdir -p "$1"
    tar -C "$REPO" --exclude=./results --exclude=./resources --exclude=./logs --exclude=./.snakemake \
        --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.egg-info' --exclude=__pycache__ \
        --exclude=./.pytest_cache -cf - . | tar -C "$1" -xf -
}
use_tree() {   # cd into a copy; its src/ shadows the editable install (jobs inherit PYTHONPATH)
    cd "$1"
    export PYTHONPATH=$1/src${ORIG_PYTHONPATH:+:$ORIG_PYTHONPATH}
}
ORIG_PYTHONPATH=${PYTHONPATH:-}
run_logged() { # log-file command...: full output to the file, progress lines to stdout
    local out=$1
    shift
    "$@" 2>&1 | tee "$out" | { grep --line-buffered -E "steps \([0-9]+%\) done|Error in rule|SLURM status is" || true; }
}

t=$SECONDS
DEMO=$RUN/demo
copy_tree "$DEMO"
python "$HERE/check.py" profile "$REPO/profiles/slurm/config.yaml" "$RUN/profile" \
    --cpu-partition "$CPU_PARTITION" --gpu-partition "$GPU_PARTITION" --account "$ACCOUNT"
use_tree "$DEMO"
SMK=(snakemake --profile "$RUN/profile" --configfile profiles/demo/demo-config.yaml)
read -r -a DEMO_ARGS <<< "${SSIMSR_SLURM_DEMO_ARGS:-}"
"${SMK[@]}" "${DEMO_ARGS[@]}" -n > "$RUN/log/demo-dryrun.log" 2>&1 || { tail -n 40 "$RUN/log/demo-dryrun.log"; die "demo dry run"; }
log "demo DAG: $(grep -m1 -E '^train +[0-9]+' "$RUN/log/demo-dryrun.log" | tr -s ' ') jobs, $(grep -m1 -E '^total +[0-9]+' "$RUN/log/demo-dryrun.log" | tr -s ' ')"
run_logged "$RUN/log/demo-snakemake.log" "${SMK[@]}" "${DEMO_ARGS[@]}" \
    || { tail -n 60 "$RUN/log/demo-snakemake.log"; die "demo through profiles/slurm (log $RUN/log/demo-snakemake.log)"; }
took "demo through SLURM" "$t"
python "$HERE/check.py" demo "$DEMO" --dryrun "$RUN/log/demo-dryrun.log" --gpu-partition "$GPU_PARTITION"
"${SMK[@]}" "${DEMO_ARGS[@]}" -n > "$RUN/log/demo-rerun.log" 2>&1 || true
grep -q "Nothing to be done" "$RUN/log/demo-rerun.log" || { tail -n 30 "$RUN/log/demo-rerun.log"; die "demo rerun has work left"; }
echo "ok: a rerun of the demo has nothing to do"

# --------------------------------------------------------------------------- timeout + resume
t=$SECONDS
TO=$RUN/timeout
copy_tree "$TO"
cat > "$TO/ci-timeout.yaml" <<EOF
# One train run long enough to outlive a 1-minute SLURM limit (CI: .ci/slurm/run.sh).
studies:
  demo: {models: [sr], lambda_s: [1], presets: [corrected], epochs: $TIMEOUT_EPOCHS}
# the paper's SR widths, not the demo's narrower ones, and 64-px crops in batches of 4, four of
# each image per epoch (not the demo SR's 400 crops per image): 6 steps per epoch, 900 in all,
# about twice the 1-minute limit on 2 AVX-512 cores (3 steps per epoch were killed at epoch
# 143 of 150), so SLURM kills it mid-run, not while it finishes
models: {sr: {filters: 64, res_blocks: 8, training: {crop: 64, batch_size: 4, crops_per_image: 4, learning_rate: 0.0005}}}
seeds: [0]
EOF
python "$HERE/check.py" profile "$REPO/profiles/slurm/config.yaml" "$RUN/profile-timeout" \
    --cpu-partition "$CPU_PARTITION" --gpu-partition "$GPU_PARTITION" --account "$ACCOUNT" \
    --train-runtime 1 --retries 0 --status-command squeue
use_tree "$TO"
SMK=(snakemake --configfile profiles/demo/demo-config.yaml ci-timeout.yaml)
# The uninterrupted reference run of the same parameters (locally, no SLURM) starts as soon as
# the SLURM job has written them, and trains beside the killed job and its rerun: it fills
# their waits (sbatch, the kill, status polls, Snakemake's start-ups; about 2 minutes) instead
# of adding 3 minutes after them. Sharing the 2 cores slows the SLURM job, which only moves
# the epoch it is killed at; every run's numbers are the same at any speed.
reference() {
    local i
    for i in $(seq 900); do [ -s "$TIMEOUT_RUN/params.json" ] && break; sleep 1; done
    [ -s "$TIMEOUT_RUN/params.json" ] || { echo "no $TIMEOUT_RUN/params.json after 15 minutes"; return 1; }
    cp "$TIMEOUT_RUN/params.json" "$RUN/reference-params.json"  # a failed job's outputs are deleted
    log "reference run started (locally, beside the SLURM job)"
    ssimsr train --params "$(cat "$RUN/reference-params.json")" --data results/data/photos --out "$RUN/reference"
}
reference > "$RUN/log/reference.log" 2>&1 &
REFERENCE_PID=$!
if run_logged "$RUN/log/timeout-1.log" "${SMK[@]}" --profile "$RUN/profile-timeout" "$TIMEOUT_RUN/history.csv"; then
    die "the train job with a 1-minute limit finished: raise SSIMSR_SLURM_TIMEOUT_EPOCHS"
fi
echo "ok: the workflow failed (exit non-zero) with the 1-minute limit"
python "$HERE/check.py" killed "$TO" "$TIMEOUT_RUN"
run_logged "$RUN/log/timeout-2.log" "${SMK[@]}" --profile "$RUN/profile" --retries 0 "$TIMEOUT_RUN/history.csv" \
    || { tail -n 60 "$RUN/log/timeout-2.log"; die "rerun after the timeout"; }
echo "ok: the rerun with a sufficient runtime finished"
log "waiting for the uninterrupted reference run"
wait "$REFERENCE_PID" || { tail -n 30 "$RUN/log/reference.log"; die "reference training run"; }
REFERENCE_PID=
# (loading the .keras files imports TensorFlow: its start-up chatter is filtered out)
TF_CPP_MIN_LOG_LEVEL=3 python "$HERE/check.py" resumed "$TO" "$TIMEOUT_RUN" "$RUN/reference" \
    2> >(grep -v -E '^(I0000|W0000|E0000|WARNING: All log messages|To enable the following)' >&2)
took "timeout and resume" "$t"
cd "$REPO"
log "all SLURM checks passed"
