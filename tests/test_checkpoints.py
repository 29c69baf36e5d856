import dataclasses
import json
import pickle

import pytest
import torch

from benchmark import create_model
from benchmark.checkpoints import (CheckpointError, Provenance, file_sha256, load_weights, model_from_checkpoint,
                                   read_checkpoint, save_native)
from benchmark.cli import main
from benchmark.deploy import reparameterize
from tests.reference_awsrn import Net, randomize


def _save(sd, path):
    torch.save(sd, path)
    return path


@pytest.mark.parametrize("variant,scale,n_lfb,n_awru,nf", [
    ("awsrn-s", 2, 1, 4, 32),      # awsrn.py
    ("awsrn-sd", 3, 1, 8, 16),     # awsrnd.py: b0..b7
    ("awsrn-m", 4, 3, 4, 32),
])
def test_official_checkpoint_reproduces_official_forward(tmp_path, variant, scale, n_lfb, n_awru, nf):
    ref = randomize(Net(scale, n_lfb, n_awru, nf, flavour="official")).eval()
    path = _save(ref.state_dict(), tmp_path / "model_latest.pt")
    ours = create_model(variant, scale=scale, weights=path).eval()
    assert read_checkpoint(path).source_format == "official"
    x = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        expected = ref(x * 255)                    # the official code works on [0, 255]
        got = ours(x) * 255
    assert torch.allclose(got, expected, atol=2e-3, rtol=0), (got - expected).abs().max()


def test_super_image_bam_checkpoint_reproduces_its_forward(tmp_path):
    ref = randomize(Net(2, 2, 4, 32, flavour="super-image", bam=True), seed=3).eval()
    path = _save(ref.state_dict(), tmp_path / "pytorch_model_2x.pt")
    assert any(k.startswith("body.0.lfl.0.") for k in ref.state_dict())
    assert "attention.ca.fc1.weight" in ref.state_dict()
    ours = model_from_checkpoint(path).eval()
    assert ours.cfg.bam and ours.cfg.n_lfb == 2 and not ours.cfg.mean_shift and ours.cfg.input_range == 1.0
    x = torch.rand(2, 3, 9, 10)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-5, rtol=0)
    # the registry's BAM variant takes it too (structure S-like with 2 LFBs via override)
    m = create_model("awsrn-s-bam", scale=2, n_lfb=2, weights=path).eval()
    with torch.no_grad():
        assert torch.allclose(m(x), ref(x), atol=1e-5, rtol=0)


def test_super_image_plain_checkpoint_keeps_its_odd_normalisation(tmp_path):
    ref = randomize(Net(3, 1, 4, 32, flavour="super-image", bam=False), seed=5).eval()
    path = _save(ref.state_dict(), tmp_path / "pytorch_model_3x.pt")
    ours = create_model("awsrn-s", scale=3, weights=path).eval()
    assert ours.cfg.input_range == 1.0 and ours.cfg.mean_shift
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-3, rtol=1e-5)


def test_swapped_scalars_would_fail(tmp_path):
    """The mapping keeps every scalar in place: swapping two of them changes the output."""
    ref = randomize(Net(2, 1, 4, 32), seed=7).eval()
    sd = ref.state_dict()
    sd["body.0.b0.res_scale.scale"], sd["body.0.b0.x_scale.scale"] = sd["body.0.b0.x_scale.scale"], sd["body.0.b0.res_scale.scale"]
    ours = create_model("awsrn-s", scale=2, weights=_save(sd, tmp_path / "m.pt")).eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(ours(x) * 255, ref(x * 255), atol=1e-2)


def test_native_round_trip_and_convert(tmp_path):
    ref = randomize(Net(4, 1, 8, 16), seed=1).eval()
    src = _save(ref.state_dict(), tmp_path / "model_latest.pt")
    dst = tmp_path / "sd_x4.safetensors"
    assert main(["convert", str(src), str(dst)]) == 0
    assert json.loads(dst.with_suffix(".json").read_text())["n_awru"] == 8
    ck = read_checkpoint(dst)
    assert ck.source_format == "native" and ck.config.scale == 4 and ck.config.n_feats == 16
    a, b = model_from_checkpoint(src).eval(), model_from_checkpoint(dst).eval()
    x = torch.rand(1, 3, 6, 7)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    # saving again from the loaded model gives the same tensors
    save_native(b, tmp_path / "again.safetensors")
    again = read_checkpoint(tmp_path / "again.safetensors")
    assert all(torch.equal(again.state_dict[k], ck.state_dict[k]) for k in ck.state_dict)


def test_wrong_scale_names_structure_and_shapes(tmp_path):
    path = _save(Net(4, 1, 4, 32).state_dict(), tmp_path / "x4.pt")
    with pytest.raises(CheckpointError) as err:
        create_model("awsrn-s", scale=2, weights=path)
    msg = str(err.value)
    assert "x4.pt" in msg and "scale: checkpoint 4 vs model 2" in msg
    assert "skip.0.weight_v: checkpoint (48, 3, 3, 3) vs model (12, 3, 3, 3)" in msg


def test_wrong_variant_names_missing_keys(tmp_path):
    path = _save(Net(2, 1, 4, 32).state_dict(), tmp_path / "s.pt")
    with pytest.raises(CheckpointError, match=r"n_lfb: checkpoint 1 vs model 4") as err:
        create_model("awsrn-l", scale=2, weights=path)
    assert "missing keys (" in str(err.value) and "body.1.b0.body.0.weight_g" in str(err.value)


def test_unexpected_and_missing_keys_named(tmp_path):
    sd = Net(2, 1, 4, 32).state_dict()
    sd["extra.weight"] = torch.zeros(1)
    del sd["tail.scale_k7.scale"]
    with pytest.raises(CheckpointError) as err:
        create_model("awsrn-s", scale=2, weights=_save(sd, tmp_path / "odd.pt"))
    msg = str(err.value)
    assert "unexpected keys (1): extra.weight" in msg and "tail.scale_k7.scale" in msg


def test_not_an_awsrn_checkpoint(tmp_path):
    path = _save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an AWSRN, IMDN or CARN-M checkpoint"):
        read_checkpoint(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        read_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "absent.pt")


class _Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")   # the hostile file is protocol 4
def test_pickled_code_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pt", "wb") as fh:
        pickle.dump({"state_dict": _Evil()}, fh)
    torch.save({"payload": _Evil()}, "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(CheckpointError, match="weights_only=True"):
            read_checkpoint(name)
    assert not (tmp_path / "PWNED").exists()


def test_loaded_models_carry_one_frozen_provenance_record(tmp_path):
    path = _save(Net(2, 1, 4, 32).state_dict(), tmp_path / "m.pt")
    m = create_model("awsrn-s", scale=2)
    assert m.provenance == Provenance("awsrn-s")                       # initialised, not loaded
    ck = load_weights(m, path)
    assert m.provenance == Provenance("awsrn-s", str(path), file_sha256(path), "official") and ck.config.n_awru == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.provenance.sha256 = "x"
    assert model_from_checkpoint(path).provenance.model == "checkpoint"
    assert reparameterize(m).provenance == m.provenance                 # the deploy form keeps it


def test_the_input_convention_is_built_in_not_swapped_after_loading(tmp_path):
    """create_model builds with the weights' convention; load_weights into a model built for another
    convention is refused with the field named (it would silently change the model's inputs)."""
    ref = randomize(Net(3, 1, 4, 32, flavour="super-image", bam=False), seed=5).eval()
    path = _save(ref.state_dict(), tmp_path / "pytorch_model_3x.pt")
    cfg_before = create_model("awsrn-s", scale=3).cfg
    assert create_model("awsrn-s", scale=3, weights=path).cfg.input_range == 1.0 and cfg_before.input_range == 255.0
    with pytest.raises(CheckpointError, match="input_range: checkpoint 1.0 vs model 255.0"):
        load_weights(create_model("awsrn-s", scale=3), path)


def test_float16_storage_moves_psnr_by_less_than_a_thousandth_of_a_db(data_root):
    """The committed AWSRN-S x4 (float32) against its float16 round trip, Set5, matlab protocol."""
    import importlib.util
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    ck = root / "checkpoints/awsrn-s-x4/model.safetensors"
    spec = importlib.util.spec_from_file_location("fp16check", root / "scripts/fp16_storage_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    df = mod.compare(ck, ["Set5"], data_root)
    assert len(df) == 1 and df.psnr_fp32.iloc[0] > 30.0
    assert abs(df.d_psnr.iloc[0]) <= 0.001 and df.d_psnr.iloc[0] != 0.0


def test_float16_storage_table_replaces_only_the_rows_of_the_checkpoints_checked(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    import pandas as pd
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("fp16check", root / "scripts/fp16_storage_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "fp16_storage.csv"
    pd.DataFrame({"checkpoint": ["a", "a", "b"], "dataset": ["Set5", "Set14", "Set5"],
                  "d_psnr": [0.1, 0.2, 0.3]}).to_csv(out, index=False)
    monkeypatch.setattr(mod, "compare", lambda path, datasets, data_root: pd.DataFrame(
        {"checkpoint": [path], "dataset": ["Set5"], "d_psnr": [0.5]}))
    assert mod.main(["a", "--out", str(out)]) == 0
    got = pd.read_csv(out)
    assert got.values.tolist() == [["b", "Set5", 0.3], ["a", "Set5", 0.5]]


def _load_script(name):
    import importlib.util
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location(name, root / f"scripts/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_run(folder, model, val_psnr, dtype=None, iters_reached=10, schedule_complete=None):
    """A checkpoint or fine-tune folder as the trainer leaves it (model, recipe, log, resumable state)."""
    import json

    import pandas as pd
    from benchmark.checkpoints import save_native
    folder.mkdir(parents=True)
    save_native(model, folder / "model.safetensors", dtype=dtype)
    recipe = {"iters": 10, "iters_reached": iters_reached, "save_dtype": "float16" if dtype else "float32"}
    if schedule_complete is not None:
        recipe["schedule_complete"] = schedule_complete
    (folder / "recipe.json").write_text(json.dumps(recipe))
    pd.DataFrame({"iter": [5, 10], "val_psnr": [val_psnr - 1, val_psnr]}).to_csv(folder / "train_log.csv", index=False)
    torch.save({"model": model.state_dict()}, folder / "checkpoint.pt")


def test_adopt_finetune_copies_a_run_only_when_its_held_out_psnr_is_higher(tmp_path, capsys):
    from safetensors.torch import load_file
    mod = _load_script("adopt_finetune")
    tiny = dict(scale=2, n_feats=8, block_feats=16, n_awru=1)
    torch.manual_seed(0)
    old, new = create_model("awsrn-s", **tiny), create_model("awsrn-s", **tiny)
    _fake_run(tmp_path / "ck/a", old, 30.0)
    _fake_run(tmp_path / "runs/a", new, 30.1, dtype=torch.float16)
    _fake_run(tmp_path / "ck/b", old, 30.0)
    _fake_run(tmp_path / "runs/b", new, 29.9)
    args = ["--runs", str(tmp_path / "runs"), "--checkpoints", str(tmp_path / "ck")]
    assert mod.main(["a", *args]) == 0
    assert "a: held-out 30.0000 -> 30.1000 dB (+0.1000): adopted" in capsys.readouterr().out
    ck = load_file(tmp_path / "ck/a/model.safetensors")
    assert all(v.dtype == torch.float16 for v in ck.values())           # the run's compact storage
    fp32 = load_file(tmp_path / "runs/a/model_fp32.safetensors")
    assert all(torch.equal(fp32[k], v) for k, v in new.state_dict().items())
    prev = load_file(tmp_path / "runs/a/previous.safetensors")
    assert all(torch.equal(prev[k], v) for k, v in old.state_dict().items())
    before = (tmp_path / "ck/b/model.safetensors").read_bytes()
    assert mod.main(["b", *args]) == 1
    assert "kept the checkpoint" in capsys.readouterr().out
    assert (tmp_path / "ck/b/model.safetensors").read_bytes() == before
    _fake_run(tmp_path / "runs/c", new, 31.0, iters_reached=None)
    assert mod.main(["c", *args]) == 2
    assert f"{tmp_path / 'runs/c'}: no finished run" in capsys.readouterr().err
    # a run its time budget shortened: finished when it reached the horizon the budget fitted, not when cut
    _fake_run(tmp_path / "runs/e", new, 31.0, iters_reached=7, schedule_complete=False)
    assert mod.main(["e", *args]) == 2
    assert f"{tmp_path / 'runs/e'}: no finished run" in capsys.readouterr().err
    _fake_run(tmp_path / "ck/f", old, 30.0)
    _fake_run(tmp_path / "runs/f", new, 30.1, iters_reached=7, schedule_complete=True)
    assert mod.main(["f", *args]) == 0 and "adopted" in capsys.readouterr().out
    # --float32: a float16 run whose round trip costs too much is committed with its float32 weights
    _fake_run(tmp_path / "ck/d", old, 30.0)
    _fake_run(tmp_path / "runs/d", new, 30.1, dtype=torch.float16)
    assert mod.main(["d", *args, "--float32"]) == 0
    assert "adopted (previous weights" in capsys.readouterr().out
    ck = load_file(tmp_path / "ck/d/model.safetensors")
    assert all(torch.equal(ck[k], v) for k, v in new.state_dict().items())   # bit for bit the run's float32
    assert json.loads((tmp_path / "ck/d/recipe.json").read_text())["save_dtype"] == "float32"
    assert json.loads((tmp_path / "runs/d/recipe.json").read_text())["save_dtype"] == "float16"   # the run's own


def test_adopt_finetune_takes_a_gpu_runs_float16_weights_as_they_are(tmp_path, capsys):
    """scripts/gpu_train.sh brings back model.safetensors without checkpoint.pt: a float16 run is adopted as
    trained (no float32 twin is invented), and --float32 on it is refused in one line, touching nothing."""
    from safetensors.torch import load_file
    mod = _load_script("adopt_finetune")
    tiny = dict(scale=2, n_feats=8, block_feats=16, n_awru=1)
    torch.manual_seed(0)
    old, new = create_model("awsrn-s", **tiny), create_model("awsrn-s", **tiny)
    args = ["--runs", str(tmp_path / "runs"), "--checkpoints", str(tmp_path / "ck")]
    for name in ("g", "h"):
        _fake_run(tmp_path / f"ck/{name}", old, 30.0)
        _fake_run(tmp_path / f"runs/{name}", new, 30.2, dtype=torch.float16)
        (tmp_path / f"runs/{name}/checkpoint.pt").unlink()
    before = (tmp_path / "ck/h/model.safetensors").read_bytes()
    assert mod.main(["h", *args, "--float32"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"adopt_finetune: {tmp_path / 'runs/h'}: --float32 needs {tmp_path / 'runs/h/checkpoint.pt'} "
                   "(the run's float32 state); a GPU run brings back its float16 weights only")
    assert (tmp_path / "ck/h/model.safetensors").read_bytes() == before
    assert not (tmp_path / "runs/h/previous.safetensors").exists()
    assert mod.main(["g", *args]) == 0
    assert "(+0.2000) (float16 weights as trained: no float32 state came back): adopted" in capsys.readouterr().out
    ck = load_file(tmp_path / "ck/g/model.safetensors")
    assert all(torch.equal(ck[k], v.half()) for k, v in new.state_dict().items())
    assert not (tmp_path / "runs/g/model_fp32.safetensors").exists()
