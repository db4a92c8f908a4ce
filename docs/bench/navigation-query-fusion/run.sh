#!/usr/bin/env bash
# The Navigation warm-up recipe of the README with the `query` fusion (the instruction queries
# the camera's cells; direct_query=false: the instruction reaches the policy only through what it
# selects), 2 seeds at 1M steps, then the outcomes of 1,200 episodes per split (issue 19).
# The fusion is on the branch exp/text-query (query-fusion.patch here, against main 6cf95e7).
# Run from the repository root of a checkout of that branch; the expert data is the one the
# README workflow's seed 0 collected (`mmrl collect --env navigation --policy expert
# --episodes 1000 --epsilon 0.1 --dataset-id mmrl/necessity/navigation-v1`).
set -euo pipefail
OUT=${OUT:-results/nav-query}
export OMP_NUM_THREADS=1
SET="--set agent.extractor.fusion=query --set agent.extractor.fusion_kwargs.direct_query=false"
mkdir -p "$OUT"
mmrl pretrain --dataset mmrl/necessity/navigation-v1 --agent ppo-concat $SET --epochs 40 \
    --threads 1 --out "$OUT/enc.pt"
mmrl evaluate "$OUT/enc.pt" --env navigation --episodes 200 --split train,test
for seed in 0 1; do
    mmrl train --env navigation --agent ppo-concat $SET --init-from "$OUT/enc.pt" \
        --init-policy-head --critic-warmup 50000 --steps 1000000 --seed $seed \
        --out "$OUT/run-s$seed" --quiet &
done
wait
for seed in 0 1; do
    for split in train test; do
        python scripts/navigation_outcomes.py "$OUT/run-s$seed/model.zip" --split $split \
            --episodes 1200 --envs 200 --json "$OUT/outcomes-$split-s$seed.json"
    done
done
