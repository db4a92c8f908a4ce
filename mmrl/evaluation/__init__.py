"""Evaluation of trained policies: rollouts with intervals, robustness, videos, off-policy.

* :mod:`mmrl.evaluation.rollouts` — batched evaluation episodes summarized with bootstrap
  and Wilson intervals (``mmrl evaluate``);
* :mod:`mmrl.evaluation.robustness` — modality ablations and sensor noise against clean runs;
* :mod:`mmrl.evaluation.reference` — the scripted expert and random actions as reference
  policies evaluated by the same engine;
* :mod:`mmrl.evaluation.video` — videos of camera, lidar, instruction, action and reward;
* :mod:`mmrl.evaluation.encoding` — browser-playable files: H.264 MP4, VP9 WebM, GIF;
* :mod:`mmrl.evaluation.offline` — agreement, log-likelihood and Fitted Q Evaluation on logged
  Minari datasets (``mmrl evaluate-offline``);
* :mod:`mmrl.evaluation.fqe_selection` — FQE's Q-network regularizer chosen per policy by
  held-out Bellman error (``--fqe-select``);
* :mod:`mmrl.evaluation.stats` — IQM, percentile bootstrap, Wilson and Newcombe intervals;
* :mod:`mmrl.evaluation.report` — terminal tables, JSON and CSV;
* :mod:`mmrl.evaluation.plots` — learning curves of run folders (``mmrl plot``).

Submodules import torch and SB3; this package module imports nothing so that ``mmrl --help``
stays fast.
"""
