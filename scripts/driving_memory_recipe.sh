#!/usr/bin/env bash
# Driving-v1's best recipe end to end, from a fresh checkout (issues 13 and 19; BENCHMARKS.md
# "Colour grounding", E13b and E13b-ft): expert data of every task plus focused `follow` and
# `overtake` data -> recurrent pretraining (BC-RNN: FiLM extractor + actor LSTM + head on whole
# episodes, the named car's lane offset read from the LSTM) -> RecurrentPPO fine-tuning from
# it with expert and label guidance, the pretrained layers at a tenth of the learning rate ->
# per-task success, modality necessity, how `overtake` episodes end, and what the LSTM holds.
#
#   scripts/driving_memory_recipe.sh OUT                     # seeds 0; 500k steps
#   SEEDS="1 2" STEPS=500000 scripts/driving_memory_recipe.sh runs/driving-memory
#   scripts/driving_memory_recipe.sh --dry-run OUT           # print the steps, run nothing
#   QUICK=1 scripts/driving_memory_recipe.sh OUT             # every step at toy sizes (minutes)
#
# Every step is skipped when its result exists and a killed fine-tuning run resumes from its
# last checkpoint, so rerunning the script continues where it stopped; a larger STEPS
# extends finished runs. Several SEEDS share one pretraining; with WORKERS=2 (default 1) two
# fine-tuning seeds run side by side.
#
# Layout of OUT: minari/ (the five datasets), enc.pt (+ enc_tb/), bc-eval.json and
# bc-outcomes-overtake.json (the pretrained policy on its own), run-s<SEED>/ (the RL run),
# and per seed necessity-s<SEED>/ (scripts/modality_necessity.py), outcomes-s<SEED>-*.json
# (scripts/car_task_outcomes.py) and probe-s<SEED>.json (scripts/memory_probe.py --lstm).
#
# Settings (environment variables): SEEDS ("0"), STEPS (500000), WORKERS (1), EPISODES
# (necessity episodes per condition and split, 500), EPOCHS (pretraining, 30), THREADS (torch
# threads for pretraining, 1), MMRL (the mmrl command), PYTHON. QUICK=1 is a smoke test of
# the chain: datasets of 8-20 episodes, 4-episode evaluations, a small memory probe, and
# defaults STEPS 512, EPOCHS 1, EPISODES 4.
# Measured cost on the 2-core development machine (one core each): collection ~5 min,
# pretraining ~25 min, fine-tuning ~45 min per 500k steps and seed, evaluations ~10 min.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
if [[ ${1:-} == --dry-run ]]; then DRY=1; shift; fi
die() { echo "driving_memory_recipe.sh: $*" >&2; exit 2; }
(( $# == 1 )) || die "expected one argument OUT (the output folder), got $# ($*)"
OUT=$1
QUICK=${QUICK:-0}
[[ $QUICK == 0 || $QUICK == 1 ]] || die "QUICK must be 0 or 1, got '$QUICK'"
if (( QUICK )); then
    STEPS=${STEPS:-512} EPISODES=${EPISODES:-4} EPOCHS=${EPOCHS:-1}
    EVAL=4 PROBE=(--envs 8 --steps 80 --epochs 2)
else
    EVAL=200 PROBE=()
fi
SEEDS=${SEEDS:-0}
STEPS=${STEPS:-500000}
WORKERS=${WORKERS:-1}
EPISODES=${EPISODES:-500}
EPOCHS=${EPOCHS:-30}
THREADS=${THREADS:-1}
MMRL=${MMRL:-mmrl}
PYTHON=${PYTHON:-python}
for name in STEPS WORKERS EPISODES EPOCHS THREADS; do
    [[ ${!name} =~ ^[1-9][0-9]*$ ]] || die "$name must be a whole number >= 1, got '${!name}'"
done
for seed in $SEEDS; do
    [[ $seed =~ ^[0-9]+$ ]] || die "SEEDS must be whole numbers >= 0, got '$seed'"
done
[[ -n ${SEEDS// /} ]] || die "SEEDS is empty"

(( DRY )) || mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MINARI_DATASETS_PATH=$OUT/minari
run() {  # print the step; run it unless --dry-run
    echo "+ $*"
    (( DRY )) || "$@"
}

# The recurrent recipe: FiLM fusion, one LSTM (128 units) shared by actor and critic.
REC=(--agent recurrent-ppo-concat --set agent.extractor.fusion=film
     --set agent.recurrent.shared_lstm=true --set agent.recurrent.enable_critic_lstm=false)
# Guidance during fine-tuning: imitation of the expert's action and the named car's lane
# offset read from the LSTM, both on whole rollouts through the LSTM.
GUIDE=(--expert-guidance 1 --label-guidance 1 --set "agent.guidance.labels=[target_lane_offset]"
       --set agent.guidance.label_input=memory --set agent.guidance.sequences=true)

# 1. Data: every task; `follow` alone (the colour binding); `overtake` alone at three noise
# levels and seeds (the pull-in lane, which only memory gives once the car is passed).
collect() {  # ID PRESET EPISODES EPSILON SEED
    local episodes=$3
    (( QUICK )) && episodes=$(( episodes / 50 > 8 ? episodes / 50 : 8 ))
    if (( DRY )) || [[ ! -d $MINARI_DATASETS_PATH/$1 ]]; then
        run "$MMRL" collect --env "$2" --policy expert --episodes "$episodes" --epsilon "$4" \
            --seed "$5" --dataset-id "$1" --quiet
    fi
}
collect mmrl/driving-memory/all-v1 driving 1000 0.1 0
collect mmrl/driving-memory/follow-v1 driving-follow 1000 0.3 0
collect mmrl/driving-memory/overtake-v1 driving-overtake 800 0.1 0
collect mmrl/driving-memory/overtake-clean-v1 driving-overtake 400 0.02 1000
collect mmrl/driving-memory/overtake-mid-v1 driving-overtake 800 0.05 2000
DATASETS=mmrl/driving-memory/all-v1,mmrl/driving-memory/follow-v1,mmrl/driving-memory/overtake-v1
DATASETS+=,mmrl/driving-memory/overtake-clean-v1,mmrl/driving-memory/overtake-mid-v1

# 2. Recurrent pretraining. The label's loss weighs double and decides early stopping: the
# LSTM learns to hold the lane late (E13's total-loss stopping quit before it did).
ENC=$OUT/enc.pt
if (( DRY )) || [[ ! -f $ENC ]]; then
    run "$MMRL" pretrain --dataset "$DATASETS" --env driving "${REC[@]}" --objectives bc,labels \
        --labels target_lane_offset --epochs "$EPOCHS" --patience 8 --weight labels=2 \
        --monitor labels --threads "$THREADS" --out "$ENC" --log-interval 120
fi
if (( DRY )) || [[ ! -f $OUT/bc-eval.json ]]; then
    run "$MMRL" evaluate "$ENC" --env driving --episodes "$EVAL" --split train,test \
        --json "$OUT/bc-eval.json"
fi
if (( DRY )) || [[ ! -f $OUT/bc-outcomes-overtake.json ]]; then
    run "$PYTHON" scripts/car_task_outcomes.py "$ENC" --task overtake --episodes "$EVAL" \
        --json "$OUT/bc-outcomes-overtake.json"
fi

# 3. Fine-tuning and evaluation, one seed.
finetune() {  # SEED
    local seed=$1 rundir=$OUT/run-s$1
    if [[ -d $rundir/checkpoints ]]; then
        run "$MMRL" train --resume "$rundir" --steps "$STEPS" --quiet
    else
        run "$MMRL" train --env driving "${REC[@]}" --init-from "$ENC" --init-policy-head \
            --encoder-lr-scale 0.1 --steps "$STEPS" --seed "$seed" --out "$rundir" --quiet \
            "${GUIDE[@]}"
    fi
    run "$PYTHON" scripts/modality_necessity.py "$rundir" --env driving --episodes "$EPISODES" \
        --threads 1 --out "$OUT/necessity-s$seed"
    for split in train test; do
        run "$PYTHON" scripts/car_task_outcomes.py "$rundir" --task overtake --episodes "$EVAL" \
            --split "$split" --json "$OUT/outcomes-s$seed-overtake-$split.json"
    done
    run "$PYTHON" scripts/memory_probe.py "$rundir/model.zip" --lstm "${PROBE[@]}" \
        --json "$OUT/probe-s$seed.json"
}
pids=()
for seed in $SEEDS; do
    if (( WORKERS > 1 && ! DRY )); then
        finetune "$seed" > "$OUT/finetune-s$seed.log" 2>&1 &
        pids+=($!)
        while (( ${#pids[@]} >= WORKERS )); do
            wait -n || die "a fine-tuning job failed (see $OUT/finetune-s*.log)"
            for i in "${!pids[@]}"; do kill -0 "${pids[$i]}" 2>/dev/null || unset "pids[$i]"; done
        done
    else
        finetune "$seed"
    fi
done
for pid in "${pids[@]}"; do wait "$pid" || die "a fine-tuning job failed (see $OUT/finetune-s*.log)"; done
