#!/bin/bash
# Issue 19 N3: N2 with the label-pretrained extractor slowed to a tenth of the learning rate
# during PPO fine-tuning (does the held-out-instruction gap that returned at 1M stay closed?).
cd /work/wt-s28
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-s28 OMP_NUM_THREADS=1
d=/work/runs-v1c/lab/n3
enc=/work/runs-v1c/lab/n1/enc-labels.pt
for steps in 500000 1000000; do
  if [ -d $d/run/checkpoints ]; then mmrl train --resume $d/run --steps $steps --quiet || exit 1
  else mmrl train --env navigation --agent ppo-film --init-from $enc --init-policy-head --steps $steps --seed 0 --out $d/run --quiet \
    --encoder-lr-scale 0.1 --label-guidance 1 --set "agent.guidance.labels=[target_in_view,target_bearing]" || exit 1; fi
  [ -f $d/eval-$steps.json ] || mmrl evaluate $d/run --episodes 200 --split train,test --json $d/eval-$steps.json
done
