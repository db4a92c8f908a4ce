#!/bin/bash
# Issue 19 E11: E10 (RecurrentPPO, shared LSTM, E7 encoder, expert + label guidance with the
# labels read from the LSTM) with the guidance pass over whole rollouts
# (agent.guidance.sequences=true: backpropagation through the LSTM). STEPS (default 200000)
# env steps, resumable; then the overtake outcomes.
cd /work/wt-e11
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-e11 OMP_NUM_THREADS=1
d=/work/runs-v1c/lab/e11
steps=${STEPS:-200000}
if [ -d $d/run/checkpoints ]; then mmrl train --resume $d/run --steps $steps --quiet || exit 1
else mmrl train --env driving --agent recurrent-ppo-concat --set agent.extractor.fusion=film \
  --set agent.recurrent.shared_lstm=true --set agent.recurrent.enable_critic_lstm=false \
  --init-from /work/runs-v1c/lab/e7/enc.pt --steps $steps --seed 0 --out $d/run --quiet \
  --expert-guidance 1 --label-guidance 1 --set "agent.guidance.labels=[target_lane_offset]" \
  --set agent.guidance.label_input=memory --set agent.guidance.sequences=true || exit 1; fi
python scripts/car_task_outcomes.py $d/run --task overtake --episodes 200 --json $d/outcomes-overtake-train-$steps.json
python scripts/car_task_outcomes.py $d/run --task overtake --episodes 200 --split test --json $d/outcomes-overtake-test-$steps.json
