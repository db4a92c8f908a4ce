#!/bin/bash
# E12 on to 1M steps, then overtake outcomes and modality necessity (500 episodes).
cd /work/main
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/main OMP_NUM_THREADS=1
d=/work/runs-v1c/lab/e12
while pgrep -f "lab/e12/run.sh" >/dev/null || pgrep -f "e12/run " >/dev/null || [ ! -f $d/outcomes-overtake-test-500000.json ]; do sleep 20; done
STEPS=1000000 $d/run.sh || exit 1
python scripts/modality_necessity.py $d/run --env driving --episodes 500 --threads 1 --out $d/necessity-1m
