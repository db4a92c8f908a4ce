#!/usr/bin/env bash
# The Navigation warm-up recipe of the README with the factored camera encoder and the query
# fusion reading positions only (direct_query=false, values=positions), GRU instruction encoder;
# seeds 0 and 1 to 1M, then resumed to 2M; outcomes (1,200 episodes per split) at both
# (issue 19). A bag-of-words variant (TEXT=bow) was run for seed 0 to 1M. Run from the
# repository root. The expert data is the README workflow's (`mmrl collect --env navigation
# --policy expert --episodes 1000 --epsilon 0.1 --dataset-id mmrl/necessity/navigation-v1`).
set -euo pipefail
OUT=${OUT:-results/nav-factored-query}
export OMP_NUM_THREADS=1
SET="--set agent.extractor.encoders.camera=factored --set agent.extractor.fusion_kwargs.direct_query=false --set agent.extractor.fusion_kwargs.values=positions"
[ "${TEXT:-gru}" = bow ] && SET="$SET --set agent.extractor.encoders.text=bow"
mkdir -p "$OUT"
[ -f "$OUT/enc.pt" ] || mmrl pretrain --dataset mmrl/necessity/navigation-v1 --agent ppo-query \
    $SET --epochs 40 --threads 1 --out "$OUT/enc.pt"
mmrl evaluate "$OUT/enc.pt" --env navigation --episodes 200 --split train,test
outcomes() {
    for split in train test; do
        python scripts/navigation_outcomes.py "$1/model.zip" --split $split --episodes 1200 \
            --envs 200 --json "$OUT/outcomes-$split-$2.json"
    done
}
for seed in ${SEEDS:-0 1}; do
    (
        mmrl train --env navigation --agent ppo-query $SET --init-from "$OUT/enc.pt" \
            --init-policy-head --critic-warmup 50000 --steps 1000000 --seed $seed \
            --out "$OUT/run-s$seed" --quiet
        outcomes "$OUT/run-s$seed" "s$seed-1M"
        mmrl train --resume "$OUT/run-s$seed" --steps 2000000 --quiet
        outcomes "$OUT/run-s$seed" "s$seed-2M"
    ) &
done
wait
