#!/usr/bin/env bash
# Lab (issue 19): the Navigation warm-up run of seed 0 (same encoder, seed, machine) with expert
# guidance added during fine-tuning. Resumable.
set -euo pipefail
cd /work/main
export PATH=/work/main/.venv/bin:$PATH OMP_NUM_THREADS=1
OUT=/work/lab/nav-s0-warm-guided
STEPS=${STEPS:-1000000}
date
if [[ -d $OUT/run/checkpoints ]]; then
    mmrl train --resume $OUT/run --steps "$STEPS" --quiet
else
    mmrl train --env navigation --agent ppo-concat --init-from /work/lab/nav-s0/enc.pt \
        --init-policy-head --critic-warmup 50000 --expert-guidance 1 --steps "$STEPS" --seed 0 \
        --out $OUT/run --quiet
fi
date
[[ -f $OUT/necessity/necessity.json ]] || python scripts/modality_necessity.py $OUT/run \
    --episodes 200 --threads 1 --out $OUT/necessity
for split in train test; do
    [[ -f $OUT/outcomes-$split.json ]] || python scripts/navigation_outcomes.py $OUT/run \
        --split $split --episodes 300 --json $OUT/outcomes-$split.json
done
date
