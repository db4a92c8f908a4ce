#!/usr/bin/env bash
# Navigation-v1's README recipe (warm-up form) with a bag-of-words instruction encoder instead
# of the GRU (issue 19: do held-out colour-shape pairs fail because the GRU composes "red" and
# "cone" into an unseen sentence vector?). Seed 0 pretrains on the expert data of the GRU
# runs (scripts/necessity_workflow.sh navigation ...: 1,000 episodes, epsilon 0.1); seeds 1
# and 2 fine-tune from seed 0's encoder, as the GRU runs did. Resumable.
# Run from the repository root.
#   bash docs/bench/navigation-bow-text/run.sh DATA_DIR OUT SEED [ENCODER.pt]
#   bash docs/bench/navigation-bow-text/run.sh nav-s0/minari bow-s0 0
#   bash docs/bench/navigation-bow-text/run.sh nav-s0/minari bow-s1 1 bow-s0/enc.pt
set -euo pipefail
data=$1 out=$2 seed=$3 enc=${4:-$2/enc.pt}
export OMP_NUM_THREADS=1 MINARI_DATASETS_PATH=$data
mkdir -p "$out"
[ -f "$enc" ] || mmrl pretrain --dataset mmrl/necessity/navigation-v1 --agent ppo-concat \
    --epochs 40 --set agent.extractor.encoders.text=bow --out "$enc" --quiet
if [ -d "$out/run/checkpoints" ]; then
    mmrl train --resume "$out/run" --steps 2000000 --quiet
else
    mmrl train --env navigation --agent ppo-concat --init-from "$enc" --init-policy-head \
        --critic-warmup 50000 --set agent.extractor.encoders.text=bow --steps 2000000 \
        --seed "$seed" --out "$out/run" --quiet
fi
for split in test train; do
    python scripts/navigation_outcomes.py "$out/run" --split $split --episodes 1200 \
        --envs 200 --json "$out/outcomes-$split.json" > "$out/outcomes-$split.txt"
done
python scripts/modality_necessity.py "$out/run" --episodes 500 --threads 1 --out "$out/necessity"
