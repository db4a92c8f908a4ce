#!/usr/bin/env bash
# Issue 19's "from scratch" figure: the default recipe (ppo-concat, no pretraining) for 2M env
# steps on each v1 env, one seed, then the final model on 200 fresh held-out episodes per
# split and scripts/modality_necessity.py at 500 episodes. One core per env (run the two envs
# in parallel); ~35 min each on an idle AMD EPYC core. Run from the repository root.
#   bash docs/bench/scratch-v1/run.sh [OUT]
set -euo pipefail
out=${1:-runs/scratch-v1}
export OMP_NUM_THREADS=1
for env in driving navigation; do
  (
    python scripts/learning_curves.py --envs $env --agent ppo-concat --seeds 1 --steps 2000000 \
        --set eval_freq=100000 --final-episodes 200 --out "$out"
    python scripts/modality_necessity.py "$out/$env-s0" --episodes 500 --threads 1 \
        --out "$out/necessity-$env"
  ) &
done
wait
# both envs in one figure (each parallel run above drew only its own env's curves)
python scripts/learning_curves.py --envs driving,navigation --agent ppo-concat --seeds 1 \
    --steps 2000000 --plot-only --final-episodes 200 --out "$out"
