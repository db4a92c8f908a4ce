#!/usr/bin/env bash
# Navigation-v1's warm-up recipe (GRU, from the README runs' seed-0 encoder) on train rooms
# that show one never-named held-out (colour, shape) pair half the time (issue 19: is the
# held-out gap the camera never having seen those objects?). Needs held-out-distractors.patch
# applied (branch exp/held-out-distractors); evaluation runs on unpatched code. Resumable.
# Run from the repository root.
#   bash docs/bench/navigation-held-out-distractors/run.sh ENCODER.pt OUT SEED
set -euo pipefail
enc=$1 out=$2 seed=$3
export OMP_NUM_THREADS=1 MMRL_HELD_OUT_DISTRACTORS=0.5
if [ -d "$out/run/checkpoints" ]; then
    mmrl train --resume "$out/run" --steps 1000000 --quiet
else
    mmrl train --env navigation --agent ppo-concat --init-from "$enc" --init-policy-head \
        --critic-warmup 50000 --steps 1000000 --seed "$seed" --out "$out/run" --quiet
fi
for split in test train; do  # unpatched code: the standard splits
    env -u MMRL_HELD_OUT_DISTRACTORS python scripts/navigation_outcomes.py "$out/run/model.zip" \
        --split $split --episodes 1200 --envs 200 --json "$out/outcomes-$split.json" \
        > "$out/outcomes-$split.txt"
done
