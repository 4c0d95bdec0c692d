#!/usr/bin/env bash
# Shows that the loom models can fail: for each injected bug (see docs/verification.md) it
# runs every model and prints which models caught the bug. Exits non-zero if some injected
# bug is caught by no model. A failing loom model often aborts its process (a destructor
# panics while unwinding out of the model), so each model runs in a process of its own.
set -uo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-1}
bugs=${BUGS:-"skip_release_scan relaxed_changes skip_help cancel_ignores_grant undecided_not_ahead no_ignore_force future_drop_leaks fast_ignores_links fast_release_no_scan hint_ahead_free no_sweep failed_no_scan"}
models=$(sed -n 's/^fn \([a-z_]*\)() {$/\1/p' tests/loom_engine.rs | grep -v '^free$')
status=0
for bug in $bugs; do
    caught=""
    for model in $models; do
        if ! timeout 1200 bash .ci/loom.sh "$bug" "$model" --exact >/dev/null 2>&1; then
            caught="$caught $model"
        fi
    done
    [ -n "$caught" ] || status=1
    printf '%-22s caught by:%s\n' "$bug" "${caught:- NOTHING}"
done
exit $status
