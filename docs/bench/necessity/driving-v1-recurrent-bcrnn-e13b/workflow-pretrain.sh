#!/bin/bash
# Issue 19 E13b: E13 (E12 + 800 overtake episodes) with the label loss weighted 2 and early stopping on it; recurrent pretraining (BC-RNN: extractor + actor LSTM + head on whole episodes,
# the target_lane_offset label read from the LSTM) on E7's data plus overtake episodes, then
# RecurrentPPO from it (--init-policy-head loads the LSTM) with E11's guidance. Resumable.
cd /work/main
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/main OMP_NUM_THREADS=1
export MINARI_DATASETS_PATH=/work/runs-v1c/lab/e7/minari
d=/work/runs-v1c/lab/e13b
steps=${STEPS:-500000}
REC="--agent recurrent-ppo-concat --set agent.extractor.fusion=film --set agent.recurrent.shared_lstm=true --set agent.recurrent.enable_critic_lstm=false"
if [ ! -f $d/enc.pt ]; then
  mmrl pretrain --dataset mmrl/e7/all-v1,mmrl/e5/follow1k-v1,mmrl/e12/overtake-v1,mmrl/e12/overtake-clean-v1,mmrl/e13/overtake-v1 \
    --env driving $REC --objectives bc,labels --labels target_lane_offset --epochs 30 --patience 8 --weight labels=2 --monitor labels \
    --out $d/enc.pt --log-interval 120 || exit 1
fi
[ -f $d/bc-outcomes-overtake-train.json ] || python scripts/car_task_outcomes.py $d/enc.pt --task overtake --episodes 200 --json $d/bc-outcomes-overtake-train.json
[ -f $d/bc-eval.json ] || mmrl evaluate $d/enc.pt --env driving --episodes 200 --split train,test --json $d/bc-eval.json
if [ -d $d/run/checkpoints ]; then mmrl train --resume $d/run --steps $steps --quiet || exit 1
else mmrl train --env driving $REC --init-from $d/enc.pt --init-policy-head --steps $steps --seed 0 --out $d/run --quiet \
  --expert-guidance 1 --label-guidance 1 --set "agent.guidance.labels=[target_lane_offset]" \
  --set agent.guidance.label_input=memory --set agent.guidance.sequences=true || exit 1; fi
python scripts/car_task_outcomes.py $d/run --task overtake --episodes 200 --json $d/outcomes-overtake-train-$steps.json
python scripts/car_task_outcomes.py $d/run --task overtake --episodes 200 --split test --json $d/outcomes-overtake-test-$steps.json
