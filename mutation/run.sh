#!/usr/bin/env bash
# Mutation testing of the core modules with mutmut (3.x), one module at a time.
#
#   bash mutation/run.sh                 # every mutant of every module in mutation/modules.txt (~6,900: hours; JOBS=N workers)
#   bash mutation/run.sh theory numdiff  # only these
#   SAMPLE=80 bash mutation/run.sh       # a seeded random sample of 80 mutants per module (SEED=0)
#   RERUN=1 bash mutation/run.sh losses  # after adding tests: re-test only the last run's survivors
#
# Each module runs in its own snapshot of the working tree under $WORK (default /tmp/sobolev-mutate/<module>),
# so the checkout is never modified and edits made meanwhile do not disturb a run. mutmut only mutates the
# module's files and only runs the test files listed for it in mutation/modules.txt. RESUME=1 keeps
# an existing run folder (and mutmut's cached verdicts; only changed settings are re-checked). Results:
# $WORK/<module>/results.txt (mutmut results), the score line appended to $WORK/scores.txt, and the counts
# recorded in mutation/scores.json and mutation/survivors/<module>.txt (see mutation/score.py).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${BIN:-$ROOT/.venv/bin}"
WORK="${WORK:-/tmp/sobolev-mutate}"
JOBS="${JOBS:-$(nproc)}"
"$BIN/python" -c "import mutmut" 2>/dev/null || "$BIN/pip" install --quiet "mutmut>=3.8,<4"
mkdir -p "$WORK"

mapfile -t LINES < <(grep -v '^\s*#' "$ROOT/mutation/modules.txt" | grep -v '^\s*$')
want=("$@")
for line in "${LINES[@]}"; do
  read -r name globs tests extra <<<"$line"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " =~ " $name " ]]; then continue; fi
  dir="$WORK/$name"
  tests="$(tr ',' '\n' <<<"$tests" | while read -r t; do [ -f "$ROOT/$t" ] && printf "%s," "$t"; done; true)"
  tests="${tests%,}"
  if [ -n "${RERUN:-}" ] && [ -f "$dir/results.txt" ]; then
    # triage: refresh the tests (not the code) in the run folder and re-test only the survivors
    [ -f "$dir/results.first.txt" ] || cp "$dir/results.txt" "$dir/results.first.txt"
    rm -rf "$dir/tests" && cp -r "$ROOT/tests" "$dir/tests" && find "$dir/tests" -name __pycache__ -prune -exec rm -rf {} +
    grep -E ': (survived|no tests|suspicious)$' "$dir/results.txt" | sed 's/:.*//; s/^ *//' > "$dir/survivors.txt"
    # mutmut maps functions to tests once and only adds tests with new names later: a changed test
    # body would keep a stale map, so collect it afresh
    rm -f "$dir/mutants/mutmut-stats.json"
  elif [ -z "${RESUME:-}" ] || [ ! -d "$dir/mutants" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    # snapshot: the package, the tests (and the benchmark helpers one test loads), the pytest configuration
    (cd "$ROOT" && tar cf - --exclude=__pycache__ sobolev tests benchmarks pyproject.toml) | (cd "$dir" && tar xf -)
  fi
  {
    echo "[mutmut]"
    echo "source_paths = sobolev"
    echo "also_copy = benchmarks"
    echo "only_mutate ="
    tr ',' '\n' <<<"$globs" | sed 's/^/    /'
    echo "pytest_add_cli_args_test_selection ="
    tr ',' '\n' <<<"$tests" | sed 's/^/    /'
    echo "pytest_add_cli_args ="
    echo "    -p"
    echo "    no:cacheprovider"
    echo "    -x"
    [ -n "${extra:-}" ] && tr ',' '\n' <<<"$extra" | sed 's/^/    /'
    echo "process_isolation = forkserver"
    # generous: the per-mutant wall limit is (test time + constant) × multiplier, and on a loaded
    # machine a forked worker's first lazy imports alone can take seconds
    echo "timeout_constant = 10"
    echo "timeout_multiplier = 10"
  } > "$dir/setup.cfg"
  echo "== $name: mutating $globs, tests $tests"
  (
    cd "$dir"
    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    if [ -n "${RERUN:-}" ] && [ -f survivors.txt ]; then
      xargs -r -a survivors.txt "$BIN/mutmut" run --max-children "$JOBS" > rerun.log 2>&1 || true
    elif [ -n "${SAMPLE:-}" ]; then
      # generate the mutants only (no name matches), then test a seeded random sample of them
      [ -d mutants ] || "$BIN/mutmut" run "generate-only" > generate.log 2>&1 || true
      "$BIN/python" "$ROOT/mutation/sample.py" . "$SAMPLE" "${SEED:-0}" > sample.txt
      xargs -r -a sample.txt "$BIN/mutmut" run --max-children "$JOBS" > run.log 2>&1 || true
    else
      rm -f sample.txt
      "$BIN/mutmut" run --max-children "$JOBS" > run.log 2>&1 || true
    fi
    "$BIN/mutmut" results --all true > results.txt 2>&1 || true
  )
  "$BIN/python" "$ROOT/mutation/score.py" "$name" "$dir" --record | tee -a "$WORK/scores.txt"
done
