"""scripts/bench_ope.py with a lower confidence bound at FQE's readout only (an experiment).

FQE fits as usual (every target bootstraps from the ensemble's mean); only the values read
from the fitted Q-network afterwards (the initial-state values FQE reports, and the
``Q``/``V`` that DR and CDR correct) are the ensemble's ``mean_k Q_k - BETA * std_k Q_k``.
Unlike ``pessimistic_values.py`` (the bound in every target, which compounds over the
bootstrapped steps), the penalty is applied once, where the heads disagree at the end.

    BETA=1 python docs/bench/ope-horizon/readout_lcb.py --envs driving --datasets mixed \
        --fqe-ensemble 5 --fqe-horizon auto --out OUT

Run from the repository root.
"""

import os
import sys
from pathlib import Path

import mmrl.evaluation.qnetwork as qn

BETA = float(os.environ["BETA"])
_init, _forward = qn.QNetwork.__init__, qn.QNetwork.forward
# The networks FQE builds; the frozen copies it bootstraps from are deep copies, which do
# not run __init__, so they keep the mean.
FITTED: set[int] = set()


def init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    FITTED.add(id(self))


def readout_forward(self, states, actions=None, per_member=False):
    """QNetwork.forward whose value, on the fitted network only, is ``mean - BETA * std``."""
    q = _forward(self, states, actions, per_member=True)
    if per_member:
        return q
    if id(self) in FITTED and q.shape[0] > 1:
        return q.mean(0) - BETA * q.std(0)
    return q.mean(0)


if __name__ == "__main__":
    qn.QNetwork.__init__ = init
    qn.QNetwork.forward = readout_forward
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    import bench_ope

    bench_ope.main(sys.argv[1:])
