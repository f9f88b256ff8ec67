# shellcheck shell=bash disable=SC2034 # sets variables the templates read
# What the job templates in pbs/ share: sourced by map.pbs, array.pbs,
# scaling.pbs and exec.pbs after their edit block, never run by itself.
#
# It finds the allocation under PBS Pro/OpenPBS, Torque and Slurm, applies the
# THREADS convention (ranks per node = slots / THREADS, each rank bound to
# THREADS cores), loads site modules, runs mpirun in its own session while
# forwarding walltime signals, and submits a continuation job when asked.
# Written for bash 4.2 (RHEL/CentOS 7): no negative array indices, and arrays
# that may be empty are expanded as ${a[@]+"${a[@]}"} (set -u).
#
# Inputs (the templates' edit block): HPCMAP_BIN, MODULES, MPIRUN, THREADS,
# RANKS_PER_NODE, DEADLINE, JOURNAL, RESUME, RESUBMIT, RESUBMIT_MAX,
# RESUBMIT_ARGS. Sets: SCHEDULER JOBID HOSTS SLOTS NNODES THREADS RPN_FIT.

log() { printf 'hpcmap-job: %s\n' "$*"; }
# fail CODE MESSAGE...: log the error and end the job with CODE.
fail() {
    local rc=$1
    shift
    log "error: $*"
    exit "$rc"
}

# --- environment modules ---------------------------------------------------------
# MODULES="openmpi rust" (spaces or ':' between names): 'module load' each,
# after initialising Environment Modules or Lmod when the job's shell has not.
job_modules() {
    local init m
    local -a mods
    [ -n "${MODULES:-}" ] || return 0
    if ! type module >/dev/null 2>&1; then
        for init in /etc/profile.d/lmod.sh /usr/share/lmod/lmod/init/bash \
            /etc/profile.d/modules.sh "${MODULESHOME:-/usr/share/Modules}/init/bash" \
            /usr/share/modules/init/bash; do
            if [ -r "$init" ]; then
                set +u # module init scripts are not written for set -u
                # shellcheck disable=SC1090
                . "$init"
                set -u
                break
            fi
        done
    fi
    type module >/dev/null 2>&1 ||
        fail 1 "MODULES='$MODULES' but this node has no 'module' command (no Lmod or Environment Modules init found)"
    IFS=' :' read -ra mods <<<"$MODULES"
    for m in ${mods[@]+"${mods[@]}"}; do
        set +u
        module load "$m"
        local rc=$?
        set -u
        [ "$rc" -eq 0 ] || fail 1 "module load $m failed (module avail lists what the site has)"
        log "module loaded: $m"
    done
}

# --- tools: the binary and mpirun ------------------------------------------------------
job_tools() {
    if [ ! -x "$HPCMAP_BIN" ]; then
        log "error: no executable hpcmap at $HPCMAP_BIN"
        log "build it with 'cargo build --release' or set HPCMAP_BIN (qsub -v HPCMAP_BIN=/path)"
        exit 1
    fi
    MPIRUN=${MPIRUN:-mpirun}
    if ! command -v "$MPIRUN" >/dev/null 2>&1; then
        log "error: '$MPIRUN' not found on $(hostname) (PATH=$PATH)"
        log "hint: batch jobs start with a clean environment. Load your site's MPI in the job:"
        log "hint:   qsub -v MODULES=openmpi ...   (or set MODULES in the template's edit block;"
        log "hint:   'module avail' on the login node lists the names), or set MPIRUN=/path/to/mpirun"
        exit 1
    fi
}

# --- the allocation ------------------------------------------------------------------
# expand_counts "2(x3),1" -> "2 2 2 1" (Slurm's SLURM_TASKS_PER_NODE format)
expand_counts() {
    local item n rep
    local -a items out
    IFS=, read -ra items <<<"$1"
    for item in ${items[@]+"${items[@]}"}; do
        if [[ $item =~ ^([0-9]+)\(x([0-9]+)\)$ ]]; then
            n=${BASH_REMATCH[1]}
            for ((rep = 0; rep < BASH_REMATCH[2]; rep++)); do out+=("$n"); done
        else
            out+=("$item")
        fi
    done
    echo ${out[@]+"${out[@]}"}
}

# Sets SCHEDULER (pbs|slurm|none), JOBID, HOSTS (one per node), SLOTS (the
# slots the scheduler lists per node: PBS nodefile lines, Slurm tasks).
job_allocation() {
    HOSTS=()
    SLOTS=()
    if [ -n "${PBS_NODEFILE:-}" ] && [ -r "$PBS_NODEFILE" ]; then
        SCHEDULER=pbs
        JOBID=${PBS_JOBID:-pbs-$$}
        # The nodefile lists a host once per slot; keep first-seen order.
        local host count
        while read -r host count; do
            HOSTS+=("$host")
            SLOTS+=("$count")
        done < <(awk 'NF { if (!($1 in c)) o[n++] = $1; c[$1]++ }
                      END { for (i = 0; i < n; i++) print o[i], c[o[i]] }' "$PBS_NODEFILE")
    elif [ -n "${SLURM_JOB_ID:-}" ]; then
        SCHEDULER=slurm
        JOBID=$SLURM_JOB_ID
        mapfile -t HOSTS < <(scontrol show hostnames "${SLURM_JOB_NODELIST:-$(hostname -s)}")
        read -ra SLOTS <<<"$(expand_counts "${SLURM_TASKS_PER_NODE:-${SLURM_JOB_CPUS_PER_NODE:-1}}")"
        # Slurm's qsub wrapper submits '-v' jobs with --export=NONE, which srun
        # inherits: mpirun's srun would then start its remote daemons without
        # this environment and they fail ("An ORTE daemon has unexpectedly
        # failed after launch"). Steps of this job take the job's environment.
        # (qsub -v A=1 becomes --export=none,A=1, seen here as SLURM_EXPORT_ENV.)
        case "${SLURM_EXPORT_ENV:-}" in
        [Nn][Oo][Nn][Ee]*) export SLURM_EXPORT_ENV=ALL ;;
        esac
    else
        SCHEDULER=none
        JOBID=local-$(date +%Y%m%d-%H%M%S)-$$
        HOSTS=("$(hostname)")
        SLOTS=("$(nproc)")
    fi
    NNODES=${#HOSTS[@]}
    [ "$NNODES" -gt 0 ] || fail 1 "empty allocation"
}

# THREADS: compute threads per rank; defaults to OMP_NUM_THREADS, then
# SLURM_CPUS_PER_TASK, then 1. Sets PER_TASK=1 when the scheduler already
# counted THREADS cores per listed slot (Slurm --cpus-per-task, PBS Pro
# ompthreads/ncpus with mpiprocs): then every slot is a rank.
job_threads() {
    THREADS=${THREADS:-${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}}
    [[ $THREADS =~ ^[1-9][0-9]*$ ]] || fail 2 "THREADS must be a positive integer, not '$THREADS'"
    PER_TASK=0
    if [ "$SCHEDULER" = slurm ] && [ "${SLURM_CPUS_PER_TASK:-1}" -eq "$THREADS" ]; then
        PER_TASK=1
    elif [ "$SCHEDULER" = pbs ] && [ -n "${NCPUS:-}" ] && [ "$THREADS" -gt 1 ] &&
        [ $((SLOTS[0] * THREADS)) -le "$NCPUS" ]; then
        PER_TASK=1
    fi
}

# ranks_for SLOTS: ranks on a node with SLOTS slots (RANKS_PER_NODE, else
# slots / THREADS, at least 1).
ranks_for() {
    local slots=$1 n
    if [ -n "${RANKS_PER_NODE:-}" ]; then
        echo "$RANKS_PER_NODE"
    elif [ "$PER_TASK" -eq 1 ]; then
        echo "$slots"
    else
        n=$((slots / THREADS))
        [ "$n" -ge 1 ] || n=1
        echo "$n"
    fi
}

# cores_for SLOTS: cores granted on a node with SLOTS slots.
cores_for() {
    if [ "$PER_TASK" -eq 1 ]; then echo $(($1 * THREADS)); else echo "$1"; fi
}

# job_placement NODES [RPN]: mpirun options for the first NODES nodes with RPN
# ranks each (default: ranks_for each node). Sets NP, HOSTSPEC, PLACEMENT
# (mpirun options), OVERSUBSCRIBED (0|1) and PLACEMENT_NOTE.
job_placement() {
    local nodes=$1 rpn=${2:-} i slots n cores fits=1
    HOSTSPEC=""
    NP=0
    OVERSUBSCRIBED=0
    for ((i = 0; i < nodes; i++)); do
        slots=${SLOTS[$i]:-${SLOTS[0]}}
        n=${rpn:-$(ranks_for "$slots")}
        cores=$(cores_for "$slots")
        [ "$n" -gt "$slots" ] && OVERSUBSCRIBED=1
        [ $((n * THREADS)) -gt "$cores" ] && fits=0
        HOSTSPEC+="${HOSTSPEC:+,}${HOSTS[$i]}:$n"
        NP=$((NP + n))
    done
    PLACEMENT=(-n "$NP" --host "$HOSTSPEC")
    PLACEMENT_NOTE=""
    [ "$OVERSUBSCRIBED" -eq 1 ] && PLACEMENT+=(--oversubscribe)
    if [ "$THREADS" -gt 1 ]; then
        if [ "$fits" -eq 1 ]; then
            # Each rank gets THREADS cores of its own (OpenMPI 4.x syntax).
            PLACEMENT+=(--map-by "slot:PE=$THREADS")
        else
            # More ranks x threads than cores: binding would fail; let the OS spread them.
            PLACEMENT+=(--bind-to none)
            PLACEMENT_NOTE="ranks x threads exceed the granted cores: not bound, cores are shared"
        fi
    fi
    if [ "$OVERSUBSCRIBED" -eq 1 ]; then
        PLACEMENT_NOTE="${PLACEMENT_NOTE:+$PLACEMENT_NOTE; }more ranks than slots: timings measure contention"
    fi
}

job_describe() {
    log "scheduler: $SCHEDULER, job $JOBID, workdir $WORKDIR"
    log "allocation: $NNODES node(s): $HOSTSPEC (granted slots: ${SLOTS[*]})"
    log "ranks: $NP, threads per rank: $THREADS"
    [ -z "$PLACEMENT_NOTE" ] || log "note: $PLACEMENT_NOTE"
}

# --- deadline ------------------------------------------------------------------------
# job_deadline SUBCOMMAND: DEADLINE_ARGS=(--deadline $DEADLINE) when DEADLINE
# is set (default auto: the allocation's end) and the binary has the option.
job_deadline() {
    DEADLINE_ARGS=()
    case "${DEADLINE:-}" in
    "" | none | off) return 0 ;;
    esac
    # 'auto' reads the allocation's end: nothing to read outside a job.
    [ "$DEADLINE" = auto ] && [ "$SCHEDULER" = none ] && return 0
    if "$HPCMAP_BIN" "$1" --help 2>/dev/null | grep -q -- '--deadline'; then
        DEADLINE_ARGS=(--deadline "$DEADLINE")
    elif [ "$DEADLINE" != auto ]; then
        log "note: this hpcmap has no --deadline; DEADLINE=$DEADLINE ignored"
    fi
}

# --- run mpirun, forwarding walltime signals ------------------------------------------
# PBS signals every process of the job's session at the walltime (SIGTERM,
# then SIGKILL after the kill delay); mpirun answers SIGTERM by killing the
# job. So mpirun runs in its own session (setsid): the walltime SIGTERM then
# reaches only this shell, which passes it on as SIGUSR1, and hpcmap's root
# stops handing out work, journals what is in flight and exits 75. Should this
# shell itself be killed (SIGKILL), mpirun gets SIGTERM (setpriv --pdeathsig)
# so nothing outlives the job. Slurm signals all processes of the job at its
# limit whatever their session: there the '#SBATCH --signal=B:USR1@60' early
# warning does the job.
RUN_PID=
JOB_STOP=0
# shellcheck disable=SC2317 # invoked by the traps below
job_forward() {
    JOB_STOP=1
    if [ -n "$RUN_PID" ]; then
        log "received SIG$1; forwarding to mpirun (pid $RUN_PID) as SIG$2"
        kill -s "$2" "$RUN_PID" 2>/dev/null || true
    else
        log "received SIG$1"
    fi
}
# shellcheck disable=SC2317 # invoked by the EXIT trap
job_cleanup() {
    [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null || return 0
    log "ending mpirun (pid $RUN_PID), still running as the job script exits"
    kill -TERM "$RUN_PID" 2>/dev/null
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$RUN_PID" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$RUN_PID" 2>/dev/null
    return 0
}
trap 'job_forward TERM USR1' TERM
trap 'job_forward USR1 USR1' USR1
trap 'job_forward USR2 USR2' USR2
trap 'job_forward INT INT' INT
trap 'job_cleanup' EXIT

LAUNCH=()
if command -v setsid >/dev/null 2>&1; then
    LAUNCH=(setsid)
    if setpriv --help 2>&1 | grep -q -- --pdeathsig; then
        LAUNCH+=(setpriv --pdeathsig TERM)
    fi
fi

# job_run CMD...: run CMD (mpirun ...) in its own session and wait for it;
# returns and sets RC (its exit code) and RUN_SECS.
job_run() {
    local start=$SECONDS final
    ${LAUNCH[@]+"${LAUNCH[@]}"} "$@" &
    RUN_PID=$!
    while :; do
        wait "$RUN_PID"
        RC=$?
        # wait returns >128 when a trapped signal interrupts it; mpirun may live on.
        kill -0 "$RUN_PID" 2>/dev/null || break
    done
    wait "$RUN_PID" 2>/dev/null
    final=$?
    [ "$final" -ne 127 ] && RC=$final
    RUN_PID=
    RUN_SECS=$((SECONDS - start))
    return "$RC"
}

# --- resuming across walltimes ------------------------------------------------------------
# job_journal: JOURNAL_ARGS=(--journal DIR [--resume]) from JOURNAL and RESUME.
job_journal() {
    JOURNAL_ARGS=()
    [ -n "${JOURNAL:-}" ] && JOURNAL_ARGS=(--journal "$JOURNAL")
    if [ "${RESUME:-0}" = 1 ] && [[ " ${EXTRA_ARGS:-} " != *" --resume "* ]]; then
        JOURNAL_ARGS+=(--resume)
    fi
}

# pbs_resources: '-l NAME=VALUE' for the walltime and node request of this PBS
# job, read from 'qstat -f' (empty when qstat cannot tell).
pbs_resources() {
    timeout 20 qstat -f "$PBS_JOBID" 2>/dev/null | awk '
        /^\t/ { sub(/^\t+/, ""); line = line $0; next }
        { flush(); line = $0 }
        END { flush() }
        function flush() {
            if (line ~ /^ *Resource_List\.(walltime|nodes|select|place) = /) {
                sub(/^ *Resource_List\./, "", line); sub(/ = /, "=", line); print "-l"; print line
            }
        }'
}

# job_continue TEMPLATE VAR...: after an interrupted run (RC 75) with
# RESUBMIT=1 and a journal, submit TEMPLATE again as a continuation that
# resumes the journal: the same VARs (and resources), RESUME=1, and an
# 'afterany' dependency on this job; logs the new job's id.
job_continue() {
    local template=$1 chain out
    shift
    [ "$RC" -eq 75 ] || return 0
    if [ "${RESUBMIT:-0}" != 1 ]; then
        log "interrupted (exit 75): submit again with RESUME=1 to finish (or set RESUBMIT=1)"
        return 0
    fi
    if [ -z "${JOURNAL:-}" ] && [[ " ${EXTRA_ARGS:-} " != *" --journal "* ]]; then
        log "RESUBMIT=1 but no journal (set JOURNAL=DIR): nothing to resume, not resubmitting"
        return 0
    fi
    chain=$((${CHAIN:-0} + 1))
    if [ "$chain" -gt "${RESUBMIT_MAX:-20}" ]; then
        log "continuation $chain would exceed RESUBMIT_MAX=${RESUBMIT_MAX:-20}: not resubmitting"
        return 0
    fi
    local -a extra args
    read -ra extra <<<"${RESUBMIT_ARGS:-}"
    case "$SCHEDULER" in
    slurm)
        local info tl name
        info=$(timeout 20 scontrol -o show job "$SLURM_JOB_ID" 2>/dev/null)
        tl=$(sed -n 's/.* TimeLimit=\([^ ]*\).*/\1/p' <<<"$info")
        name=${SLURM_JOB_NAME:-hpcmap}
        args=(sbatch --parsable --dependency="afterany:$SLURM_JOB_ID" --export=ALL
            -D "$WORKDIR" -J "$name" -o "$WORKDIR/$name.o%j" -N "${SLURM_JOB_NUM_NODES:-$NNODES}")
        [ -n "${SLURM_NTASKS:-}" ] && args+=(-n "$SLURM_NTASKS")
        [ -n "${SLURM_NTASKS_PER_NODE:-}" ] && args+=(--ntasks-per-node="$SLURM_NTASKS_PER_NODE")
        [ -n "${SLURM_CPUS_PER_TASK:-}" ] && args+=(-c "$SLURM_CPUS_PER_TASK")
        [ -n "$tl" ] && [ "$tl" != UNLIMITED ] && args+=(-t "$tl")
        [ -n "${SLURM_JOB_PARTITION:-}" ] && args+=(-p "$SLURM_JOB_PARTITION")
        ;;
    pbs)
        local -a res
        mapfile -t res < <(pbs_resources)
        args=(qsub -V -W "depend=afterany:$PBS_JOBID" ${res[@]+"${res[@]}"})
        [ -n "${PBS_JOBNAME:-}" ] && args+=(-N "$PBS_JOBNAME")
        ;;
    *)
        log "RESUBMIT=1 outside a batch job: run again with RESUME=1 to finish"
        return 0
        ;;
    esac
    args+=(${extra[@]+"${extra[@]}"} "$template")
    log "submitting continuation $chain: ${args[*]}"
    # The continuation gets this job's settings, not its scheduler variables
    # (a stale SLURM_ARRAY_TASK_ID or PBS_JOBID would mislead it).
    if out=$(
        for v in "$@"; do export "${v?}"; done
        export RESUME=1 CHAIN="$chain"
        unset PBS_JOBID PBS_ARRAY_ID PBS_ARRAY_INDEX PBS_ARRAYID PBS_NODEFILE
        for v in $(compgen -e | grep '^SLURM_' | grep -v '^SLURM_CONF$'); do unset "$v"; done
        ${args[@]+"${args[@]}"} 2>&1
    ); then
        log "continuation submitted: job ${out%%;*} (after job $JOBID ends; RESUME=1, CHAIN=$chain)"
    else
        log "error: submitting the continuation failed: $out"
    fi
}
