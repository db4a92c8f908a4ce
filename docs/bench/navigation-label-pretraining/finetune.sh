#!/bin/bash
# Issue 19 N2: PPO fine-tuning on Navigation-v1 from the label-pretrained FiLM encoder (N1),
# with online label guidance on the same labels; 500k steps.
cd /work/wt-e8
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-e8 OMP_NUM_THREADS=1
d=/work/runs-v1c/lab/n1
if [ -d $d/run/checkpoints ]; then mmrl train --resume $d/run --steps 500000 --quiet
else mmrl train --env navigation --agent ppo-film --init-from $d/enc-labels.pt --init-policy-head --steps 500000 --seed 0 --out $d/run --quiet \
  --label-guidance 1 --set "agent.guidance.labels=[target_in_view,target_bearing]"; fi
mmrl evaluate $d/run --episodes 200 --split train,test --json $d/eval-run.json
