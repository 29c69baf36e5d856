"""Ablation plugins: found by name, imported only when one is asked for.

A plugin is a module with ``NAME``, ``HELP``, ``add_arguments(parser)`` (its CLI flags), ``main(args) -> int``
(what ``awsrn-bench ablate NAME ...`` runs), ``run(...)`` (the study, returning a DataFrame) and
``plot(df, out)`` (its figure). The three built in live in ``ablations/``; a package adds its own under
the entry-point group ``awsrn_bench.ablations`` (``name = "module.path"``). Imports run one way: plugins
use the core (``benchmark.argtypes``, ``benchmark.results``, ...), the CLI finds plugins here, and nothing
in ``benchmark`` imports a study until its name is given.
"""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

GROUP = "awsrn_bench.ablations"
BUILTIN = {"awms-weights": "ablations.awms_weights", "branch-pruning": "ablations.branch_pruning",
           "study": "ablations.training_studies"}


def available() -> dict[str, str]:
    """Plugin name -> module path, without importing any of them."""
    found = dict(BUILTIN)
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def load(name: str):
    plugins = available()
    if name not in plugins:
        raise KeyError(f"unknown ablation {name!r} (available: {', '.join(sorted(plugins))})")
    return importlib.import_module(plugins[name])


def run_cli(name: str, argv: list[str], prog: str | None = None) -> int:
    """Parse ``argv`` with the plugin's own flags and run it (``awsrn-bench ablate NAME ...`` and
    ``python -m ablations.<module> ...`` both come here)."""
    from .argtypes import Parser, run_reporting
    module = load(name)
    parser = Parser(prog=prog or f"awsrn-bench ablate {name}", description=module.HELP)
    module.add_arguments(parser)
    return run_reporting(parser.prog, module.main, parser.parse_args(argv))
