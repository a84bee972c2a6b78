#!/usr/bin/env bash
# Runs every test of the workspace against real servers (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-env.sh
cargo build --workspace --all-targets
status=0
cargo test --workspace --no-fail-fast -- --test-threads 2 || status=$?
bash scripts/leftovers.sh || status=1
exit "$status"
