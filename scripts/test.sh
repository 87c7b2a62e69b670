#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), then checks everything: ruff lint and format, the
# scenario scripts under examples/, and the test suite. Extra arguments go to pytest.
# Every step runs even after one fails; the exit status is non-zero if any failed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

EXAMPLE_TIMEOUT=${EXAMPLE_TIMEOUT:-300}

bash scripts/setup.sh || { echo "test: setup failed" >&2; exit 1; }

export PATH="$PWD/.venv/bin:$PATH"
failed=()

step() {
    printf '\ntest: %s\n' "$1"
}

step "ruff check nsnet tests"
.venv/bin/ruff check nsnet tests || failed+=("ruff check")

step "ruff format --check nsnet tests"
.venv/bin/ruff format --check nsnet tests || failed+=("ruff format")

shopt -s nullglob
examples=(examples/*.sh examples/*.py)
if [ ${#examples[@]} -eq 0 ]; then
    step "examples: none present"
else
    step "examples: ${#examples[@]} scenario scripts"
    for example in "${examples[@]}"; do
        case "$example" in
            *.sh) runner=(bash) ;;
            *.py) runner=(.venv/bin/python) ;;
        esac
        printf 'example %s\n' "$example"
        timeout --kill-after=10 "$EXAMPLE_TIMEOUT" "${runner[@]}" "$example" < /dev/null
        status=$?
        if [ "$status" -ne 0 ]; then
            printf 'example %s FAILED (exit %s)\n' "$example" "$status"
            failed+=("$example")
        fi
    done
fi

# The benchmark suite in its quick mode, nsnet alone: it proves every case still runs (the
# figures are printed, never judged); `python -m bench` is the real run (docs/PERFORMANCE.md).
step "bench --quick --no-anchors"
.venv/bin/python -m bench --quick --no-anchors --json "${TMPDIR:-/tmp}/nsnet-bench-ci.json" \
    || failed+=("bench --quick")

step "pytest"
.venv/bin/python -m pytest -q -rfEs tests "$@"
status=$?
if [ "$status" -eq 5 ]; then
    echo "test: pytest collected no tests" >&2
    failed+=("pytest (no tests)")
elif [ "$status" -ne 0 ]; then
    failed+=("pytest (exit $status)")
fi

if [ ${#failed[@]} -ne 0 ]; then
    joined=$(printf '%s, ' "${failed[@]}")
    printf '\ntest: FAILED: %s\n' "${joined%, }"
    exit 1
fi
printf '\ntest: every step succeeded\n'
