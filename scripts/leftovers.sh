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
if ((${#left[@]} > 0)); then
    echo "daemons left running by the tests (stopped now):" >&2
    for entry in "${left[@]}"; do
        echo "  $entry" >&2
        kill -9 "${entry%% *}" 2>/dev/null || true
    done
    exit 1
fi
echo "no daemon left running by the tests"
