"""``mmrl tune``: Optuna hyperparameter search over ``mmrl train`` runs.

:func:`tune` runs or resumes a study (:mod:`mmrl.tune.study`) over a search space
(:mod:`mmrl.tune.space`) and writes its report (:mod:`mmrl.tune.report`). Optuna is an
optional extra: ``pip install "mmrl[tune]"``.
"""

from mmrl.tune.report import TuneResult
from mmrl.tune.space import DEFAULT_SPACE_YAML, ParamSpec, load_space
from mmrl.tune.study import tune

__all__ = ["DEFAULT_SPACE_YAML", "ParamSpec", "TuneResult", "load_space", "tune"]
