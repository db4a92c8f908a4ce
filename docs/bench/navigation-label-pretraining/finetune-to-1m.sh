#!/bin/bash
# Issue 19 N2 continued to 1M steps, then the same evaluation.
cd /work/wt-e8
export PATH=/work/main/.venv/bin:$PATH PYTHONPATH=/work/wt-e8 OMP_NUM_THREADS=1
d=/work/runs-v1c/lab/n1
mmrl train --resume $d/run --steps 1000000 --quiet
mmrl evaluate $d/run --episodes 200 --split train,test --json $d/eval-run-1m.json
