"""Ablation studies, one plugin module each (see ``benchmark.plugins``): ``awms_weights`` (awms-weights),
``branch_pruning`` (pruning) and ``training_studies`` (study). Each declares ``NAME``, ``HELP``, ``run(...)``
returning a tidy DataFrame, ``plot(df, out)`` drawing its figure, and ``add_arguments``/``main`` for its CLI.
Modules are imported on demand, so that ``python -m ablations.<module>`` does not import itself twice."""
import importlib


def __getattr__(name: str):
    if name in ("awms_weights", "branch_pruning", "training_studies"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
