"""awsrn-bench upscale: one's own images through a trained model, the bad one reported, the others written."""
import numpy as np
import pytest
import skimage
import torch
from PIL import Image

from benchmark import create_model
from benchmark.cli import main
from benchmark.data import model_input
from benchmark.upscale import collect_inputs, upscale


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(skimage.data.astronaut()[100:148, 180:236]).save(folder / "face.png")       # 56x48 RGB
    Image.fromarray(skimage.data.camera()[200:240, 200:250]).save(folder / "camera.png")         # 50x40 gray
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def test_upscale_writes_the_models_output_and_reports_the_bad_image(images, tmp_path):
    model = create_model("awsrn-sd", scale=2, pretrained=True).eval()
    seen = []
    res = upscale(model, 2, [images], tmp_path / "out", progress=lambda p, what: seen.append(p.name))
    assert [p.name for p in res.written] == ["camera_x2.png", "face_x2.png"]
    assert len(res.failed) == 1 and res.failed[0][0].endswith("broken.png") and "cannot read image" in res.failed[0][1]
    assert seen == ["broken.png", "camera.png", "face.png"]
    face = np.array(Image.open(images / "face.png"))
    with torch.inference_mode():
        want = (model(model_input(face)).clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    got = np.array(Image.open(tmp_path / "out" / "face_x2.png"))
    assert got.shape == (96, 112, 3) and np.array_equal(got, want)
    gray = Image.open(tmp_path / "out" / "camera_x2.png")
    assert gray.mode == "L" and gray.size == (100, 80)


def test_inputs_are_checked_before_anything_runs(images, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "face.jpg").write_bytes((images / "face.png").read_bytes())
    with pytest.raises(ValueError, match=r"face.png and .*face.jpg: both would be written as face_x<scale>.png"):
        collect_inputs([images, tmp_path / "other" / "face.jpg"])
    with pytest.raises(FileNotFoundError, match=r"gone.png: no such image or folder"):
        collect_inputs([images / "gone.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no image in the folder"):
        collect_inputs([tmp_path / "empty"])
    assert collect_inputs([images / "face.png", images / "face.png"]) == [images / "face.png"]


def test_cli_upscale_exit_codes_and_one_line_errors(images, tmp_path, capsys):
    out = tmp_path / "sr"
    assert main(["upscale", str(images / "face.png"), "--model", "awsrn-sd", "--scale", "2", "--pretrained",
                 "--out", str(out), "--quiet"]) == 0
    assert (out / "face_x2.png").is_file() and "awsrn-sd x2: 1 image(s) written" in capsys.readouterr().err
    assert main(["upscale", str(images), "--model", "awsrn-sd", "--scale", "2", "--pretrained", "--out", str(out),
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "skipped: " in err and "broken.png: cannot read image" in err and "2 image(s) written" in err
    assert main(["upscale", str(images), "--model", "awsrn-sd", "--scale", "2"]) == 2
    assert "upscale needs weights for awsrn-sd: --pretrained" in capsys.readouterr().err
    assert main(["upscale", str(images), "--model", "awsrn-s-bam", "--scale", "4", "--pretrained"]) == 2
    assert "error: no trained checkpoint of awsrn-s-bam x4" in capsys.readouterr().err
    assert main(["upscale", str(images), "--scale", "2", "--pretrained"]) == 2
    assert "upscale needs --model NAME with --pretrained" in capsys.readouterr().err
