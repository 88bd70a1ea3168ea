#!/usr/bin/env bash
# The GPU check (issue 22), made to fit one 10-minute command on the GPU machine:
#   1. installs the carried wheels (.whl/, made by scripts/gpu-wheels.sh) and attnlab (--no-deps);
#   2. runs the tests marked cuda (tests/cuda: CUDA against the CPU in float64);
#   3. times one training step at each paper preset's largest shape (benchmarks/bench_gpu.py) and the
#      Transformer's attention quantities materialised against one fused call (bench_attention_moments.py);
#   4. runs the paper presets named in PRESETS through the run store until the budget is spent
#      (finished runs are whole in the store; a later check resumes from them, see RESUME);
#   5. packs it all into at most 8 files under OUT (summary.txt says what is where).
#
# On the GPU machine (device tool, carry [".whl"] plus the RESUME folders):
#   bash scripts/gpu-check.sh
# The CPU stand-in (the same steps on the CPU, the tests' cpu-standin half, tiny sizes):
#   DEVICE=cpu PYTHON=/path/to/venv/python INSTALL=0 PRESET=quick PRESETS="wu2023:W5 arda2026:E5" \
#     BENCH_ARGS="--n-max 40 --steps 2 --warmup 1 --cases E5 W5" BUDGET_S=600 OUT=/tmp/gpu-out \
#     bash scripts/gpu-check.sh
#
# Environment (defaults in brackets):
#   OUT [./gpu-out]           where the (at most 8) files go; the device tool sets it
#   DEVICE [cuda]             cuda, or cpu for the stand-in
#   PYTHON [python3]          the interpreter (on the GPU machine, the image's python3 with torch)
#   INSTALL [1]               1: install .whl/*.whl and attnlab into SITE; 0: use PYTHON as it is, src/ first
#   SITE [/tmp/site]          where INSTALL=1 installs
#   WORK [/tmp/gpu-check]     scratch: the run store is WORK/results/runs
#   BUDGET_S [540]            seconds for the whole check, packing included
#   PACK_S [40]               seconds kept for packing
#   TESTS [1], BENCH [1]      0 skips that step
#   TEST_TIMEOUT_S [180], BENCH_TIMEOUT_S [180]   limits of steps 2 and 3
#   BENCH_ARGS []             extra arguments of bench_gpu.py
#   PRESET [paper]            the preset of step 4
#   PRESETS ["wu2023:W5 arda2026:E5 arda2026:E7"]   PAPER:EXPERIMENT, run in this order
#   RESUME []                 folders of earlier checks' runs.tar.gz.part* (each one pack), or of packed run
#                             folders (docs/paper/wu2023/W5/runs), put in the store first
#   RUNS_MAX_MB [44]          finished runs brought back, at most (in parts of 15 MiB)
set -uo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
start=$(date +%s)
OUT="${OUT:-$repo/gpu-out}"; DEVICE="${DEVICE:-cuda}"; PYTHON="${PYTHON:-python3}"; INSTALL="${INSTALL:-1}"
SITE="${SITE:-/tmp/site}"; WORK="${WORK:-/tmp/gpu-check}"; BUDGET_S="${BUDGET_S:-540}"; PACK_S="${PACK_S:-40}"
TESTS="${TESTS:-1}"; BENCH="${BENCH:-1}"; TEST_TIMEOUT_S="${TEST_TIMEOUT_S:-180}"
BENCH_TIMEOUT_S="${BENCH_TIMEOUT_S:-180}"; BENCH_ARGS="${BENCH_ARGS:-}"; PRESET="${PRESET:-paper}"
PRESETS="${PRESETS:-wu2023:W5 arda2026:E5 arda2026:E7}"; RESUME="${RESUME:-}"; RUNS_MAX_MB="${RUNS_MAX_MB:-44}"
mkdir -p "$OUT" "$WORK/results/runs"
store="$WORK/results/runs"
exec > >(tee -a "$OUT/gpu-check.log") 2>&1
tee_pid=$!
summary="$WORK/summary.txt"; : > "$summary"
note() { echo "$*" | tee -a "$summary"; }
left() { echo $(( start + BUDGET_S - PACK_S - $(date +%s) )); }
status=0

note "gpu-check $(date -u +%FT%TZ): DEVICE=$DEVICE PRESET=$PRESET PRESETS='$PRESETS' BUDGET_S=$BUDGET_S"
if git rev-parse -q --verify HEAD >/dev/null 2>&1; then
    note "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
else
    note "commit: not a git checkout"
fi
bounded() { local l; l=$(left); echo $(( l < $1 ? l : $1 )); }   # a step's limit: its own, or what is left

# 1. install ---------------------------------------------------------------------------------------
if [ "$INSTALL" = 1 ]; then
    if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        && "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir \
           --upgrade --target "$SITE" . ; then
        export PYTHONPATH="$SITE"
        note "install: wheels and attnlab into $SITE"
    else
        export PYTHONPATH="$repo/src:$SITE"
        note "install: attnlab did not install; using src/ (PYTHONPATH=$PYTHONPATH)"
    fi
else
    export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
    note "install: skipped (INSTALL=0), PYTHONPATH=$PYTHONPATH"
fi
export PYTHONUNBUFFERED=1
"$PYTHON" - <<'EOF' 2>&1 | tee -a "$summary" || { note "FATAL: attnlab does not import"; status=2; }
import torch, pydantic, attnlab.cli  # noqa: F401 - the whole stack imports
from attnlab.versions import library_versions
versions = library_versions()
print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "platform"))
print(f"torch CUDA {torch.version.cuda}, available {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB"
         if torch.cuda.is_available() else ""))
EOF
if [ "$DEVICE" != cpu ] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/nvidia-smi: /' | tee -a "$summary"
fi

# 2. tests marked cuda -----------------------------------------------------------------------------
if [ "$TESTS" = 1 ] && [ "$status" = 0 ] && [ "$(bounded "$TEST_TIMEOUT_S")" -ge 10 ]; then
    selection=(-m cuda); [ "$DEVICE" = cpu ] && selection=()     # the stand-in runs the cpu-standin half
    timeout -s INT -k 15 "$(bounded "$TEST_TIMEOUT_S")" "$PYTHON" -m pytest -q -rs -p no:cacheprovider "${selection[@]}" tests/cuda \
        2>&1 | tee "$WORK/pytest-cuda.txt"
    code=${PIPESTATUS[0]}
    note "tests: pytest ${selection[*]} tests/cuda exit $code: $(tail -n 1 "$WORK/pytest-cuda.txt")"
    [ "$code" = 0 ] || status=1
fi

# 3. timings ---------------------------------------------------------------------------------------
if [ "$BENCH" = 1 ] && [ "$status" != 2 ] && [ "$(bounded "$BENCH_TIMEOUT_S")" -ge 10 ]; then
    limit=$(bounded "$BENCH_TIMEOUT_S")
    # shellcheck disable=SC2086
    timeout -s INT -k 15 "$limit" "$PYTHON" benchmarks/bench_gpu.py --device "$DEVICE" --out "$WORK/timings.csv" $BENCH_ARGS
    code=$?
    note "timings: bench_gpu.py exit $code ($( [ -f "$WORK/timings.csv" ] && echo "$(( $(wc -l < "$WORK/timings.csv") - 1 )) rows" || echo "no table"))"
    [ "$code" = 0 ] || status=1
    # the fused-attention candidate for the Transformer's GPU path (not yet adopted), into the summary
    if [ "$(bounded 60)" -ge 10 ]; then
        timeout -s INT -k 15 "$(bounded 60)" "$PYTHON" benchmarks/bench_attention_moments.py --device "$DEVICE" \
            $( [ "$DEVICE" = cpu ] && echo "--samples 40 --repeats 1" ) > "$WORK/attention-moments.txt" 2>&1
        note "attention moments: bench_attention_moments.py exit $?"; tee -a "$summary" < "$WORK/attention-moments.txt"
    fi
fi

# 4. presets through the run store -----------------------------------------------------------------
for folder in $RESUME; do
    if ls "$folder"/runs.tar.gz.part* >/dev/null 2>&1; then
        cat "$folder"/runs.tar.gz.part* | tar -xzf - -C "$store" && note "resume: unpacked $folder"
    elif ls "$folder"/*/complete.json >/dev/null 2>&1; then
        for run in "$folder"/*/; do   # runs the store lacks (a run already there stays as it is)
            [ -e "$store/$(basename "$run")" ] || cp -r "$run" "$store/"
        done
        note "resume: copied the run folders of $folder"
    else
        note "resume: neither runs.tar.gz.part* nor run folders in $folder"
    fi
done
ls "$store" > "$WORK/runs-before.txt"
progress() {   # runs of each preset in the store: done / declared
    "$PYTHON" - "$store" "$PRESET" "$DEVICE" $PRESETS <<'EOF'
import sys
from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.run import open_store
store, preset, device = open_store(sys.argv[1]), sys.argv[2], sys.argv[3]
for item in sys.argv[4:]:
    paper, _, key = item.partition(":")
    configs = [c for cs in experiment_configs(key, experiment_file(paper).experiments[key], preset, device).values()
               for c in cs]
    done = sum(store.is_complete(c) for c in configs)
    failed = sum(store.failures.has(c) for c in configs)
    print(f"  {item} {preset}: {done}/{len(configs)} runs in the store, {failed} recorded as failed")
EOF
}
for item in $PRESETS; do
    paper="${item%%:*}"; key="${item#*:}"
    limit=$(left)
    if [ "$status" = 2 ] || [ "$limit" -lt 20 ]; then note "presets: $item not started (no time left, or no attnlab)"; continue; fi
    timeout -s INT -k 20 "$limit" "$PYTHON" -m attnlab.cli reproduce "$paper" -e "$key" --preset "$PRESET" \
        --device "$DEVICE" --out "$WORK/results" --quiet
    code=$?
    if [ "$code" = 0 ]; then note "presets: $item finished (report in results/$paper/$PRESET)"
    elif [ "$(left)" -le 1 ]; then note "presets: $item stopped at the budget (exit $code)"
    else note "presets: $item exit $code"; status=1
    fi
done
note "store after the presets:"; progress 2>&1 | tee -a "$summary"

# 5. pack ------------------------------------------------------------------------------------------
ls "$store" | sort > "$WORK/runs-after.txt"
sort "$WORK/runs-before.txt" -o "$WORK/runs-before.txt"
comm -13 "$WORK/runs-before.txt" "$WORK/runs-after.txt" > "$WORK/runs-new.txt"
: > "$WORK/runs-packed.txt"; : > "$WORK/runs-left-behind.txt"; total=0
while read -r run; do   # finished runs of this check, oldest first, while they fit
    [ -f "$store/$run/complete.json" ] || continue
    size=$(du -sk "$store/$run" | cut -f1)
    if [ $(( total + size )) -le $(( RUNS_MAX_MB * 1024 )) ]; then
        echo "$run" >> "$WORK/runs-packed.txt"; total=$(( total + size ))
    else
        echo "$run" >> "$WORK/runs-left-behind.txt"
    fi
done < <(cd "$store" && ls -dtr -- */ 2>/dev/null | tr -d / | grep -Fx -f "$WORK/runs-new.txt")
if [ -s "$WORK/runs-packed.txt" ]; then
    tar -czf - -C "$store" -T "$WORK/runs-packed.txt" | split -b 15m -d -a 1 - "$OUT/runs.tar.gz.part"
fi
note "pack: $(wc -l < "$WORK/runs-packed.txt") new finished runs in $(ls "$OUT"/runs.tar.gz.part* 2>/dev/null | wc -l) part(s) ($((total / 1024)) MiB before compression); $(wc -l < "$WORK/runs-left-behind.txt") left behind (runs-left-behind.txt: recomputed by the next check)"
note "elapsed $(( $(date +%s) - start )) s; exit status $status"
[ -f "$WORK/timings.csv" ] && cp "$WORK/timings.csv" "$OUT/"
[ -f "$WORK/pytest-cuda.txt" ] && cp "$WORK/pytest-cuda.txt" "$OUT/"
cp "$summary" "$OUT/summary.txt"
reports=(summary.txt runs-new.txt runs-packed.txt runs-left-behind.txt)   # reports, tables, failure records
for path in "$WORK"/results/*/ "$WORK"/results/runs/.failed; do
    path="${path#"$WORK"/}"; path="${path%/}"
    [ -e "$WORK/$path" ] && [ "$path" != results/runs ] && reports+=("$path")
done
tar -czf "$OUT/reports.tar.gz" -C "$WORK" "${reports[@]}"
ls -l "$OUT"
exec 1>&- 2>&-
wait "$tee_pid"
exit $status
