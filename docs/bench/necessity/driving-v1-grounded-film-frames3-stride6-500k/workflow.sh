#!/bin/bash
# Issue 19 E8: the E7 grounding recipe with camera memory (3 frames, 6 steps apart) and
# named-car data for both car tasks (follow, overtake), to test whether memory fixes overtake.
cd /work/wt-e8
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-e8 OMP_NUM_THREADS=1 MINARI_DATASETS_PATH=/work/runs-v1c/lab/e8/minari
d=/work/runs-v1c/lab/e8
[ -d $d/minari/mmrl/e8/all-v1 ] || mmrl collect --env $d/driving-mem.yaml --policy expert --episodes 1000 --epsilon 0.1 --dataset-id mmrl/e8/all-v1 --quiet || exit 1
[ -d $d/minari/mmrl/e8/cars-v1 ] || mmrl collect --env $d/driving-mem-cars.yaml --policy expert --episodes 1000 --epsilon 0.3 --dataset-id mmrl/e8/cars-v1 --quiet || exit 1
[ -f $d/enc.pt ] || mmrl pretrain --dataset mmrl/e8/all-v1,mmrl/e8/cars-v1 --agent ppo-film --env $d/driving-mem.yaml \
   --objectives bc,labels --labels target_lane_offset --epochs 20 --patience 20 --threads 1 --out $d/enc.pt --log-interval 120 || exit 1
if [ -d $d/run/checkpoints ]; then mmrl train --resume $d/run --steps 500000 --quiet
else mmrl train --env $d/driving-mem.yaml --agent ppo-film --init-from $d/enc.pt --init-policy-head --steps 500000 --seed 0 --out $d/run --quiet \
  --expert-guidance 1 --label-guidance 1 --set "agent.guidance.labels=[target_lane_offset]"; fi
