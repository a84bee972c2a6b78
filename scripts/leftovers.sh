#!/usr/bin/env bash
# After the suite: no daemon a test started may still run. Tests start them with command
# lines that name their temp directories; any such process left is listed, stopped by
# its PID, and fails the run.
set -uo pipefail
patterns='/tmp/(tg-gateway-test-|tgstack-test-|tgstack-e2e-|testkit-daemon-|\.tmp)'
left=()
for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [[ $pid == "$$" ]] && continue
    cmdline=$(tr '\0' ' ' < "$dir/cmdline" 2>/dev/null) || continue
    if [[ $cmdline =~ $patterns ]]; then
        left+=("$pid $cmdline")
    fi
done
# The swarm test's nodes (deploy/swarm/nodes.sh): their namespaces and their runs' state
# (which records the daemons and the swarm the run made). Listed, taken down by the run's
# own script, and a failure.
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^tgs-/ {print $1}'); do
    left+=("netns $ns")
done
for dir in "${TGSTACK_SWARM_STATE:-/var/lib/tgstack-swarm}"/*/; do
    [ -d "$dir" ] || continue
    run=$(basename "$dir")
    left+=("swarm run $run")
    bash "$(dirname "$0")/../deploy/swarm/nodes.sh" down "$run" >/dev/null 2>&1 || true
done
if ((${#left[@]} > 0)); then
    echo "daemons left running by the tests (stopped now):" >&2
    for entry in "${left[@]}"; do
        echo "  $entry" >&2
        case $entry in
            netns* | swarm*) ;;
            *) kill -9 "${entry%% *}" 2>/dev/null || true ;;
        esac
    done
    exit 1
fi
echo "no daemon left running by the tests"
