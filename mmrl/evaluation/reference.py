"""Reference policies for evaluation tables: the scripted expert and uniform random actions.

They live in :mod:`mmrl.policies` (``load_policy("expert")``, ``load_policy("random")``), as
:class:`~mmrl.policies.ReferencePolicy`, with every other kind of policy; this module keeps
the names it had.
"""

from __future__ import annotations

from mmrl.policies import REFERENCE_POLICIES, ReferencePolicy

__all__ = ["REFERENCE_POLICIES", "ReferencePolicy"]
