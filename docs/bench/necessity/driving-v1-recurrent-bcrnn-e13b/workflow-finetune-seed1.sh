#!/bin/bash
# Issue 19 E13b fine-tuning, seed 1: RecurrentPPO from E13b's BC-RNN checkpoint (extractor, LSTM and
# head), E11's guidance, the pretrained extractor and LSTM at a tenth of the learning rate
# (as E12f). Resumable.
cd /work/wt-e12f
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-e12f OMP_NUM_THREADS=1
d=/work/runs-v1c/lab/e13b
steps=${STEPS:-500000}
REC="--agent recurrent-ppo-concat --set agent.extractor.fusion=film --set agent.recurrent.shared_lstm=true --set agent.recurrent.enable_critic_lstm=false"
if [ -d $d/run-s1/checkpoints ]; then mmrl train --resume $d/run-s1 --steps $steps --quiet || exit 1
else mmrl train --env driving $REC --init-from $d/enc.pt --init-policy-head --encoder-lr-scale 0.1 \
  --steps $steps --seed 1 --out $d/run-s1 --quiet \
  --expert-guidance 1 --label-guidance 1 --set "agent.guidance.labels=[target_lane_offset]" \
  --set agent.guidance.label_input=memory --set agent.guidance.sequences=true || exit 1; fi
python scripts/car_task_outcomes.py $d/run-s1 --task overtake --episodes 200 --json $d/outcomes-s1-overtake-train-$steps.json
python scripts/car_task_outcomes.py $d/run-s1 --task overtake --episodes 200 --split test --json $d/outcomes-s1-overtake-test-$steps.json
