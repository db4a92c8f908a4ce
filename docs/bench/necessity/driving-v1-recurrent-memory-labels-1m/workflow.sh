#!/bin/bash
# Issue 19 E10 continued to 1M steps (resumable), then the same evaluations.
cd /work/wt-e10
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-e10 OMP_NUM_THREADS=1
d=/work/runs-v1c/lab/e10
mmrl train --resume $d/run --steps 1000000 --quiet || exit 1
cp /work/main/scripts/colour_grounding.py scripts/colour_grounding.py 2>/dev/null
python scripts/car_task_outcomes.py $d/run --task overtake --episodes 200 --json $d/outcomes-overtake-train-1m.json
python scripts/car_task_outcomes.py $d/run --task overtake --episodes 200 --split test --json $d/outcomes-overtake-test-1m.json
python scripts/colour_grounding.py $d/run --envs 64 --steps 200 --json $d/grounding-1m.json
python scripts/modality_necessity.py $d/run --env driving --episodes 500 --threads 1 --out $d/necessity-1m
