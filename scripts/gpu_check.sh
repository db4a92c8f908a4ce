#!/usr/bin/env bash
# GPU check for the lent GPU machine (one H200, no package index): install mmrl's missing
# dependencies offline, run the CUDA tests, measure PPO and pretraining speed on CPU and CUDA,
# then optionally an `mmrl bench` grid on CUDA. docs/gpu.md has the whole procedure.
#
#   bash scripts/gpu_check.sh              # phase 1: install, CUDA tests, measurements
#   GPU_BENCH_STEPS=49152 bash scripts/gpu_check.sh   # phase 1, then phase 2: the bench grid
#   GPU_CHECK_BASE=0 GPU_BENCH_STEPS=49152 bash scripts/gpu_check.sh  # phase 2 alone
#   bash scripts/gpu_check.sh --dry-run    # print the settings and steps, run nothing
#
# Nothing is downloaded: the wheels in .whl/ (made here by scripts/fetch_gpu_wheels.py, carried
# with `carry: [".whl"]`) are installed with --no-index into $GPU_SITE, and mmrl itself is
# imported from this checkout through PYTHONPATH (`pip install -e .[dev]` would need an index).
#
# Settings (environment variables, all optional):
#   PYTHON             interpreter (default python3: the image's, with its CUDA torch)
#   OUT                folder for logs and results (the device tool sets it; default: a temp dir)
#   GPU_SITE           where the wheels are installed (default /tmp/site)
#   GPU_CHECK_BUDGET   seconds for the whole script (default 540; the tool stops a command at 600)
#   GPU_CHECK_BASE     1 (default) runs phase 1; 0 skips it (the install still runs)
#   STEPS              PPO steps per device in scripts/gpu_check.py (default 16384)
#   GPU_N_ENVS         env copies for scripts/gpu_check.py (default 128), stepped in cores - 1
#                      worker processes
#   GPU_BENCH_STEPS    phase 2: env steps per bench cell; 0 (default) skips phase 2
#   GPU_BENCH_ENVS     env presets (default driving,navigation)
#   GPU_BENCH_FUSIONS  fusions or 'all' (default concat)
#   GPU_BENCH_SEEDS    seeds per env x fusion (default 1)
#   GPU_BENCH_WORKERS  parallel cells (default: cores - 1, leaving one for the driver)
#   GPU_BENCH_DEVICE   the bench's --device (default cuda; cpu skips the CUDA check when
#                      GPU_CHECK_BASE=0, to try phase 2 on a machine without a GPU)
#   GPU_BENCH_KEEP_MODELS  fusion whose cells' model.zip come back (default concat)
#   GPU_BENCH_ARGS     more `mmrl bench` flags, split on spaces (e.g. "--no-ablation")
#
# Prints each step's output between "== <step> (time limit Ns): <command>" and
# "== <step>: ok|failed (exit N)|timed out after Ns|skipped, S s", then a table of the steps.
# Every step runs under `timeout`, capped by what is left of GPU_CHECK_BUDGET.
# Writes under $OUT (the device tool returns at most 8 files): gpu_check.log (all output),
# gpu_check_summary.md (the table), bench_pretrain.json, and for phase 2 bench_summary.md,
# bench_results.csv and bench.tar.gz (the bench folder without models and checkpoints).
# Exit status: 0 when every step passed, 1 when one failed, timed out or was skipped for lack
# of time, 2 on a bad argument or setting.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die_usage() { echo "gpu_check.sh: $*" >&2; exit 2; }

DRY_RUN=0
for arg in "$@"; do
    case $arg in
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die_usage "unknown argument '$arg'; allowed: --dry-run, --help (settings are environment variables, see --help)" ;;
    esac
done

whole() {  # whole NAME VALUE: VALUE must be a non-negative integer
    [[ $2 =~ ^[0-9]+$ ]] || die_usage "$1 must be a whole number, got '$2'"
}
PY=${PYTHON:-python3}
SITE=${GPU_SITE:-/tmp/site}
BUDGET=${GPU_CHECK_BUDGET:-540}
BASE=${GPU_CHECK_BASE:-1}
PPO_STEPS=${STEPS:-16384}
BENCH_STEPS=${GPU_BENCH_STEPS:-0}
BENCH_ENVS=${GPU_BENCH_ENVS:-driving,navigation}
BENCH_FUSIONS=${GPU_BENCH_FUSIONS:-concat}
BENCH_SEEDS=${GPU_BENCH_SEEDS:-1}
BENCH_DEVICE=${GPU_BENCH_DEVICE:-cuda}
BENCH_KEEP_MODELS=${GPU_BENCH_KEEP_MODELS:-concat}
# nproc alone would follow OMP_NUM_THREADS, which says nothing about how many processes fit.
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
BENCH_WORKERS=${GPU_BENCH_WORKERS:-$(( cores > 1 ? cores - 1 : 1 ))}
read -r -a BENCH_ARGS <<< "${GPU_BENCH_ARGS:-}"
whole GPU_CHECK_BUDGET "$BUDGET"
whole STEPS "$PPO_STEPS"
whole GPU_BENCH_STEPS "$BENCH_STEPS"
whole GPU_BENCH_SEEDS "$BENCH_SEEDS"
whole GPU_BENCH_WORKERS "$BENCH_WORKERS"
[[ $BASE == 0 || $BASE == 1 ]] || die_usage "GPU_CHECK_BASE must be 0 or 1, got '$BASE'"
(( BENCH_WORKERS >= 1 )) || die_usage "GPU_BENCH_WORKERS must be at least 1"
# The bench's own folder (models included) stays on the machine; $OUT gets a summary. Rerun
# with the same settings on a warm machine, it resumes (finished cells are skipped); its name
# follows the settings `mmrl bench` refuses to mix in one folder (steps, device, flags).
BENCH_DIR=/tmp/mmrl-gpu-bench-$(printf '%s ' "$BENCH_STEPS" "$BENCH_DEVICE" \
    ${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"} | cksum | cut -d' ' -f1)

if (( DRY_RUN )); then
    OUT=${OUT:-<temp dir>}
else
    OUT=${OUT:-$(mktemp -d -t mmrl-gpu-check.XXXXXX)}
    mkdir -p "$OUT"
fi
export PYTHONUNBUFFERED=1  # output in order with the step markers, and kept if a step is killed

deadline=$(( SECONDS + BUDGET ))
failed=0
rows=()

# step NAME CAP [--signal SIG] COMMAND...: runs COMMAND under `timeout` for at most CAP
# seconds (less when the budget is nearly spent), prints and records how it went; returns its
# exit status (non-zero when skipped).
step() {
    local name=$1 cap=$2 signal=TERM
    shift 2
    if [[ $1 == --signal ]]; then signal=$2; shift 2; fi
    local left=$(( deadline - SECONDS ))
    local limit=$(( cap < left ? cap : left ))
    if (( DRY_RUN )); then
        printf '+ [%s, at most %ss] %s\n' "$name" "$cap" "$(printf '%q ' "$@")"
        return 0
    fi
    if (( limit < 15 )); then
        echo "== $name: skipped, ${left}s of GPU_CHECK_BUDGET=${BUDGET}s left"
        rows+=("| $name | skipped (budget) | 0 |")
        failed=1
        return 1
    fi
    echo "== $name (time limit ${limit}s): $*"
    local t0=$SECONDS rc=0 status
    # --kill-after: a step that ignores the signal still ends; timeout signals the whole
    # process group, so the bench's worker processes go too.
    timeout --signal="$signal" --kill-after=20 "$limit" "$@" || rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status="timed out after ${limit}s" ;;
        *) status="failed (exit $rc)" ;;
    esac
    echo "== $name: $status, $(( SECONDS - t0 ))s"
    rows+=("| $name | $status | $(( SECONDS - t0 )) |")
    (( rc == 0 )) || failed=1
    return $rc
}

write_summary() {
    {
        echo "# gpu_check $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -n)"
        echo
        echo "| step | result | seconds |"
        echo "| --- | --- | ---: |"
        printf '%s\n' "${rows[@]}"
    } > "$OUT/gpu_check_summary.md"
    echo
    cat "$OUT/gpu_check_summary.md"
    echo "results in $OUT"
}

# Copies the bench's report into $OUT and packs its folder for the device tool, which returns
# files of at most 16 MiB: without models (model.zip) and resume checkpoints, then, if still
# too large, without the tensorboard event files too.
pack_bench() {
    [[ -f $BENCH_DIR/summary.md ]] && cp "$BENCH_DIR/summary.md" "$OUT/bench_summary.md"
    [[ -f $BENCH_DIR/results.csv ]] && cp "$BENCH_DIR/results.csv" "$OUT/bench_results.csv"
    local tarball=$OUT/bench.tar.gz also
    for also in checkpoints '*tfevents*'; do
        tar -czf "$tarball" --exclude='*.zip' --exclude=checkpoints --exclude="$also" \
            -C "$(dirname "$BENCH_DIR")" "$(basename "$BENCH_DIR")"
        (( $(stat -c %s "$tarball") < 15 * 2**20 )) && return 0
    done
    rm -f "$tarball"
    echo "gpu_check.sh: $BENCH_DIR packs to more than 15 MiB even without models and" \
         "tensorboard files; only bench_summary.md and bench_results.csv come back" >&2
}

# The final models of the cells of fusion GPU_BENCH_KEEP_MODELS (default concat, the default
# recipe's; all fusions' models do not fit one returned file) with their resolved configs (evaluate them later with
# `mmrl evaluate` or scripts/modality_necessity.py), when they fit one returned file.
pack_models() {
    local tarball=$OUT/bench_models.tar.gz
    (cd "$(dirname "$BENCH_DIR")" && find "$(basename "$BENCH_DIR")" -name checkpoints -prune -o \
        -path "*-${BENCH_KEEP_MODELS}-*" \( -name model.zip -o -name config.yaml \
        -o -name metrics.json \) -print0 |
        tar -czf "$tarball" --null -T -) || return 0
    (( $(stat -c %s "$tarball") < 15 * 2**20 )) && return 0
    rm -f "$tarball"
    echo "gpu_check.sh: the bench's models pack to more than 15 MiB; not returned" >&2
}

main() {
    if (( ! DRY_RUN )); then trap write_summary EXIT; fi
    echo "# gpu_check.sh: PYTHON=$PY OUT=$OUT budget ${BUDGET}s, phase 1 $([[ $BASE == 1 ]] && echo on || echo off)," \
         "bench $([[ $BENCH_STEPS == 0 ]] && echo off || echo "$BENCH_STEPS steps x $BENCH_ENVS x $BENCH_FUSIONS x $BENCH_SEEDS seed(s) on $BENCH_DEVICE, $BENCH_WORKERS workers")"

    # --- install, offline --------------------------------------------------------------
    shopt -s nullglob
    local wheels=(.whl/*.whl)
    shopt -u nullglob
    if (( ${#wheels[@]} )); then
        step install-wheels 120 "$PY" -m pip install -q --no-index --no-deps --no-compile \
            --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" || exit 1
        export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
        # Unmet versions are reported, not fatal: the tests below show whether they matter.
        step check-requirements 60 "$PY" scripts/fetch_gpu_wheels.py --check .whl || true
    else
        echo "no wheels in .whl/: using the interpreter's packages as they are" \
             "(scripts/fetch_gpu_wheels.py makes them here; carry: [\".whl\"])"
        export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    fi
    (( DRY_RUN )) && echo "+ PYTHONPATH=$PYTHONPATH"
    # numba comes from the image (the env sensors' kernels): an image numba that does not
    # work with the image's numpy fails here, before any training.
    local versions='import mmrl, gymnasium as g, stable_baselines3 as s, minari as m, numba
print("mmrl from", mmrl.__file__, "| gymnasium", g.__version__, "| stable-baselines3",
      s.__version__, "| minari", m.__version__, "| numba", numba.__version__)'
    step import 120 "$PY" -c "$versions" || exit 1
    if [[ $BASE == 1 || $BENCH_DEVICE == cuda* ]]; then
        local cuda='import torch; assert torch.cuda.is_available(), "torch sees no CUDA device";
print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))'
        step cuda 60 "$PY" -c "$cuda" || exit 1
    fi

    # --- phase 1: CUDA tests and measurements ------------------------------------------
    if [[ $BASE == 1 ]]; then
        step cuda-tests 240 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests || true
        step gpu_check.py 240 "$PY" scripts/gpu_check.py --steps "$PPO_STEPS" \
            --n-envs "${GPU_N_ENVS:-128}" || true
        # Pretraining throughput (attention recipe, batch 256) on CPU and GPU (issue 6).
        step bench_pretrain.py 240 "$PY" scripts/bench_pretrain.py --envs driving \
            --n-envs 64 --episodes 64 --updates 30 --threads 1 --devices cpu,cuda \
            --json "$OUT/bench_pretrain.json" || true
    fi

    # --- phase 2: an mmrl bench grid on CUDA -------------------------------------------
    if (( BENCH_STEPS > 0 )); then
        # SIGINT, not TERM, at the time limit: the bench then writes its report for the
        # cells that finished (rerunning the same command on a warm machine resumes).
        step bench "$BUDGET" --signal INT "$PY" -m mmrl bench --envs "$BENCH_ENVS" \
            --fusions "$BENCH_FUSIONS" --seeds "$BENCH_SEEDS" --steps "$BENCH_STEPS" \
            --device "$BENCH_DEVICE" --workers "$BENCH_WORKERS" --out "$BENCH_DIR" \
            ${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"} || true
        if (( DRY_RUN )); then
            echo "+ pack $BENCH_DIR into $OUT: bench_summary.md bench_results.csv bench.tar.gz"
        elif [[ -d $BENCH_DIR ]]; then
            pack_bench; pack_models
        fi
    fi
    return $failed
}

if (( DRY_RUN )); then
    main
else
    main 2>&1 | tee -a "$OUT/gpu_check.log"
fi
