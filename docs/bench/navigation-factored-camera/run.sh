#!/usr/bin/env bash
# The Navigation warm-up recipe of the README with the factored camera encoder, 3 seeds at 2M
# steps, then outcomes (1,200 episodes per split), the two probes and modality necessity
# (500 episodes per condition) (issue 19). Run from the repository root. The expert data is the
# README workflow's (`mmrl collect --env navigation --policy expert --episodes 1000 --epsilon 0.1
# --dataset-id mmrl/necessity/navigation-v1`).
set -euo pipefail
OUT=${OUT:-results/nav-factored}
export OMP_NUM_THREADS=1
SET="--set agent.extractor.encoders.camera=factored"
mkdir -p "$OUT"
[ -f "$OUT/enc.pt" ] || mmrl pretrain --dataset mmrl/necessity/navigation-v1 --agent ppo-concat \
    $SET --epochs 40 --threads 1 --out "$OUT/enc.pt"
mmrl evaluate "$OUT/enc.pt" --env navigation --episodes 200 --split train,test
for seed in 0 1 2; do
    mmrl train --env navigation --agent ppo-concat $SET --init-from "$OUT/enc.pt" \
        --init-policy-head --critic-warmup 50000 --steps 2000000 --seed $seed \
        --out "$OUT/run-s$seed" --quiet &
done
wait
probes=docs/bench/navigation-red-cone
for seed in 0 1 2; do
    run=$OUT/run-s$seed
    for split in train test; do
        python scripts/navigation_outcomes.py "$run/model.zip" --split $split --episodes 1200 \
            --envs 200 --json "$OUT/outcomes-$split-s$seed.json"
    done
    python scripts/modality_necessity.py "$run" --episodes 500 --threads 1 \
        --out "$OUT/necessity-s$seed"
done
python $probes/approach_probe.py "$OUT"/run-s{0,1,2}/model.zip --json "$OUT/approach-probe.json"
python $probes/attribute_probe.py "$OUT/enc.pt" "$OUT"/run-s{0,1,2}/model.zip
python $probes/attribute_probe.py "$OUT/enc.pt" --untrained
