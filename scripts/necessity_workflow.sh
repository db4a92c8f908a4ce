#!/usr/bin/env bash
# The README workflow behind every modality-necessity figure in BENCHMARKS.md, resumable step by
# step: collect 1,000 expert episodes (epsilon 0.1) -> pretrain $AGENT (default ppo-concat; 40 epochs) ->
# fine-tune from the encoder and its BC head -> scripts/modality_necessity.py (200 episodes per
# condition and split). Rerunning it skips the finished steps and resumes a killed training run;
# a larger STEPS extends a finished run.
#
#   scripts/necessity_workflow.sh ENV_PRESET STEPS SEED OUT [ENCODER.pt]
#   scripts/necessity_workflow.sh navigation 1200000 0 results/nav-s0
#   scripts/necessity_workflow.sh navigation 1200000 1 results/nav-s1 results/nav-s0/enc.pt
#   scripts/necessity_workflow.sh path/to/preset.yaml 400000 0 results/custom
#
# ENCODER: reuse a pretrained encoder (other fine-tuning seeds of the same pretraining) instead
# of collecting and pretraining again. One torch thread, as the recorded figures.
# Environment: TRAIN_ARGS adds `mmrl train` options to a new run (e.g. "--expert-guidance 1");
# EPISODES sets the necessity episodes per condition (default 200); AGENT the recipe
# pretrained and fine-tuned (default ppo-concat); SET run-config overrides for both (e.g.
# "--set agent.extractor.encoders.camera=factored").
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 ENV_PRESET STEPS SEED OUT [ENCODER.pt]" >&2
    exit 2
fi
env=$1 steps=$2 seed=$3 out=$4 encoder=${5:-} agent=${AGENT:-ppo-concat}
mkdir -p "$out"
export OMP_NUM_THREADS=1 MINARI_DATASETS_PATH="${MINARI_DATASETS_PATH:-$out/minari}"
dataset="mmrl/necessity/$(basename "${env%.yaml}" | tr -c 'a-z0-9\n' '-')-v1"
if [ -z "$encoder" ]; then
    encoder=$out/enc.pt
    if [ ! -d "$MINARI_DATASETS_PATH/$dataset" ]; then
        mmrl collect --env "$env" --policy expert --episodes 1000 --epsilon 0.1 \
            --dataset-id "$dataset" --quiet
    fi
    [ -f "$encoder" ] || mmrl pretrain --dataset "$dataset" --agent "$agent" --epochs 40 \
        --out "$encoder" ${SET:-}
fi
run=$out/run
if [ -d "$run/checkpoints" ]; then
    mmrl train --resume "$run" --steps "$steps" --quiet
else
    mmrl train --env "$env" --agent "$agent" --init-from "$encoder" --init-policy-head \
        --steps "$steps" --seed "$seed" --out "$run" --quiet ${SET:-} ${TRAIN_ARGS:-}
fi
python scripts/modality_necessity.py "$run" --episodes "${EPISODES:-200}" --threads 1 \
    --out "$out/necessity"
