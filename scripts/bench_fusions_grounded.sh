#!/usr/bin/env bash
# Issue 19's fusion benchmark on each env's pretrained recipe: every fusion pretrained on the
# env's expert data with the labels that say where the instruction's referent is, then
# fine-tuned with PPO from its encoder and BC head.
#   driving:    the grounding recipe (label pretraining on target_lane_offset; fine-tuning
#               with label and expert guidance);
#   navigation: the README's Navigation recipe (`mmrl pretrain` with its default objectives,
#               40 epochs; fine-tuning with a 50k-step critic warm-up, no guidance). The
#               grounding recipe's Navigation form (label pretraining on target_in_view and
#               target_bearing, label guidance) reached 34 % / 19 % and 34 % / 47 % with concat
#               at 1M against the README recipe's 67-76 % / 56-64 % (BENCHMARKS.md), so a grid
#               on it would compare fusions far from final performance.
#
#   scripts/bench_fusions_grounded.sh [ENV] [OUT]   # ENV driving (default) or navigation
#   scripts/bench_fusions_grounded.sh --dry-run [ENV] [OUT]   # print the steps, run nothing
#
# Default OUT: docs/bench/fusions-grounded-<ENV> (committed: bench.json, cells/*/cell.json and
# the report; the run folders are git-ignored). Datasets and encoders go to DATA (default
# runs/grounded-<ENV>, git-ignored).
#
# Steps, each skipped when its result exists, so an interrupted sitting resumes:
#   1. expert datasets (Minari, under DATA/minari):
#        driving:    all tasks, 1,000 episodes, epsilon 0.1; plus "follow" only (the
#                    driving-follow preset), 1,000 episodes, epsilon 0.3
#        navigation: all tasks, 1,000 episodes, epsilon 0.1
#   2. one encoder per fusion, DATA/encoders/<ENV>-<fusion>.pt, WORKERS at a time:
#        driving:    `mmrl pretrain --objectives bc,labels --labels target_lane_offset`,
#                    20 epochs (the kept epoch is the best of all 20)
#        navigation: `mmrl pretrain` (objectives bc,labels,contrastive,masked on every
#                    label), 40 epochs, early stopping after 5 without improvement
#   3. `mmrl bench --pretrained-dir DATA/encoders`: per cell ppo-<fusion> from its encoder and
#      BC head (driving: label guidance on target_lane_offset and expert guidance, weight 1;
#      navigation: only the critic learns for the first 50k steps), STEPS env steps,
#      evaluated every 100,000 steps and at the end on held-out seeds with 32 episodes per
#      instruction split, then ABLATION_EPISODES per masked modality. The
#      protocol records the encoders by content, so the grid resumes from any checkout or
#      machine holding the same encoders (copy DATA/encoders along).
#
# Settings (environment variables): STEPS (default 1000000), SEEDS (3), FUSIONS (all, or a
# comma list), WORKERS (2: parallel pretraining jobs and bench cells), EPISODES (1000 per
# dataset), EPOCHS (20 driving, 40 navigation), ABLATION_EPISODES (200), DEVICE (auto),
# DATA, MMRL (the mmrl command), ADOPT_ENCODERS (0; 1 passes --adopt-encoders: the encoders
# were rebuilt by step 2 on a machine whose floating point gives other bytes than the
# committed cells' ones, e.g. another CPU; the finished cells keep theirs, the rest use the
# new ones, and the report says which cell used which). On the GPU machine:
# WORKERS=$(( $(nproc) - 1 )) DEVICE=cuda.
# Measured cost on this 2-core machine: ~25k env steps per minute per core for ppo-film on
# Driving, so the full driving grid (18 cells x 1M steps) is ~12 h of one core.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
if [[ ${1:-} == --dry-run ]]; then DRY=1; shift; fi
(( $# <= 2 )) || { echo "bench_fusions_grounded.sh: at most ENV and OUT, got: $*" >&2; exit 2; }
ENV=${1:-driving}
OUT=${2:-docs/bench/fusions-grounded-$ENV}
MMRL=${MMRL:-mmrl}
STEPS=${STEPS:-1000000}
SEEDS=${SEEDS:-3}
WORKERS=${WORKERS:-2}
EPISODES=${EPISODES:-1000}
ABLATION_EPISODES=${ABLATION_EPISODES:-200}
DEVICE=${DEVICE:-auto}
DATA=${DATA:-runs/grounded-$ENV}
FUSIONS=${FUSIONS:-all}
ADOPT_ENCODERS=${ADOPT_ENCODERS:-0}
[[ $FUSIONS == all ]] && FUSIONS=concat,mean,gated,film,attention,perceiver

die() { echo "bench_fusions_grounded.sh: $*" >&2; exit 2; }
for name in STEPS SEEDS WORKERS EPISODES ABLATION_EPISODES; do
    [[ ${!name} =~ ^[1-9][0-9]*$ ]] || die "$name must be a whole number >= 1, got '${!name}'"
done
[[ $ADOPT_ENCODERS == 0 || $ADOPT_ENCODERS == 1 ]] || die "ADOPT_ENCODERS must be 0 or 1, got '$ADOPT_ENCODERS'"
ADOPT=()
(( ADOPT_ENCODERS )) && ADOPT=(--adopt-encoders)
case $ENV in
    driving)
        EPOCHS=${EPOCHS:-20}
        DATASETS="mmrl/grounded/driving-all-v1,mmrl/grounded/driving-follow-v1"
        PRETRAIN=(--objectives bc,labels --labels target_lane_offset --epochs "$EPOCHS"
                  --patience "$EPOCHS")
        FINETUNE=(--set agent.guidance.label_weight=1
                  --set "agent.guidance.labels=[target_lane_offset]"
                  --set agent.guidance.weight=1) ;;
    navigation)
        EPOCHS=${EPOCHS:-40}
        DATASETS="mmrl/grounded/navigation-all-v1"
        PRETRAIN=(--epochs "$EPOCHS")
        # The README's Navigation recipe: only the critic learns for the first 50k steps, so
        # PPO's first updates do not undo the pretrained policy (BENCHMARKS: without it the
        # README workflow collapsed to 26 % / 19 % on one CPU, with it 67-76 % / 56-64 %).
        FINETUNE=(--set agent.init.critic_warmup_steps=50000) ;;
    *) die "ENV must be driving or navigation, got '$ENV'" ;;
esac
export MINARI_DATASETS_PATH=$DATA/minari

run() {  # run CMD...: print it, and run it unless --dry-run
    echo "+ $*"
    if [[ $DRY == 0 ]]; then "$@"; fi
}

# 1. datasets
collect() {  # collect ID PRESET EPSILON
    if [[ -d $MINARI_DATASETS_PATH/$1 ]]; then echo "= dataset $1 exists"; return; fi
    run "$MMRL" collect --env "$2" --policy expert --episodes "$EPISODES" --epsilon "$3" \
        --dataset-id "$1" --quiet
}
if [[ $ENV == driving ]]; then
    collect mmrl/grounded/driving-all-v1 driving 0.1
    collect mmrl/grounded/driving-follow-v1 driving-follow 0.3
else
    collect mmrl/grounded/navigation-all-v1 navigation 0.1
fi

# 2. one encoder per fusion, WORKERS at a time
[[ $DRY == 1 ]] || mkdir -p "$DATA/encoders"
jobs_running=0
for fusion in ${FUSIONS//,/ }; do
    enc=$DATA/encoders/$ENV-$fusion.pt
    if [[ -f $enc ]]; then echo "= encoder $enc exists"; continue; fi
    run "$MMRL" pretrain --dataset "$DATASETS" --env "$ENV" --agent "ppo-$fusion" \
        "${PRETRAIN[@]}" --threads 1 --device "$DEVICE" --out "$enc" --quiet &
    jobs_running=$((jobs_running + 1))
    if (( jobs_running >= WORKERS )); then wait -n || true; jobs_running=$((jobs_running - 1)); fi
done
wait || true  # a failed job is found below, by its missing checkpoint
for fusion in ${FUSIONS//,/ }; do
    [[ $DRY == 1 || -f $DATA/encoders/$ENV-$fusion.pt ]] || die "pretraining ppo-$fusion failed (its error is above)"
done

# 3. the grid
run "$MMRL" bench --envs "$ENV" --fusions "$FUSIONS" --seeds "$SEEDS" --steps "$STEPS" \
    --pretrained-dir "$DATA/encoders" --device "$DEVICE" \
    --set agent.init.init_policy_head=true "${FINETUNE[@]}" \
    --set eval_freq=100000 --set eval_episodes=32 --ablation-episodes "$ABLATION_EPISODES" \
    --backend local --workers "$WORKERS" --out "$OUT" "${ADOPT[@]}"
