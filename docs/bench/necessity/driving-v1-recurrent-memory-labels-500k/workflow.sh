#!/bin/bash
# Issue 19 E10: E9 (RecurrentPPO, shared LSTM, the E7 encoder, expert + label guidance) with the
# label head on the LSTM output (agent.guidance.label_input=memory): the lane of the car just
# passed must be remembered to be predicted, which trains the LSTM to keep it. 500k steps.
cd /work/wt-e10
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-e10 OMP_NUM_THREADS=1
d=/work/runs-v1c/lab/e10
if [ -d $d/run/checkpoints ]; then mmrl train --resume $d/run --steps 500000 --quiet || exit 1
else mmrl train --env driving --agent recurrent-ppo-concat --set agent.extractor.fusion=film \
  --set agent.recurrent.shared_lstm=true --set agent.recurrent.enable_critic_lstm=false \
  --init-from /work/runs-v1c/lab/e7/enc.pt --steps 500000 --seed 0 --out $d/run --quiet \
  --expert-guidance 1 --label-guidance 1 --set "agent.guidance.labels=[target_lane_offset]" --set agent.guidance.label_input=memory || exit 1; fi
python scripts/car_task_outcomes.py $d/run --task overtake --episodes 200 --json $d/outcomes-overtake-train.json
python scripts/car_task_outcomes.py $d/run --task overtake --episodes 200 --split test --json $d/outcomes-overtake-test.json
python scripts/colour_grounding.py $d/run --envs 64 --steps 200 --json $d/grounding-500k.json
python scripts/modality_necessity.py $d/run --env driving --episodes 500 --threads 1 --out $d/necessity-500k
