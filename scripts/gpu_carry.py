"""Stage the working tree for a device call, check that it fits, and put it back afterwards.

A device call carries the working tree (tracked files and untracked ones git does not ignore) plus the `carry`
paths, 64 MiB in all (../.library/device/README.md). The training images alone are 40.1 MiB and the 13
checkpoints 32.8 MiB (24.9 in float16), and results/ 17 MiB: no prepared GPU call fits with the whole tree, and a
call that does not fit costs device time for nothing. `stage` moves what its plan does not need into the
git-ignored .gpu/offtree/ (checkpoints its runs do not continue from, results/ but for the tables the call merges
into), stores kept float32 checkpoints as float16 copies (largest first) only while the call would not fit
otherwise, and refuses, touching nothing, when even that is not enough. `restore` moves everything back; a
checkpoint replaced in the meantime (a GPU run adopted into checkpoints/) is kept, not overwritten.

    python scripts/gpu_carry.py size [--carry PATH ...]                  # MiB the call would carry, largest parts
    python scripts/gpu_carry.py stage train --runs RUNS [--carry .gpu/data] [--dry-run]   # scripts/gpu_train.sh
    python scripts/gpu_carry.py stage ablations                          # scripts/gpu_ablations.sh (+ .gpu/study)
    python scripts/gpu_carry.py stage urban --carry .gpu/bench-sets .gpu/u100-1   # scripts/gpu_urban_overhead.sh
    python scripts/gpu_carry.py restore

`--carry` names what the call's `carry` will name (none: paths carried by an earlier call stay on the warm
machine and are not counted again). Exit 2 with one line on a plan that cannot fit or a tree already staged.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmark.cli import run_spec  # noqa: E402

MIB = 2 ** 20
OFFTREE = Path(".gpu/offtree")          # under the ignored .gpu/: moved files do not travel
MANIFEST = OFFTREE / "manifest.json"


@dataclasses.dataclass(frozen=True)
class Plan:
    carry: tuple[str, ...]               # what the call carries by default
    checkpoints: tuple[str, ...] = ()    # checkpoints/<name> folders the call needs (train: from --runs)
    keep_results: tuple[str, ...] = ()   # files under results/ the call merges into


PLANS = {
    "train": Plan(carry=(".gpu/data",)),
    # the prune stage fine-tunes PRUNE (L x2) and merges its rows into the fine-tune table
    "ablations": Plan(carry=(".gpu/study",), checkpoints=("awsrn-l-x2",),
                      keep_results=("results/branch_pruning_finetune.csv",)),
    "urban": Plan(carry=(".gpu/bench-sets", ".gpu/u100-1")),
}


class StageError(Exception):
    """One line for the user (exit 2)."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def call_files(root: Path, carry) -> dict[str, int]:
    """{path relative to root: bytes} of what a call carries: the tree git would copy plus every carried file."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         check=True, capture_output=True).stdout.decode()
    files = {f: (root / f).stat().st_size for f in out.split("\0") if f and (root / f).is_file()}
    for c in carry:
        base = root / c
        if not base.exists():
            raise StageError(f"--carry {c}: no such path under {root} (scripts/gpu_stage.sh makes the .gpu folders)")
        for p in [base] if base.is_file() else sorted(base.rglob("*")):
            if p.is_file():
                files[str(p.relative_to(root))] = p.stat().st_size
    return files


def report(files: dict[str, int], limit_mib: float, top: int = 8) -> str:
    parts: dict[str, int] = {}
    for f, n in files.items():      # grouped two levels deep: checkpoints/awsrn-l-x2, .gpu/data, results/store
        key = "/".join(Path(f).parts[:2]) if len(Path(f).parts) > 2 else Path(f).parts[0]
        parts[key] = parts.get(key, 0) + n
    total = sum(files.values())
    lines = [f"{total / MIB:.1f} MiB of {limit_mib:g} ({'fits' if total <= limit_mib * MIB else 'does NOT fit'})"]
    lines += [f"  {n / MIB:6.2f}  {k}" for k, n in sorted(parts.items(), key=lambda kv: -kv[1])[:top]]
    return "\n".join(lines)


def float16_bytes(path: Path) -> int:
    """The size of ``path`` once its floating tensors are stored as float16 (header kept as it is)."""
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        halved = sum(f.get_slice(k).get_dtype() == "F32" and _numel(f.get_slice(k).get_shape()) * 2
                     for k in f.keys())
    return path.stat().st_size - halved


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def write_float16(src: Path, dst: Path) -> None:
    """``src`` with its float32 tensors stored as float16, its metadata kept (storage_dtype as save_native says)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors = {k: v.half() if v.dtype == torch.float32 else v for k, v in tensors.items()}
    save_file(tensors, str(dst), metadata={**meta, "storage_dtype": "float16"})


def plan_checkpoints(plan_name: str, runs: str | None) -> tuple[str, ...]:
    if plan_name != "train":
        return PLANS[plan_name].checkpoints
    if not runs:
        raise StageError("stage train: --runs is required (the RUNS that scripts/gpu_train.sh will train)")
    try:
        return tuple(dict.fromkeys(run_spec(item.strip())["name"] for item in runs.split(",") if item.strip()))
    except ValueError as e:
        raise StageError(str(e)) from None


def stage(root: Path, plan_name: str, runs: str | None, carry, limit_mib: float, dry_run: bool = False) -> str:
    if (root / MANIFEST).exists():
        raise StageError(f"{MANIFEST}: the tree is already staged; run `python scripts/gpu_carry.py restore` first")
    plan = PLANS[plan_name]
    keep = plan_checkpoints(plan_name, runs)
    carry = plan.carry if carry is None else tuple(carry)
    files = call_files(root, carry)
    ck_root = root / "checkpoints"
    present = {p.name for p in ck_root.iterdir() if p.is_dir()} if ck_root.is_dir() else set()
    out_paths = sorted(f for f in files if (f.startswith("results/") and f not in plan.keep_results)
                       or (f.startswith("checkpoints/") and Path(f).parts[1] not in keep))
    staged = {f: n for f, n in files.items() if f not in out_paths}
    limit = limit_mib * MIB
    # float16 copies of the kept float32 weights, largest saving first, only while the call does not fit
    halve = []
    weights = [f"checkpoints/{k}/model.safetensors" for k in keep if f"checkpoints/{k}/model.safetensors" in staged]
    savings = sorted(((staged[w] - float16_bytes(root / w), w) for w in weights), reverse=True)
    for saving, w in savings:
        if sum(staged.values()) <= limit or saving <= 0:
            break
        staged[w] -= saving
        halve.append(w)
    if sum(staged.values()) > limit:
        raise StageError(f"stage {plan_name}: the call would carry {sum(staged.values()) / MIB:.1f} MiB even with "
                         f"float16 copies, over {limit_mib:g}; split the runs over two calls on one warm machine "
                         f"(README \"Training on a GPU\")\n" + report(staged, limit_mib))
    if dry_run:
        return (f"would move {len(out_paths)} files to {OFFTREE} and store {len(halve)} checkpoints as float16 copies "
                f"({', '.join(Path(w).parts[1] for w in halve) or 'none needed'})\n" + report(staged, limit_mib))
    # the plan fits: move, then write the copies (the originals wait in .gpu/offtree)
    moved, copies = [], {}
    for f in out_paths + halve:
        dst = root / OFFTREE / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(root / f), dst)
        moved.append(f)
        if f in halve:
            write_float16(dst, root / f)
            copies[f] = _sha(root / f)
    emptied = {a for f in out_paths for a in Path(f).parents if a != Path(".")}
    for d in sorted(emptied, key=lambda p: -len(p.parts)):      # deepest first: results/store/eval, ..., results
        if (root / d).is_dir() and not any((root / d).iterdir()):
            (root / d).rmdir()
    (root / MANIFEST).write_text(json.dumps({"plan": plan_name, "checkpoints": list(keep), "carry": list(carry),
                                             "moved": moved, "float16_copies": copies}, indent=1) + "\n")
    missing = [k for k in keep if k not in present]
    lines = [f"staged for {plan_name}: moved {len(out_paths)} files to {OFFTREE}, float16 copies of "
             f"{len(halve)} ({', '.join(Path(w).parts[1] for w in halve) or 'none needed'})"]
    if missing:
        lines.append(f"no checkpoint (starts from scratch): {', '.join(missing)}")
    return "\n".join(lines + [report(call_files(root, carry), limit_mib)])


def restore(root: Path) -> str:
    if not (root / MANIFEST).exists():
        raise StageError(f"{MANIFEST}: nothing is staged")
    m = json.loads((root / MANIFEST).read_text())
    back, kept = 0, []
    for f in m["moved"]:
        src, dst = root / OFFTREE / f, root / f
        copy_sha = m["float16_copies"].get(f)
        if dst.exists() and not (copy_sha and _sha(dst) == copy_sha):
            kept.append(f)          # replaced since staging (an adopted GPU run): the new file stays
            src.unlink()
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), dst)
        back += 1
    shutil.rmtree(root / OFFTREE)
    return f"restored {back} files" + (f"; kept the newer {', '.join(kept)}" if kept else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="the repository (default: here)")
    ap.add_argument("--limit-mib", type=float, default=63.5, help="what a call may carry, less a margin")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("size")
    s.add_argument("--carry", nargs="*", default=[])
    s = sub.add_parser("stage")
    s.add_argument("plan", choices=sorted(PLANS))
    s.add_argument("--runs", default=None, help="train: the RUNS of scripts/gpu_train.sh")
    s.add_argument("--carry", nargs="*", default=None, help="default: the plan's folders")
    s.add_argument("--dry-run", action="store_true", help="say what would move and the size; touch nothing")
    sub.add_parser("restore")
    args = ap.parse_args(argv)
    root = Path(args.root).resolve()
    try:
        if args.cmd == "size":
            print(report(call_files(root, args.carry), args.limit_mib))
        elif args.cmd == "stage":
            print(stage(root, args.plan, args.runs, args.carry, args.limit_mib, args.dry_run))
        else:
            print(restore(root))
    except StageError as e:
        print(f"gpu_carry: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
