#!/usr/bin/env bash
# The "quick" mmrl bench protocol: every fusion on driving and navigation, 3 seeds each.
#
#   scripts/bench_quick.sh [OUT]          # the recorded protocol (default OUT: bench/quick)
#   scripts/bench_quick.sh --mini [OUT]   # the same pipeline on a tiny grid, to check
#                                         # that everything runs end to end (24 cells of
#                                         # 256 steps: ~5 min on 2 idle cores)
#
# Quick protocol: 2 envs x 6 fusions x 3 seeds = 36 cells of 49,152 env steps (24 PPO
# rollouts of 16 envs x 128 steps), evaluated on held-out seeds every 12,288 steps and at
# the end with 16 episodes per instruction split, then 16 episodes with each of the 4
# modalities removed. Measured cost (scripts/bench_cost.py, 1 torch thread): ~1.7 CPU s
# per 1k training steps and ~0.14 CPU s per evaluation episode, so ~2 CPU-min per cell;
# measured 27.5 min for the 36 cells on 2 idle cores with 2 workers (BENCHMARKS.md).
#
# Full protocol (issue 8), same command with the defaults:
#   mmrl bench --envs driving,navigation --fusions all --seeds 3 --steps 300000 \
#       --out bench/full --workers N
# ~9.5 CPU-min per cell (eval_freq 50000, 32 episodes), 36 cells = ~5.7 CPU-hours: ~2.9 h
# on 2 cores, ~25 min on 16. Add babyai-gotoredball to --envs with pip install "mmrl[minigrid]".
#
# Interrupt at any time and rerun the same command: finished cells are skipped.
set -euo pipefail

MMRL=${MMRL:-mmrl}
if [[ "${1:-}" == "--mini" ]]; then
    shift
    OUT=${1:-bench/quick-mini}
    # Same envs, all fusions, 2 seeds, but a few hundred steps and 2-episode evaluations.
    exec "$MMRL" bench --envs driving,navigation --fusions all --seeds 2 --steps 256 \
        --set env.n_envs=4 --set agent.ppo.n_steps=32 --set agent.ppo.batch_size=64 \
        --set agent.ppo.n_epochs=1 --set eval_freq=256 --set eval_episodes=2 \
        --backend local --workers 2 --out "$OUT"
fi

OUT=${1:-bench/quick}
exec "$MMRL" bench --envs driving,navigation --fusions all --seeds 3 --steps 49152 \
    --set eval_freq=12288 --set eval_episodes=16 \
    --backend local --workers 2 --out "$OUT"
