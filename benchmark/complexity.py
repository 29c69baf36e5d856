"""Parameters and Multi-Adds in the AWSRN paper's conventions.

* Params: every parameter, weight-norm ``g`` and ``v`` and the scalar weights included.
* Multi-Adds: multiply-accumulates of the convolutions (fvcore counts one FMA as one) for a
  1280x720 HR output, i.e. MACs for an LR input of 1280*720/s^2 pixels, fractional for x3.

fvcore traces the model on two small LR sizes; conv MACs are ``a * pixels + b`` (``b`` from BAM's
1x1 convs on the pooled map), so both are solved exactly and evaluated at any LR size.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

HR_720P = 1280 * 720
NTIRE_LR = (256, 256)
_PROBES = ((16, 16), (24, 32))


@dataclass(frozen=True)
class ConvCost:
    """Conv MACs of a module as ``per_lr_pixel * lr_pixels + constant``."""
    per_lr_pixel: float
    constant: float

    def at(self, lr_pixels: float) -> float:
        return self.per_lr_pixel * lr_pixels + self.constant


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv_macs_by_module(model: nn.Module, h: int, w: int) -> dict[str, float]:
    from fvcore.nn import FlopCountAnalysis

    x = torch.rand(1, 3, h, w, device=next(model.parameters()).device)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        fca = FlopCountAnalysis(model, x)
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by = fca.by_module_and_operator()
    return {mod: float(ops.get("conv", 0)) for mod, ops in by.items()}


def _structure(model: nn.Module) -> tuple:
    """What conv MACs depend on: the model's class and config, every module's type and every tensor's shape
    (the weights' values do not matter)."""
    cfg = model.cfg.to_dict() if hasattr(getattr(model, "cfg", None), "to_dict") else None
    return (type(model).__qualname__, repr(sorted(cfg.items())) if cfg else None,
            tuple((n, type(m).__name__) for n, m in model.named_modules()),
            tuple((n, tuple(t.shape)) for n, t in model.state_dict().items()))


_COSTS: dict[tuple, dict[str, "ConvCost"]] = {}


def conv_costs(model: nn.Module) -> dict[str, ConvCost]:
    """Per-module (fvcore module names, '' = whole model) conv MACs as a linear function of LR pixels.
    Memoised by structure: fvcore traces each model twice (about a second), and reproduce counts the same
    16 models for the table, the breakdown and the pruning ablation."""
    key = _structure(model)
    if key not in _COSTS:
        _COSTS[key] = _count_conv_costs(model)
    return dict(_COSTS[key])


def _count_conv_costs(model: nn.Module) -> dict[str, ConvCost]:
    model = model.eval()
    # a model that runs on the upscaled image says so with smaller probes (models/classic.py)
    (h1, w1), (h2, w2) = getattr(model, "complexity_probes", _PROBES)
    m1, m2 = _conv_macs_by_module(model, h1, w1), _conv_macs_by_module(model, h2, w2)
    p1, p2 = h1 * w1, h2 * w2
    out = {}
    for name in m1:
        a = (m2[name] - m1[name]) / (p2 - p1)
        out[name] = ConvCost(a, m1[name] - a * p1)
    return out


def lr_pixels_720p(scale: int) -> float:
    return HR_720P / scale ** 2


def model_complexity(model: nn.Module, scale: int) -> dict:
    """params, multi_adds_g (720p-HR convention) and multi_adds_ntire_g (3x256x256 LR input)."""
    total = conv_costs(model)[""]
    return {
        "params": count_params(model),
        "multi_adds_g": total.at(lr_pixels_720p(scale)) / 1e9,
        "multi_adds_ntire_g": total.at(NTIRE_LR[0] * NTIRE_LR[1]) / 1e9,
    }


def breakdown(model: nn.Module, scale: int) -> pd.DataFrame:
    """Params and Multi-Adds per part: head, each LFB, BAM, each AWMS branch, skip."""
    costs = conv_costs(model)
    parts = ["head"] + [f"body.{i}" for i in range(len(model.body))]
    if getattr(model, "attention", None) is not None:
        parts.append("attention")
    branches = {f"tail.{model.tail.conv_name(k)}": k for k in model.tail.kernels}
    parts += list(branches) + ["skip"]
    named = dict(model.named_modules())
    rows = []
    for part in parts:
        params = count_params(named[part])
        if part in branches:                # the branch's lambda belongs to the branch
            params += count_params(model.tail.lam(branches[part]))
        c = costs.get(part, ConvCost(0.0, 0.0))
        rows.append({"module": part, "params": params,
                     "multi_adds_g": c.at(lr_pixels_720p(scale)) / 1e9,
                     "multi_adds_ntire_g": c.at(NTIRE_LR[0] * NTIRE_LR[1]) / 1e9})
    return pd.DataFrame(rows)


def awms_subset_multi_adds(full: nn.Module, scale: int) -> dict[tuple[int, ...], float]:
    """Multi-Adds (G, 720p convention) of every non-empty AWMS subset of ``full``, from one fvcore count:
    the branches are independent convolutions, so a pruned model costs the full one minus the removed
    branches (a test checks this against counting each pruned model)."""
    from itertools import combinations
    bd = breakdown(full, scale).set_index("module")
    total = float(bd.multi_adds_g.sum())
    kernels = full.tail.kernels
    branch = {k: float(bd.loc[f"tail.{full.tail.conv_name(k)}", "multi_adds_g"]) for k in kernels}
    return {sub: total - sum(branch[k] for k in kernels if k not in sub)
            for r in range(1, len(kernels) + 1) for sub in combinations(kernels, r)}


DEFAULT_VARIANTS = ("awsrn-s", "awsrn-sd", "awsrn-m", "awsrn-l")


def _params_k_diff(params: int, paper_k: int) -> int:
    """Difference in the paper's print precision (1K). The paper mostly rounds (476,757 -> 477K) but
    truncates AWSRN-M x2 (1,063,742 -> 1,063K), so either reading of our count is a match."""
    ours_k = params / 1e3
    if paper_k in (int(ours_k), round(ours_k)):
        return 0
    return round(ours_k) - paper_k


def _multi_adds_g_diff(ours_g: float, paper_g: float) -> float:
    """Difference in the paper's print precision: 0.1G, but 1G for DRCN's five-digit 17974G."""
    digits = 0 if paper_g >= 10_000 else 1
    return round(round(ours_g, digits) - paper_g, digits)


def count_conv_weights(model: nn.Module) -> int:
    """The weights of the convolutions alone (no biases, norms, scalars): how the table counted its older methods."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def complexity_table(pattern: str | None = None, scales=(2, 3, 4, 8)) -> pd.DataFrame:
    """One row per (variant, scale): ours, the paper's value, and the difference of the rounded values
    (params to 1K, Multi-Adds to 0.1G, as the paper prints them)."""
    from .registry import create_model, get_variant, list_variants

    names = list(DEFAULT_VARIANTS) if pattern is None else [n for n in list_variants(pattern) if n != "bicubic"]
    if not names:
        raise ValueError(f"no variant matches {pattern!r} (see `awsrn-bench list`)")
    rows = []
    for name in names:
        variant = get_variant(name)
        for s in (s for s in scales if s in variant.scales):      # a peer runs at its own scales only
            model = create_model(name, scale=s)
            row = {"model": variant.name, "scale": s, **model_complexity(model, s)}
            paper = variant.paper(s)
            row["paper_params_k"] = paper["params_k"] if paper else None
            row["paper_multi_adds_g"] = paper["multi_adds_g"] if paper else None
            row["params_k_diff"] = _params_k_diff(row["params"], paper["params_k"]) if paper else None
            row["multi_adds_g_diff"] = _multi_adds_g_diff(row["multi_adds_g"], paper["multi_adds_g"]) if paper else None
            rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("paper_params_k", "params_k_diff"):
        df[col] = df[col].astype("Int64")
    return df


def peers_complexity_table(names, scales=(2, 3, 4, 8)) -> pd.DataFrame:
    """``complexity_table`` rows of peers, with the conv weights alone (``params_conv_weights``, its difference to
    the paper in ``conv_weights_k_diff``) and, in ``paper_counting``, how the table counted a method where that is
    not this suite's convention (``models.classic.PAPER_COUNTING``; tests/test_classic.py checks each statement)."""
    from .models.classic import PAPER_COUNTING
    from .registry import create_model

    df = pd.concat([complexity_table(n, scales=scales) for n in names], ignore_index=True)
    weights = [count_conv_weights(create_model(m, scale=s)) for m, s in zip(df.model, df.scale)]
    df.insert(df.columns.get_loc("params") + 1, "params_conv_weights", weights)
    df["conv_weights_k_diff"] = pd.array([_params_k_diff(w, k) if pd.notna(k) else None
                                          for w, k in zip(weights, df.paper_params_k)], dtype="Int64")
    df["paper_counting"] = [PAPER_COUNTING.get(m, "") for m in df.model]
    return df
