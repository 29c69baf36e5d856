"""Ablation studies, one module each. Every module declares ``NAME``, ``VARIANTS`` (what it compares),
``MEASURES`` (what it reports), ``FIGURE`` (the file its plot goes to) and a ``run(...)`` that returns a
tidy DataFrame; ``benchmark.report`` draws the figure from the saved table."""
from . import awms_weights, branch_pruning, training_studies

STUDIES = {m.NAME: m for m in (awms_weights, branch_pruning)}
TRAINING_STUDIES = training_studies.STUDIES
__all__ = ["STUDIES", "TRAINING_STUDIES"]
