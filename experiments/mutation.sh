#!/usr/bin/env bash
# Mutation testing of one part of ncib with mutmut 3 (docs/testing.md). Not part of CI.
#
#   pip install -e '.[mutation]'
#   bash experiments/mutation.sh losses|metrics|records|data|analysis [mutmut run args...]
#
# Runs in a scratch copy (MUTATION_DIR, default /tmp/ncib-mutation/<part>), so the repository
# and other parts' runs are left alone. Each run starts afresh; MUTATION_KEEP=1 keeps mutmut's
# state from the last run instead (faster, but mutmut then maps only *new* tests to the code they
# call, so after editing a test start afresh). MUTATION_JOBS (default 2) test processes run at
# once; MUTATION_TIME_LIMIT=<seconds> stops a long part early (the summary then covers the
# mutants tested so far); MUTATION_DEBUG=1 shows the tests mutmut runs and their failures.
# MUTATION_SAMPLE=<n> tests a random sample of n of the part's mutants, picked by MUTATION_SEED
# (default 0) and listed in sample.txt: an unbiased estimate of the kill rate of a part too large
# to run whole (analysis has over 4,000 mutants).
# Prints the survivors and a summary: killed / (mutants that some test ran); exits 1 when no
# mutant was tested (a selected test failing on the unmutated code stops mutmut before any).
set -euo pipefail

part=${1:-}
[ $# -gt 0 ] && shift
case "$part" in
  losses)  # the SupCon loss and the differentiable all-gather
    only="ncib/losses/*"
    tests="tests/losses/test_supcon_loss.py tests/losses/test_distributed.py" ;;
  metrics)  # the registry and the key mapping analysis → names
    only="ncib/metrics/*"
    tests="tests/metrics/test_keys.py tests/test_docs.py tests/metrics/test_registry.py" ;;
  records)  # the run directory's records and atomic writes
    only="ncib/rundir/records.py"
    tests="tests/rundir/test_records.py tests/rundir/test_safe_writes.py tests/callbacks/test_plumbing.py tests/metrics/test_keys.py::test_the_engine_records_the_mapped_values_and_stores_inf_as_null_with_a_warning" ;;
  data)  # seeding: data order, augmentation keys, counter-based streams, subsets
    only="ncib/data/base.py ncib/data/counter_rng.py"
    tests="tests/data/test_views_device_count.py tests/data/test_data.py tests/data/test_seeding.py tests/data/test_data_real.py tests/callbacks/test_plumbing.py" ;;
  analysis)  # the analysis math (over 4,000 mutants, hours on 2 cores: MUTATION_SAMPLE)
    only="ncib/analysis/*"
    tests="tests/analysis tests/metrics/test_keys.py" ;;
  *)
    echo "usage: bash experiments/mutation.sh losses|metrics|records|data|analysis [mutmut run args]" >&2
    exit 2 ;;
esac
# MUTATION_ONLY narrows a part to some of its files, e.g. MUTATION_ONLY=ncib/analysis/gib.py
only=${MUTATION_ONLY:-$only}

root=$(cd "$(dirname "$0")/.." && pwd)
for t in $tests; do  # a missing test file would make every mutant of the part "survive"
  [ -e "$root/${t%%::*}" ] || { echo "mutation.sh: $part lists $t, which does not exist" >&2; exit 2; }
done
work=${MUTATION_DIR:-${TMPDIR:-/tmp}/ncib-mutation}/$part
jobs=${MUTATION_JOBS:-2}
[ "${MUTATION_KEEP:-0}" = 1 ] || rm -rf "$work/mutants"
mkdir -p "$work"
# a fresh copy of the code and tests (mutmut's own state under mutants/ is kept between runs)
rm -rf "$work/ncib" "$work/tests" "$work/docs"
cp -r "$root/ncib" "$root/tests" "$root/docs" "$root/README.md" "$work/"  # tests/test_docs.py reads docs
cp -r "$root/conf" "$work/ncib/conf"  # ncib.conf: the packaged config, as in a wheel
find "$work" -name __pycache__ -prune -exec rm -rf {} +
python - "$root/pyproject.toml" "$work/pyproject.toml" "$only" "$tests" <<'EOF'
import json, os, sys

source, target, only, tests = sys.argv[1:5]
text = open(source).read()
header = "[tool.mutmut]\n"
assert header in text, "pyproject.toml has no [tool.mutmut] table"
extra = (
    ("debug = true\n" if os.environ.get("MUTATION_DEBUG") == "1" else "")
    + f"only_mutate = {json.dumps(only.split())}\n"
    f"pytest_add_cli_args_test_selection = {json.dumps(tests.split())}\n"
)
open(target, "w").write(text.replace(header, header + extra, 1))
EOF

cd "$work"
# mutmut imports the mutated copy from mutants/; an inherited PYTHONPATH would shadow it
# MUTATION_TIME_LIMIT (seconds): stop testing then and report the mutants tested so far
limit=()
[ -n "${MUTATION_TIME_LIMIT:-}" ] && limit=(timeout --signal=INT --kill-after=60 "$MUTATION_TIME_LIMIT")
names=("$@")
if [ -n "${MUTATION_SAMPLE:-}" ]; then
  # generate the mutants and collect the test statistics only: mutmut stops at a name that
  # matches no mutant, after both
  env -u PYTHONPATH OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
    mutmut run --max-children "$jobs" ncib.no_such_mutant >/dev/null 2>&1 || true
  python - "$MUTATION_SAMPLE" "${MUTATION_SEED:-0}" >sample.txt <<'EOF'
import glob, json, random, sys

n, seed = int(sys.argv[1]), int(sys.argv[2])
names = sorted(
    name
    for meta in glob.glob("mutants/**/*.meta", recursive=True)
    for name in json.load(open(meta))["exit_code_by_key"]
)
if not names:
    sys.exit("mutation.sh: mutmut generated no mutants; run without MUTATION_SAMPLE to see why")
print("\n".join(sorted(random.Random(seed).sample(names, min(n, len(names))))))
EOF
  mapfile -t names <sample.txt
  echo "mutation.sh: testing a sample of ${#names[@]} mutants (MUTATION_SEED=${MUTATION_SEED:-0}; the list: $work/sample.txt)"
fi
env -u PYTHONPATH OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "${limit[@]}" mutmut run --max-children "$jobs" "${names[@]}" || true
echo
echo "== surviving mutants of $part (mutmut show <name> prints the diff; run it in $work) =="
env -u PYTHONPATH mutmut results | grep -v '^\s*$' || true
# the summary: every mutant of the part, or the sample's
python - ${MUTATION_SAMPLE:+sample.txt} <<'EOF'
import collections
import glob
import json
import sys

from mutmut.stats import status_by_exit_code

sample = set(open(sys.argv[1]).read().split()) if len(sys.argv) > 1 else None
s = collections.Counter()
for meta in glob.glob("mutants/**/*.meta", recursive=True):
    for name, code in json.load(open(meta))["exit_code_by_key"].items():
        if sample is None or name in sample:
            s["total"] += 1
            s["not run" if code is None else status_by_exit_code[code]] += 1
tested = s["killed"] + s["timeout"] + s["survived"] + s["suspicious"] + s["segfault"]
rate = 100.0 * (s["killed"] + s["timeout"]) / tested if tested else float("nan")
if not tested:  # e.g. a selected test failed on the unmutated code ("failed to collect stats")
    sys.exit(
        "\nmutation.sh: no mutant was tested; see mutmut's message above (MUTATION_DEBUG=1 shows "
        "the tests it ran and their failures)"
    )
print(
    f"\nmutants {s['total']}{' (sample)' if sample else ''}: killed {s['killed']}, timeout "
    f"{s['timeout']}, survived {s['survived']}, suspicious {s['suspicious']}, no tests "
    f"{s['no tests']}, skipped {s['skipped']}, not run {s['not run']}\n"
    f"kill rate {rate:.1f}% of the {tested} mutants that some test ran"
)
EOF
