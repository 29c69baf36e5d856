"""Studies that need training: each compares variants trained at one stated, equal budget. The budget is
a parameter (``iters``), so a GPU user reruns them at full scale:

    python -m ablations.training_studies n_lfb --iters 20000 --device cuda --data ../shared/data/train/T91,...

Declared here: BAM on/off, residual unit (RU / wRU / AWRU), LRFU on/off and the number of LFBs (1 to 4).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

STUDIES = {
    "bam": {"variants": {"awsrn-s": {}, "awsrn-s-bam": {}}, "measures": "PSNR/SSIM, params, Multi-Adds",
            "figure": "fig_study_bam.png"},
    "unit": {"variants": {"awsrn-s-ru": {}, "awsrn-s-wru": {}, "awsrn-s": {}},
             "measures": "PSNR/SSIM, params", "figure": "fig_study_unit.png"},
    "lrfu": {"variants": {"awsrn-s-nolrfu": {}, "awsrn-s": {}}, "measures": "PSNR/SSIM, params",
             "figure": "fig_study_lrfu.png"},
    "n_lfb": {"variants": {f"awsrn-l[n_lfb={n}]": {"n_lfb": n} for n in (1, 2, 3, 4)},
              "measures": "PSNR/SSIM vs params", "figure": "fig_study_n_lfb.png"},
}


def run(study: str, iters: int, data, scale: int = 4, out: str = "runs/studies", device: str = "cpu",
        datasets=("Set5", "Set14"), data_root=None, **train_kw) -> pd.DataFrame:
    """Train each variant of ``study`` for ``iters`` iterations (cosine schedule) and grade it on
    ``datasets``; ``train_kw`` goes to ``TrainConfig`` (batch, patch, seed, ...), equal for every variant."""
    from benchmark.complexity import count_params, model_complexity
    from benchmark.evaluate import evaluate
    from benchmark.registry import create_model
    from benchmark.train import TrainConfig, train

    rows = []
    for label, overrides in STUDIES[study]["variants"].items():
        variant = label.split("[")[0]
        # keyed by variant, scale and budget (not by study): the AWSRN-S baseline that the BAM, unit and
        # LRFU studies share is trained once per budget, and a rerun resumes instead of retraining
        run_dir = (Path(out) / f"x{scale}-{iters}it"
                   / label.replace("[", "-").replace("]", "").replace("=", ""))
        train(TrainConfig(model=variant, scale=scale, data=tuple(data), out=str(run_dir), iters=iters,
                          schedule="cosine", device=device, val_every=iters, ckpt_every=iters,
                          log_every=max(1, iters // 20), overrides=overrides, **train_kw),
              resume=True, progress=False)
        m = create_model(variant, scale=scale, weights=run_dir / "model.safetensors", **overrides)
        res = evaluate(m, list(datasets), [scale], data_root=data_root, progress=False)
        for _, r in res.summary.iterrows():
            rows.append({"study": study, "variant": label, "scale": scale, "iters": iters, "dataset": r.dataset,
                         "psnr": r.psnr, "ssim": r.ssim, "params": count_params(m),
                         "multi_adds_g": model_complexity(m, scale)["multi_adds_g"]})
    return pd.DataFrame(rows)


if __name__ == "__main__":   # the same as `awsrn-bench ablate study ...`
    import sys

    from benchmark.cli import main
    sys.exit(main(["ablate", "study", *sys.argv[1:]]))
