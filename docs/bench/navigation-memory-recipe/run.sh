#!/usr/bin/env bash
# Lab: Driving's memory recipe carried to Navigation-v1 (issue 19). Resumable: each step skipped
# when its result exists; the fine-tuning resumes from its last checkpoint. The two runs:
#   EXPERT="--expert-guidance 1" RUN=run-s0 ./run.sh    # expert + label guidance
#   RUN=run-labels-s0 ./run.sh                           # label guidance only
set -euo pipefail
cd /work/main
export PATH=/work/main/.venv/bin:$PATH OMP_NUM_THREADS=1
OUT=/work/lab/navmem
RUN=${RUN:-run-s0}
export MINARI_DATASETS_PATH=$OUT/minari
STEPS=${STEPS:-500000}
REC=(--agent recurrent-ppo-concat --set agent.extractor.fusion=film
     --set agent.recurrent.shared_lstm=true --set agent.recurrent.enable_critic_lstm=false)
GUIDE=(${EXPERT:-} --label-guidance 1 --set "agent.guidance.labels=[target_in_view,target_bearing]"
       --set agent.guidance.label_input=memory --set agent.guidance.sequences=true)
date
[[ -d $MINARI_DATASETS_PATH/mmrl/nav-memory/all-v1 ]] || \
    mmrl collect --env navigation --policy expert --episodes 1000 --epsilon 0.1 --seed 0 \
        --dataset-id mmrl/nav-memory/all-v1 --quiet
date
[[ -f $OUT/enc.pt ]] || mmrl pretrain --dataset mmrl/nav-memory/all-v1 --env navigation "${REC[@]}" \
    --objectives bc,labels --labels target_in_view,target_bearing --epochs 30 --patience 8 \
    --weight labels=2 --threads 1 --out $OUT/enc.pt --log-interval 120
date
[[ -f $OUT/bc-eval.json ]] || mmrl evaluate $OUT/enc.pt --env navigation --episodes 200 \
    --split train,test --json $OUT/bc-eval.json
date
if [[ -d $OUT/$RUN/checkpoints ]]; then
    mmrl train --resume $OUT/$RUN --steps "$STEPS" --quiet
else
    mmrl train --env navigation "${REC[@]}" --init-from $OUT/enc.pt --init-policy-head \
        --critic-warmup 50000 --steps "$STEPS" --seed 0 --out $OUT/$RUN --quiet "${GUIDE[@]}"
fi
date
