"""Grade every checkpoint under checkpoints/ on the full test sets into results/store, exactly as
`awsrn-bench reproduce` grades them (same call, same store keys), so that reproduce reuses the rows.

    python scripts/eval_checkpoints.py --data-root ../shared/data [--only awsrn-s-x4,...] [--threads 2] [--pruning]

Heavy on a CPU (Urban100 with the M and L models: about an hour on 2 cores for all 13 checkpoints);
a rerun skips every image already in the store. ``--pruning`` also grades the 15 AWMS branch subsets of each
checkpoint (no retraining) on the first two sets, reproduce's branch-pruning step, so that a new checkpoint's
subsets are graded once here instead of inside ``make reproduce``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmark import plugins, report  # noqa: E402
from benchmark.complexity import complexity_table  # noqa: E402
from benchmark.data import resolve_data_root  # noqa: E402
from benchmark.evaluate import evaluate  # noqa: E402
from benchmark.reproduce import FULL_SETS  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--checkpoints", default="checkpoints")
    ap.add_argument("--out", default="results")
    ap.add_argument("--only", default="", help="comma-separated checkpoint labels")
    ap.add_argument("--datasets", default=",".join(FULL_SETS))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pruning", action="store_true", help="also grade the 15 branch subsets on the first two sets")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    root = resolve_data_root(args.data_root)
    cks = report.find_checkpoints(args.checkpoints)
    only = [c for c in args.only.split(",") if c]
    cx = complexity_table(scales=(2, 3, 4, 8)).set_index(["model", "scale"])
    # cheapest first, so that an interrupted run has graded as many checkpoints as possible
    order = sorted(cks, key=lambda c: cx.loc[(report.checkpoint_info(cks[c])["model"],
                                              report.checkpoint_info(cks[c])["scale"]), "multi_adds_g"])
    for ds in args.datasets.split(","):
        for label in order:
            if only and label not in only:
                continue
            info = report.checkpoint_info(cks[label])
            res = evaluate(info["model"], [ds], [info["scale"]], weights=cks[label], data_root=root,
                           store=Path(args.out) / "store", device=args.device, progress=False)
            for _, r in res.summary.iterrows():
                print(f"{label} {r.dataset} x{r.scale}: {r.psnr:.4f} / {r.ssim:.4f} ({r.n_images} images, "
                      f"{res.wall_s:.0f} s)", flush=True)
    if args.pruning:
        branch_pruning = plugins.load("branch-pruning")
        for label in order:
            if only and label not in only:
                continue
            # the call of reproduce's step_ablations, so that its store rows are the ones reproduce reads
            pr = branch_pruning.run(str(cks[label]), report.checkpoint_info(cks[label])["model"],
                                    datasets=tuple(args.datasets.split(",")[:2]), data_root=root,
                                    store=Path(args.out) / "store")
            print(f"{label}: {len(pr)} branch-subset rows", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
