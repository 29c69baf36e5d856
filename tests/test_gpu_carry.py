"""scripts/gpu_carry.py: a device call is staged to fit, float16 copies only when needed, and restored exactly."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

MIB = 2 ** 20


def _script():
    spec = importlib.util.spec_from_file_location(
        "gpu_carry", Path(__file__).resolve().parent.parent / "scripts/gpu_carry.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_carry"] = mod          # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


gpu_carry = _script()


def _git(root, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    """A tree like this one, in small: two checkpoints (float32, 0.2 MiB of weights each), results with a store
    and the fine-tune table, and an ignored .gpu/data of 0.2 MiB."""
    g = torch.Generator().manual_seed(0)
    for name in ("awsrn-s-x4", "awsrn-m-x2", "awsrn-l-x3"):
        d = tmp_path / "checkpoints" / name
        d.mkdir(parents=True)
        save_file({"w": torch.randn(50_000, generator=g), "n": torch.arange(3)}, str(d / "model.safetensors"),
                  metadata={"format": "awsrn-bench", "config": "{}"})
        (d / "recipe.json").write_text('{"iters": 1}\n')
    (tmp_path / "results/store/eval").mkdir(parents=True)
    (tmp_path / "results/store/eval/part.parquet").write_bytes(b"x" * 300_000)
    (tmp_path / "results/branch_pruning_finetune.csv").write_text("checkpoint,psnr\na,1\n")
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "benchmark/code.py").write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("/.gpu/\n")
    (tmp_path / ".gpu/data").mkdir(parents=True)
    (tmp_path / ".gpu/data/img.webp").write_bytes(b"d" * 200_000)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "tree")
    return tmp_path


def _run(repo, capsys, *args, limit=1.0):
    rc = gpu_carry.main(["--root", str(repo), "--limit-mib", str(limit), *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(root).parts[:1]}


def test_size_counts_the_tree_and_the_carried_paths(repo, capsys):
    rc, out, _ = _run(repo, capsys, "size", "--carry", ".gpu/data", limit=2)
    files = gpu_carry.call_files(repo, [".gpu/data"])
    assert rc == 0 and ".gpu/data/img.webp" in files and "results/store/eval/part.parquet" in files
    assert not any(f.startswith(".git/") for f in files)
    assert out.startswith(f"{sum(files.values()) / MIB:.1f} MiB of 2 (fits)")
    assert "0.29  results/store" in out                      # grouped two levels deep
    assert _run(repo, capsys, "size", "--carry", ".gpu/data", limit=1)[1].startswith("1.0 MiB of 1 (does NOT fit)")


def test_stage_moves_what_the_call_does_not_need_and_restore_puts_it_back(repo, capsys):
    before = _snapshot(repo)
    rc, out, _ = _run(repo, capsys, "stage", "train", "--runs", "awsrn-s:4:32", limit=1.0)
    assert rc == 0, out
    assert (repo / "checkpoints/awsrn-s-x4/model.safetensors").read_bytes() == \
        before["checkpoints/awsrn-s-x4/model.safetensors"]          # it fits in float32: no copy
    assert not (repo / "checkpoints/awsrn-m-x2").exists() and not (repo / "results").exists()
    assert "float16 copies of 0 (none needed)" in out
    assert _git(repo, "status", "--porcelain").count(" D ") == 6     # 2 checkpoints x 2 files + 2 results files
    rc, out, _ = _run(repo, capsys, "restore")
    assert rc == 0 and out.startswith("restored 6 files")
    assert _snapshot(repo) == before and _git(repo, "status", "--porcelain") == ""


def test_float16_copies_only_when_the_call_would_not_fit_otherwise(repo, capsys):
    before = _snapshot(repo)
    # float32: tree (0.2 s-x4 + 0.2 m-x2 + code) + data 0.2 = 0.6 MiB; 0.5 needs one copy, the larger saving first
    rc, out, _ = _run(repo, capsys, "stage", "train", "--runs", "awsrn-s:4,awsrn-m:2", limit=0.5)
    assert rc == 0, out
    copies = json.loads((repo / ".gpu/offtree/manifest.json").read_text())["float16_copies"]
    assert len(copies) == 1
    (copied,) = copies
    tensors = load_file(str(repo / copied))
    original = load_file(str(repo / ".gpu/offtree" / copied))
    assert tensors["w"].dtype == torch.float16 and torch.equal(tensors["w"], original["w"].half())
    assert torch.equal(tensors["n"], original["n"])                   # integer tensors as they were
    with safe_open(str(repo / copied), "pt") as f:
        assert f.metadata() == {"format": "awsrn-bench", "config": "{}", "storage_dtype": "float16"}
    assert sum(gpu_carry.call_files(repo, [".gpu/data"]).values()) <= 0.5 * MIB
    _run(repo, capsys, "restore")
    assert _snapshot(repo) == before


def test_restore_keeps_a_checkpoint_adopted_since_staging(repo, capsys):
    _run(repo, capsys, "stage", "train", "--runs", "awsrn-s:4", limit=0.35)   # needs the float16 copy of s-x4
    adopted = repo / "checkpoints/awsrn-s-x4/model.safetensors"
    save_file({"w": torch.zeros(4)}, str(adopted))                  # a GPU run adopted in its place
    rc, out, _ = _run(repo, capsys, "restore")
    assert rc == 0 and "kept the newer checkpoints/awsrn-s-x4/model.safetensors" in out
    assert torch.equal(load_file(str(adopted))["w"], torch.zeros(4))
    assert (repo / "checkpoints/awsrn-m-x2/model.safetensors").is_file() and not (repo / ".gpu/offtree").exists()


def test_a_plan_that_cannot_fit_is_refused_and_touches_nothing(repo, capsys):
    before = _snapshot(repo)
    rc, _, err = _run(repo, capsys, "stage", "train", "--runs", "awsrn-s:4,awsrn-m:2,awsrn-l:3", limit=0.3)
    assert rc == 2
    assert err.splitlines()[0].startswith("gpu_carry: stage train: the call would carry 0.5 MiB even with float16 "
                                          "copies, over 0.3; split the runs over two calls")
    assert _snapshot(repo) == before


def test_ablations_keep_the_table_they_merge_into(repo, capsys):
    (repo / ".gpu/study").mkdir()
    (repo / ".gpu/study/t.webp").write_bytes(b"s" * 1000)
    prune = repo / "checkpoints/awsrn-l-x2"                          # the prune stage's PRUNE
    prune.mkdir()
    save_file({"w": torch.zeros(1000)}, str(prune / "model.safetensors"))
    rc, out, _ = _run(repo, capsys, "stage", "ablations")
    assert rc == 0, out
    assert sorted(p.name for p in (repo / "checkpoints").iterdir()) == ["awsrn-l-x2"]
    assert [str(p.relative_to(repo)) for p in (repo / "results").rglob("*") if p.is_file()] == \
        ["results/branch_pruning_finetune.csv"]


@pytest.mark.parametrize("args, message", [
    (["stage", "train"], "stage train: --runs is required"),
    (["stage", "train", "--runs", "awsrn-s"], "--runs: 'awsrn-s' is not MODEL:SCALE"),
    (["stage", "train", "--runs", "awsrn-s:4", "--carry", ".gpu/nope"], "--carry .gpu/nope: no such path"),
    (["restore"], ".gpu/offtree/manifest.json: nothing is staged"),
])
def test_bad_input_is_one_line(repo, capsys, args, message):
    rc, _, err = _run(repo, capsys, *args)
    assert rc == 2 and err.startswith(f"gpu_carry: {message}") and len(err.splitlines()) == 1


def test_staging_twice_is_refused(repo, capsys):
    assert _run(repo, capsys, "stage", "train", "--runs", "awsrn-s:4")[0] == 0
    rc, _, err = _run(repo, capsys, "stage", "train", "--runs", "awsrn-s:4")
    assert rc == 2 and "already staged" in err
