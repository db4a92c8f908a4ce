#!/usr/bin/env bash
# GPU check: install mmrl keeping the machine's CUDA torch, run the CUDA tests, measure speed.
# Exits non-zero when the CUDA tests fail (the measurement still runs and prints).
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA'; print(torch.cuda.get_device_name(0))" || exit 1
pip install -q -e ".[dev]" || exit 1
pytest -q -m gpu -p no:cacheprovider tests
tests_status=$?
python scripts/gpu_check.py --steps "${STEPS:-16384}" || exit 1
# Pretraining throughput (attention recipe, batch 256) on CPU and GPU (issue 6).
python scripts/bench_pretrain.py --envs driving --n-envs 64 --episodes 64 --updates 30 \
    --threads 1 --devices cpu,cuda || exit 1
exit $tests_status
