#!/bin/bash
# Issue 19 E12f: E12's fine-tuning (same BC-RNN checkpoint, same guidance) with the pretrained
# extractor and LSTM updated at a tenth of the learning rate (--encoder-lr-scale 0.1), so the
# memory pretraining put into the LSTM fades slower. Resumable.
cd /work/wt-e12f
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-e12f OMP_NUM_THREADS=1
d=/work/runs-v1c/lab/e12f
steps=${STEPS:-500000}
REC="--agent recurrent-ppo-concat --set agent.extractor.fusion=film --set agent.recurrent.shared_lstm=true --set agent.recurrent.enable_critic_lstm=false"
if [ -d $d/run/checkpoints ]; then mmrl train --resume $d/run --steps $steps --quiet || exit 1
else mmrl train --env driving $REC --init-from /work/runs-v1c/lab/e12/enc.pt --init-policy-head --encoder-lr-scale 0.1 \
  --steps $steps --seed 0 --out $d/run --quiet \
  --expert-guidance 1 --label-guidance 1 --set "agent.guidance.labels=[target_lane_offset]" \
  --set agent.guidance.label_input=memory --set agent.guidance.sequences=true || exit 1; fi
python scripts/car_task_outcomes.py $d/run --task overtake --episodes 200 --json $d/outcomes-overtake-train-$steps.json
python scripts/car_task_outcomes.py $d/run --task overtake --episodes 200 --split test --json $d/outcomes-overtake-test-$steps.json
