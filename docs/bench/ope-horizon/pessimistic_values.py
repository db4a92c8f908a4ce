"""scripts/bench_ope.py with pessimistic FQE values (an experiment; not adopted, BENCHMARKS.md).

Every ``V(s) = E_pi Q(s, .)`` that FQE bootstraps from and reports uses the ensemble's lower
confidence bound ``mean_k Q_k - BETA * std_k Q_k`` instead of its mean:

    BETA=1 python docs/bench/ope-horizon/pessimistic_values.py --envs driving \
        --datasets mixed --fqe-ensemble 5 --fqe-horizon auto --out OUT
"""

import os
import sys
from pathlib import Path

import mmrl.evaluation.qnetwork as qn

BETA = float(os.environ["BETA"])
_forward = qn.QNetwork.forward


def pessimistic_forward(self, states, actions=None, per_member=False):
    """QNetwork.forward whose ensemble value is ``mean - BETA * std`` over the heads."""
    q = _forward(self, states, actions, per_member=True)
    if per_member:
        return q
    return q.mean(0) - BETA * q.std(0) if q.shape[0] > 1 else q.mean(0)


if __name__ == "__main__":
    qn.QNetwork.forward = pessimistic_forward
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    import bench_ope

    bench_ope.main(sys.argv[1:])
