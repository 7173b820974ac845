#!/bin/bash
# Stand-in for NVIDIA's cuda-checkpoint, written for crisp's tests (no GPU needed). Same command line as the
# real tool. A "CUDA process" is one with a thread named cuda-restore (the real driver's restore thread).
# State per PID lives in $CUDA_STANDIN_DIR/PID.state; every call is logged to $CUDA_STANDIN_DIR/calls.log.
# Like the real tool it refuses to lock a process that is frozen (cgroup) or has a ptrace-stopped thread, and
# checkpoint/restore/unlock need the restore thread running (not stopped, not frozen).
# CUDA_STANDIN_FAIL=ACTION makes that action fail.
log() { echo "$*" >> "$dir/calls.log"; }

usage() {
    echo "usage: cuda-checkpoint [--get-restore-tid|--get-state] --pid PID"
    echo "       cuda-checkpoint --action lock|checkpoint|restore|unlock --pid PID [--timeout MS]"
}

action= pid= query= timeout=
while [ $# -gt 0 ]; do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --action) action=$2; shift ;;
        --pid) pid=$2; shift ;;
        --timeout) timeout=$2; shift ;;
        --get-restore-tid|--get-state) query=$1 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
dir=${CUDA_STANDIN_DIR:?CUDA_STANDIN_DIR not set}
[ -n "$pid" ] && [ -d /proc/$pid ] || { echo "no such process ${pid:-?}"; exit 1; }

# The driver keeps a process's state, not its pid: a process in a container (NSpid with more than one entry) is
# known by its container's freezer cgroup and its pid there, which a checkpoint and restore of the container keep.
key=$pid
if [ "$(awk '/^NSpid:/ { print NF }' /proc/$pid/status)" -gt 2 ]; then
    key="ct$(sed -n 's/^[0-9]*:freezer://p' /proc/$pid/cgroup | tr / _)-$(awk '/^NSpid:/ { print $NF }' /proc/$pid/status)"
fi

state_of() { awk '{ sub(/.*\) /, ""); print $1 }' "$1" 2>/dev/null; }

restore_tid() {
    for t in /proc/$pid/task/*; do
        [ "$(cat $t/comm 2>/dev/null)" = cuda-restore ] && { echo "${t##*/}"; return 0; }
    done
    return 1
}

frozen() {
    while IFS=: read -r id ctrl path; do
        if [ "$ctrl" = freezer ]; then
            case $(cat "/sys/fs/cgroup/freezer$path/freezer.state" 2>/dev/null) in FROZEN|FREEZING) return 0 ;; esac
        elif [ "$id" = 0 ] && [ "$path" != / ]; then
            for root in /sys/fs/cgroup/unified /sys/fs/cgroup; do
                [ "$(cat "$root$path/cgroup.freeze" 2>/dev/null)" = 1 ] && return 0
                grep -qx 'frozen 1' "$root$path/cgroup.events" 2>/dev/null && return 0
            done
        fi
    done < /proc/$pid/cgroup
    return 1
}

get_state() { cat "$dir/$key.state" 2>/dev/null || echo running; }
refuse() { log "$action $pid refused: $*"; echo "cuda-checkpoint: $action $pid: $*"; exit 1; }

rtid=$(restore_tid) || { echo "process $pid is not a CUDA process"; [ -z "$query" ] && log "$action $pid refused: not CUDA"; exit 1; }
case $query in
    --get-restore-tid) echo "$rtid"; exit 0 ;;
    --get-state) get_state; exit 0 ;;
esac

state=$(get_state)
frozen && refuse "the process is frozen"
[ "$CUDA_STANDIN_FAIL" = "$action" ] && refuse "injected failure"
case $action in
    lock)
        [ "$state" = running ] || refuse "state is $state"
        for t in /proc/$pid/task/*; do
            case $(state_of $t/stat) in t|T) refuse "thread ${t##*/} is stopped" ;; esac
        done
        next=locked ;;
    checkpoint|restore|unlock)
        case $action/$state in checkpoint/locked|restore/checkpointed|unlock/locked) ;; *) refuse "state is $state" ;; esac
        case $(state_of /proc/$pid/task/$rtid/stat) in t|T) refuse "restore thread $rtid is not running" ;; esac
        case $action in checkpoint) next=checkpointed ;; restore) next=locked ;; unlock) next=running ;; esac ;;
    *) echo "unknown action $action"; exit 2 ;;
esac
echo $next > "$dir/$key.state"
log "$action $pid${timeout:+ timeout=$timeout}"
echo ok
