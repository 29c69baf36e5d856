"""One-off: give stored evaluation rows written before rows carried their image's content
(``image_sha256``) the sha256 of the file they were graded on.

    python scripts/store_backfill_sha.py --data-root ../shared/data [--store results/store]

Only correct when DATA_ROOT holds exactly the images the rows were graded on (here: the rows of
results/store, all graded on ../shared/data in the session that added content keys; its MANIFEST.tsv
pins every file's sha256). A row whose image is absent from DATA_ROOT is dropped, so it is regraded.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmark.data import image_sha256, list_images  # noqa: E402
from benchmark.results import write_table  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--store", default="results/store")
    args = ap.parse_args(argv)
    shas: dict[str, dict[str, str]] = {}
    changed = 0
    for f in sorted((Path(args.store) / "eval").glob("*.csv")):
        df = pd.read_csv(f)
        if "image_sha256" in df and df["image_sha256"].notna().all():
            continue
        ds = str(df["dataset"].iloc[0])
        if ds not in shas:
            shas[ds] = {r.name: image_sha256(r) for r in list_images(ds, args.data_root)}
        df["image"] = df["image"].astype(str)
        df["image_sha256"] = df["image"].map(shas[ds])
        kept = df.dropna(subset=["image_sha256"])
        write_table(kept, f)
        changed += 1
        print(f"{f.name}: {len(kept)} rows keyed, {len(df) - len(kept)} dropped")
    print(f"{changed} run files updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
