"""How much time evaluate() adds to the model's own forward passes (issue: "the suite must not be what
takes the time"). AWSRN-S x2 (random init: the cost does not depend on the weights) on Set5+Set14+B100,
CPU, once with an empty LR cache and once warm. Writes results/eval_overhead.csv.

    .venv/bin/python scripts/eval_overhead.py --data-root ../shared/data --threads 2
"""
import argparse
import tempfile

import pandas as pd
import torch

from benchmark.evaluate import evaluate
from benchmark.results import environment, write_table

p = argparse.ArgumentParser()
p.add_argument("--data-root", required=True)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--out", default="results/eval_overhead.csv")
args = p.parse_args()
torch.set_num_threads(args.threads)
rows = []
with tempfile.TemporaryDirectory() as cache:
    torch.manual_seed(0)
    for state in ("cold", "warm"):
        res = evaluate("awsrn-s", ["Set5", "Set14", "B100"], [2], data_root=args.data_root, cache_dir=cache,
                       progress=False)
        fwd = res.images["forward_s"].sum()
        rows.append({"model": "awsrn-s", "scale": 2, "datasets": "Set5+Set14+B100", "lr_cache": state,
                     "n_images": len(res.images), "wall_s": res.wall_s, "forward_s": fwd,
                     "wall_over_forward": res.wall_s / fwd, **environment("cpu")})
df = pd.DataFrame(rows)
write_table(df, args.out)
print(df[["lr_cache", "n_images", "wall_s", "forward_s", "wall_over_forward", "threads"]].to_string(index=False))
