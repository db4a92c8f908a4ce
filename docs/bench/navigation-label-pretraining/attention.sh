#!/bin/bash
# Issue 19 N4: N1/N2's recipe (focused label pretraining on target_in_view, target_bearing, then
# PPO with label guidance on them) with the attention fusion instead of FiLM: does an
# instruction query over image tokens generalize to held-out (colour, shape) pairs better?
cd /work/wt-s28
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-s28 OMP_NUM_THREADS=1 MINARI_DATASETS_PATH=/work/runs-v1c/lab/n1/minari
d=/work/runs-v1c/lab/n4
[ -f $d/enc-labels.pt ] || mmrl pretrain --dataset mmrl/n1/all-v1 --agent ppo-attention --env navigation \
   --objectives bc,labels --labels target_in_view,target_bearing --epochs 10 --patience 10 --threads 1 --out $d/enc-labels.pt --log-interval 120 || exit 1
[ -f $d/eval-labels.json ] || mmrl evaluate $d/enc-labels.pt --env navigation --episodes 200 --split train,test --json $d/eval-labels.json
for steps in 500000 1000000; do
  if [ -d $d/run/checkpoints ]; then mmrl train --resume $d/run --steps $steps --quiet || exit 1
  else mmrl train --env navigation --agent ppo-attention --init-from $d/enc-labels.pt --init-policy-head --steps $steps --seed 0 --out $d/run --quiet \
    --label-guidance 1 --set "agent.guidance.labels=[target_in_view,target_bearing]" || exit 1; fi
  [ -f $d/eval-$steps.json ] || mmrl evaluate $d/run --episodes 200 --split train,test --json $d/eval-$steps.json
done
