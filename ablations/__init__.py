"""Ablation studies, one module each. Every module declares ``NAME``, ``VARIANTS`` (what it compares),
``MEASURES`` (what it reports), ``FIGURE`` (the file its plot goes to) and a ``run(...)`` that returns a
tidy DataFrame; ``benchmark.report`` draws the figure from the saved table."""
import importlib

__all__ = ["STUDIES", "TRAINING_STUDIES"]


def __getattr__(name: str):
    # imported lazily, so that `python -m ablations.<study>` does not import its own module twice
    # (runpy warns when the package has already imported the module it is asked to run)
    if name == "STUDIES":
        mods = [importlib.import_module(f"{__name__}.{m}") for m in ("awms_weights", "branch_pruning")]
        return {m.NAME: m for m in mods}
    if name == "TRAINING_STUDIES":
        return importlib.import_module(f"{__name__}.training_studies").STUDIES
    if name in ("awms_weights", "branch_pruning", "training_studies"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
