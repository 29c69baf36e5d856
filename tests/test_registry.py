import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark import create_model, get_variant, list_variants
from benchmark.evaluate import evaluate
from benchmark.registry import Registry, Variant
from benchmark.models import Bicubic


def test_names_and_wildcards():
    names = list_variants()
    for n in ("awsrn-s", "awsrn-sd", "awsrn-m", "awsrn-l", "awsrn", "awsrn-s-bam", "awsrn-s-awms35", "bicubic"):
        assert n in names
    assert list_variants("awsrn-s-awms*") == [
        "awsrn-s-awms3", "awsrn-s-awms5", "awsrn-s-awms7", "awsrn-s-awms9", "awsrn-s-awms35", "awsrn-s-awms37",
        "awsrn-s-awms39", "awsrn-s-awms57", "awsrn-s-awms59", "awsrn-s-awms79", "awsrn-s-awms357",
        "awsrn-s-awms359", "awsrn-s-awms379", "awsrn-s-awms579"]
    assert list_variants("*-bam") == ["awsrn-l-bam", "awsrn-m-bam", "awsrn-s-bam", "awsrn-sd-bam"]
    assert get_variant("awsrn") is get_variant("awsrn-l")


def test_register_twice_raises():
    reg = Registry()
    reg.register(Variant("x", None, None, "x"))
    with pytest.raises(KeyError, match="already registered"):
        reg.register(Variant("x", None, None, "again"))


def test_unknown_name_error_suggests():
    with pytest.raises(KeyError, match="unknown model 'awsrn-xl'"):
        create_model("awsrn-xl")


def test_overrides_replace_config_fields():
    m = create_model("awsrn-s", scale=3, n_lfb=2, awms_kernels=(3,), bam=None)
    assert m.cfg.n_lfb == 2 and m.cfg.awms_kernels == (3,) and m.cfg.scale == 3 and not m.cfg.bam


def test_an_unknown_override_names_the_key_and_the_fields():
    """A recipe key given to --set (e.g. amp, which is train's --amp) is one line, not a TypeError traceback."""
    with pytest.raises(ValueError, match=r"override 'amp' \(--set amp=...\): not a field of awsrn-s's config; "
                                         r"expected one of n_lfb, n_awru, .*, rgb_mean$"):
        create_model("awsrn-s", scale=4, amp="bf16")


def test_bicubic_is_a_model_without_weights():
    assert isinstance(create_model("bicubic", scale=4), Bicubic)
    with pytest.raises(ValueError, match="takes no weights"):
        create_model("bicubic", scale=2, weights="x.pt")


def test_paper_numbers_attached():
    assert get_variant("awsrn-s").paper(2)["set5_psnr"] == 37.75
    assert get_variant("awsrn").paper(8)["params_k"] == 2348
    assert get_variant("awsrn-s").paper(8) is None
    sd3 = get_variant("awsrn-sd").paper(3)
    assert sd3["set14_psnr"] == 32.21 and "typo" in sd3["note"]


def test_pretrained_loads_the_checkpoint_this_project_trained_and_names_what_there_is(tmp_path, monkeypatch):
    from benchmark.checkpoints import file_sha256
    from benchmark.registry import CHECKPOINTS_ENV, pretrained_scales, pretrained_weights
    trained = Path(__file__).resolve().parents[1] / "checkpoints" / "awsrn-sd-x2" / "model.safetensors"
    m = create_model("awsrn-sd", scale=2, pretrained=True)
    assert m.provenance.sha256 == file_sha256(trained) and m.provenance.model == "awsrn-sd"
    ref = create_model("awsrn-sd", scale=2, weights=trained)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), ref.state_dict().values()))
    assert pretrained_weights("awsrn", 8) == trained.parents[1] / "awsrn-l-x8" / "model.safetensors"   # alias
    assert pretrained_scales("awsrn-s") == (2, 3, 4) and pretrained_scales("awsrn-s-bam") == ()
    with pytest.raises(FileNotFoundError, match=r"no trained checkpoint of awsrn-s-bam x4: expected .*awsrn-s-bam-x4"
                                                r"/model.safetensors .*there are: awsrn-l-x2, .*awsrn-sd-x4$"):
        create_model("awsrn-s-bam", scale=4, pretrained=True)
    with pytest.raises(ValueError, match="give weights .* or pretrained, not both"):
        create_model("awsrn-sd", scale=2, weights=trained, pretrained=True)
    with pytest.raises(ValueError, match="'bicubic' takes no weights"):
        create_model("bicubic", scale=2, pretrained=True)
    # $AWSRN_CHECKPOINTS points elsewhere: a folder of the same layout
    (tmp_path / "awsrn-sd-x3").mkdir()
    shutil.copy(trained, tmp_path / "awsrn-sd-x3" / "model.safetensors")
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path))
    assert pretrained_scales("awsrn-sd") == (3,)
    with pytest.raises(FileNotFoundError, match=r"there are: awsrn-sd-x3$"):
        pretrained_weights("awsrn-sd", 2)


def test_evaluate_pretrained_grades_each_scales_own_checkpoint(tmp_path, capsys):
    """The rows of `evaluate --pretrained` are keyed by each scale's checkpoint file: grading that file by
    --weights afterwards reads every row back from the store instead of grading again."""
    from benchmark.checkpoints import file_sha256
    from benchmark.cli import main
    ck = Path(__file__).resolve().parents[1] / "checkpoints"
    assert main(["evaluate", "--model", "awsrn-sd", "--scales", "3,4", "--pretrained", "--datasets", "skimage",
                 "--out", str(tmp_path), "--format", "csv", "--quiet"]) == 0
    got = pd.read_csv(io.StringIO(capsys.readouterr().out))
    for scale in (3, 4):
        weights = ck / f"awsrn-sd-x{scale}" / "model.safetensors"
        again = evaluate("awsrn-sd", ["skimage"], [scale], weights=weights, store=tmp_path / "store", progress=False)
        assert again.reused == 5 and set(again.images.weights_sha256) == {file_sha256(weights)}
        assert got[got.scale == scale].psnr.item() == pytest.approx(again.summary.psnr.item(), abs=1e-4)
    # the missing scale is named before anything is graded; --weights and --pretrained exclude each other
    assert main(["evaluate", "--model", "awsrn-sd", "--scales", "2,8", "--pretrained", "--datasets", "skimage",
                 "--no-store", "--quiet"]) == 2
    assert "error: no trained checkpoint of awsrn-sd x8" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", "awsrn-sd", "--pretrained", "--weights", "x.safetensors"])
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["evaluate", "--pretrained", "--datasets", "skimage", "--no-store"]) == 2
    assert "--pretrained needs --model" in capsys.readouterr().err


def test_list_shows_the_scales_with_a_trained_checkpoint(capsys):
    from benchmark.cli import main
    assert main(["list", "awsrn-s*", "--format", "csv"]) == 0
    rows = pd.read_csv(io.StringIO(capsys.readouterr().out), dtype=str).fillna("").set_index("model")
    assert rows.loc["awsrn-s", "pretrained"] == "2,3,4" and rows.loc["awsrn-s-bam", "pretrained"] == ""
    assert list(rows.columns) == ["pretrained", "description"]


def test_a_peers_pretrained_weights_are_its_official_file_beside_the_data_root(data_root, monkeypatch):
    from benchmark.registry import PEERS_ENV, pretrained_scales, pretrained_weights
    peers = data_root.parent / "peers"
    if not (peers / "imdn" / "IMDN_x4.pth").is_file():
        pytest.skip(f"no official peer weights under {peers}")
    monkeypatch.delenv(PEERS_ENV, raising=False)
    assert pretrained_weights("imdn", 4, data_root) == peers / "imdn" / "IMDN_x4.pth"
    monkeypatch.setenv("AWSRN_DATA", str(data_root))
    assert pretrained_scales("imdn") == (2, 3, 4) and pretrained_scales("carn-m") == (2, 3, 4)
    m = create_model("carn-m", scale=3, pretrained=True)
    assert Path(m.provenance.path) == peers / "carn" / "carn_m.pth" and m.provenance.format == "carn-m"
    with pytest.raises(FileNotFoundError, match=r"imdn has no official weights at x8; it has them at x2/x3/x4"):
        pretrained_weights("imdn", 8)
    monkeypatch.setenv(PEERS_ENV, str(data_root))      # a peers root without the files
    with pytest.raises(FileNotFoundError, match=r"no official weights of imdn x2: expected .*imdn/IMDN_x2.pth"):
        pretrained_weights("imdn", 2)


def test_torch_hub_loads_the_variants_from_the_repository():
    repo = Path(__file__).resolve().parents[1]
    m = torch.hub.load(str(repo), "awsrn_sd", source="local", scale=2, pretrained=True, trust_repo=True)
    ref = create_model("awsrn-sd", scale=2, pretrained=True)
    assert m.provenance == ref.provenance
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), ref.state_dict().values()))
    fresh = torch.hub.load(str(repo), "awsrn_l", source="local", scale=8, n_lfb=2, trust_repo=True)
    assert fresh.cfg.n_lfb == 2 and fresh.cfg.scale == 8 and fresh.provenance.path is None
