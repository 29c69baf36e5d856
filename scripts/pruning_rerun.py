"""The banked fine-tunes of a checkpoint's branch-pruning study beside the table's rows of the same subsets
(``ablations.branch_pruning.bank_vs_table``): where a fine-tune was run again (another session, the same recipe
and seed, another ``finetune_sha256``), how far the rerun lands from the committed row.

    python scripts/pruning_rerun.py CK [--results results] [--format table|csv|md]

Exit 2 with one line when the results folder lacks the fine-tuned table or has no banked fine-tune of CK that
the table also has.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ablations.branch_pruning import bank_vs_table  # noqa: E402
from benchmark.results import emit  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="its label in the table, e.g. awsrn-m-x2")
    ap.add_argument("--results", default="results")
    ap.add_argument("--format", default="table", choices=["table", "csv", "md"])
    args = ap.parse_args(argv)
    table = Path(args.results) / "branch_pruning_finetune.csv"
    if not table.is_file():
        print(f"pruning_rerun: {table}: no such file (run the fine-tuned study first)", file=sys.stderr)
        return 2
    df = bank_vs_table(args.results, args.checkpoint)
    if df.empty:
        print(f"pruning_rerun: {args.checkpoint}: {Path(args.results) / 'store/prune'} has no banked fine-tune "
              f"of a subset that {table} also has", file=sys.stderr)
        return 2
    emit(df, args.format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
