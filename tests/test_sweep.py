"""awsrn-bench sweep: the same rows from the local backend and from Ray, failures reported, the ledger."""
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import skimage
from PIL import Image

from benchmark.cli import main
from benchmark.sweep import load_spec

# x4: the lightest forward of the trained checkpoints (a quarter of x2's LR pixels)
CK = Path(__file__).resolve().parents[1] / "checkpoints" / "awsrn-sd-x4" / "model.safetensors"


def _spec(tmp_path, jobs, name="spec.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"jobs": jobs}))
    return path


JOBS = [
    {"kind": "evaluate", "model": "bicubic", "scale": 2, "datasets": ["skimage"]},
    {"kind": "evaluate", "model": "bicubic", "scale": 4, "datasets": "skimage"},
    {"kind": "evaluate", "model": "bicubic", "scale": 3, "datasets": ["skimage"], "protocol": "basicsr"},
    {"kind": "evaluate", "model": "awsrn-sd", "scale": 4, "weights": str(CK), "datasets": ["skimage"], "threads": 1},
]


def _csv(capsys) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(capsys.readouterr().out))


def test_a_missing_weights_file_is_reported_and_the_other_jobs_run(tmp_path, capsys):
    bad = {"kind": "evaluate", "model": "awsrn-s", "scale": 4, "weights": str(tmp_path / "gone.safetensors"),
           "datasets": ["skimage"]}
    spec = _spec(tmp_path, [JOBS[0], bad, JOBS[1]])
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--format", "csv"]) == 1
    captured = capsys.readouterr()
    rows = pd.read_csv(io.StringIO(captured.out))
    assert list(rows.columns) == ["model", "scale", "dataset", "protocol", "psnr", "ssim", "n_images",
                                  "self_ensemble", "deploy", "forward_s"]
    assert list(zip(rows.model, rows.scale)) == [("bicubic", 2), ("bicubic", 4)]
    assert f"job 1 (evaluate: model=awsrn-s, scale=4, weights={tmp_path / 'gone.safetensors'}" in captured.err
    assert "gone.safetensors: no such checkpoint file" in captured.err and "3 jobs: 2 ran" in captured.err
    # a rerun takes the finished jobs from the ledger and tries the failed one again
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--format", "csv"]) == 1
    assert "0 ran, 2 reused from the ledger, 1 failed" in capsys.readouterr().err


def test_bad_specs_are_one_line_and_exit_2(tmp_path, capsys):
    cases = [({"jobs": [{"kind": "evaluate", "modle": "bicubic"}]}, "job 0: unknown key 'modle' for kind evaluate"),
             ({"jobs": [{"kind": "infer", "model": "bicubic"}]}, "job 0: 'kind' must be 'evaluate' or 'train'"),
             ({"jobs": []}, "expected a mapping with a non-empty list 'jobs'"),
             ({"jobs": [{"kind": "train", "model": "awsrn-s"}]}, "job 0: a train job needs 'data'")]
    for i, (spec, message) in enumerate(cases):
        path = tmp_path / f"s{i}.json"
        path.write_text(json.dumps(spec))
        assert main(["sweep", str(path), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err and "Traceback" not in err
    yml = tmp_path / "s.yaml"
    yml.write_text("jobs: [unclosed")
    assert main(["sweep", str(yml)]) == 2 and "not valid YAML" in capsys.readouterr().err


def test_yaml_and_json_specs_are_the_same_jobs(tmp_path):
    import yaml
    y = tmp_path / "s.yaml"
    y.write_text(yaml.safe_dump({"jobs": JOBS}))
    assert load_spec(y) == load_spec(_spec(tmp_path, JOBS))


def test_train_job_trains_grades_and_is_skipped_on_rerun(tmp_path, capsys):
    d = tmp_path / "train"
    d.mkdir()
    for i in range(4):
        Image.fromarray(skimage.data.astronaut()[i * 60:i * 60 + 96, :96]).save(d / f"t{i}.png")
    job = {"kind": "train", "model": "awsrn-s", "scale": 2, "data": [str(d)], "iters": 2, "batch": 2, "patch": 12,
           "val_images": 1, "val_every": 2, "ckpt_every": 2, "overrides": {"n_feats": 8, "block_feats": 16, "n_awru": 1},
           "out": str(tmp_path / "run"), "datasets": ["skimage"]}
    spec = _spec(tmp_path, [job])
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--format", "csv"]) == 0
    first = _csv(capsys)
    assert (tmp_path / "run" / "model.safetensors").is_file() and list(first.dataset) == ["skimage"]
    stamp = (tmp_path / "run" / "model.safetensors").stat().st_mtime_ns
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--format", "csv"]) == 0
    assert (tmp_path / "run" / "model.safetensors").stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(_csv(capsys), first)
    # the run folder deleted: the ledger entry no longer stands, the job trains again (same seed, same rows)
    shutil.rmtree(tmp_path / "run")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--format", "csv"]) == 0
    assert (tmp_path / "run" / "model.safetensors").is_file()
    again = _csv(capsys)
    assert again.psnr.tolist() == first.psnr.tolist() and again.ssim.tolist() == first.ssim.tolist()


@pytest.mark.slow
def test_two_sweeps_at_once_into_one_out_leave_no_duplicate_and_no_lost_row(tmp_path):
    spec = _spec(tmp_path, JOBS[:3])
    cmd = [sys.executable, "-m", "benchmark.cli", "sweep", str(spec), "--out", str(tmp_path / "o"), "--format", "csv"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    tables = [pd.read_csv(io.StringIO(o[0])).drop(columns="forward_s") for o in outs]
    pd.testing.assert_frame_equal(tables[0], tables[1])          # both report every job's rows
    ran = sum(int(o[1].split(" jobs: ")[1].split(" ran")[0]) for o in outs)
    assert ran == 3                                             # each job ran once across the two sweeps
    ledger = sorted((tmp_path / "o/store/sweep").glob("*.csv"))
    assert len(ledger) == 3
    for f in sorted((tmp_path / "o/store/eval").glob("*.csv")):
        rows = pd.read_csv(f)
        assert len(rows) == 5 and rows.image.is_unique, f.name   # the 5 embedded images, once each


@pytest.mark.slow
def test_ray_backend_gives_the_local_backends_rows(tmp_path, capsys):
    pytest.importorskip("ray")
    spec = _spec(tmp_path, JOBS)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "local"), "--format", "csv"]) == 0
    local = _csv(capsys)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "ray"), "--backend", "ray", "--workers", "2",
                 "--format", "csv"]) == 0
    remote = _csv(capsys)
    assert len(local) == 4
    pd.testing.assert_frame_equal(local.drop(columns="forward_s"), remote.drop(columns="forward_s"))
    # the same store keys and per-image rows under both backends
    names = lambda d: sorted(p.name for p in (tmp_path / d / "store/eval").glob("*.csv"))  # noqa: E731
    assert names("local") == names("ray")
    for n in names("local"):
        a, b = (pd.read_csv(tmp_path / d / "store/eval" / n) for d in ("local", "ray"))
        pd.testing.assert_series_equal(a.psnr, b.psnr)


def test_group_backend_trains_the_jobs_together_and_gives_the_local_backends_results(tmp_path, capsys):
    """--backend group: the train jobs trained in one process (train_group), then graded and recorded as the
    local backend does; each run reaches the same weights as when trained alone; a rerun trains nothing."""
    from safetensors.torch import load_file
    d = tmp_path / "train"
    d.mkdir()
    for i in range(4):
        Image.fromarray(skimage.data.astronaut()[i * 60:i * 60 + 96, :96]).save(d / f"t{i}.png")
    tiny = {"n_feats": 8, "block_feats": 16, "n_awru": 1}

    def jobs(root):
        return [{"kind": "train", "model": m, "scale": 2, "data": [str(d)], "iters": 3, "batch": 2, "patch": 12,
                 "val_images": 1, "val_every": 3, "ckpt_every": 3, "seed": seed, "overrides": tiny,
                 "out": str(root / f"{m}-{seed}"), "datasets": ["skimage"]}
                for m, seed in (("awsrn-s", 1), ("awsrn-s-bam", 2))] + [JOBS[0]]
    results = {}
    for backend in ("local", "group"):
        spec = _spec(tmp_path, jobs(tmp_path / backend), name=f"{backend}.json")
        assert main(["sweep", str(spec), "--out", str(tmp_path / f"o-{backend}"), "--backend", backend,
                     "--format", "csv"]) == 0
        printed = capsys.readouterr()
        results[backend] = pd.read_csv(io.StringIO(printed.out)).drop(columns=["forward_s"])
        assert "3 jobs: 3 ran, 0 reused from the ledger, 0 failed" in printed.err
    pd.testing.assert_frame_equal(results["local"], results["group"])
    for run in ("awsrn-s-1", "awsrn-s-bam-2"):
        a, b = (load_file(tmp_path / backend / run / "model.safetensors") for backend in ("local", "group"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), run
    stamp = (tmp_path / "group" / "awsrn-s-1" / "model.safetensors").stat().st_mtime_ns
    spec = _spec(tmp_path, jobs(tmp_path / "group"), name="group.json")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o-group"), "--backend", "group", "--format", "csv"]) == 0
    assert "3 reused from the ledger" in capsys.readouterr().err
    assert (tmp_path / "group" / "awsrn-s-1" / "model.safetensors").stat().st_mtime_ns == stamp


def test_group_backend_reports_a_bad_train_job_and_still_trains_the_others(tmp_path, capsys):
    d = tmp_path / "train"
    d.mkdir()
    for i in range(4):
        Image.fromarray(skimage.data.astronaut()[i * 60:i * 60 + 96, :96]).save(d / f"t{i}.png")
    job = {"kind": "train", "scale": 2, "data": [str(d)], "iters": 2, "batch": 2, "patch": 12, "val_images": 1,
           "val_every": 2, "ckpt_every": 2, "overrides": {"n_feats": 8, "block_feats": 16, "n_awru": 1}}
    (tmp_path / "empty").mkdir()
    # an unknown model fails as its config is built (it never joins the group); a folder without images fails
    # inside the group, which then trains the jobs one by one
    spec = _spec(tmp_path, [{**job, "model": "awsrn-nope", "out": str(tmp_path / "bad")},
                            {**job, "model": "awsrn-s", "data": [str(tmp_path / "empty")], "out": str(tmp_path / "bad2")},
                            {**job, "model": "awsrn-s", "out": str(tmp_path / "good")}])
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--backend", "group", "--format", "csv"]) == 1
    err = capsys.readouterr().err
    assert "training the jobs one by one" in err
    assert "job 0 (train: scale=2, model=awsrn-nope) failed: KeyError: \"unknown model 'awsrn-nope'" in err
    assert "job 1 (train: scale=2, model=awsrn-s) failed: " in err and "empty" in err
    assert "3 jobs: 1 ran, 0 reused from the ledger, 2 failed" in err
    assert (tmp_path / "good" / "model.safetensors").is_file()


def test_a_pretrained_job_is_keyed_by_each_scales_checkpoint_file(tmp_path, monkeypatch):
    """A sweep's ledger must not reuse rows of a checkpoint that has since been retrained; a job whose
    pretrained checkpoint does not exist fails with that cause."""
    from benchmark.registry import CHECKPOINTS_ENV
    from benchmark.sweep import Job, run_job
    spec = _spec(tmp_path, [{"kind": "evaluate", "model": "awsrn-sd", "scales": [2, 3], "pretrained": True,
                             "datasets": ["skimage"]}])
    job = load_spec(spec)[0]
    assert job.scales() == [2, 3]
    for scale in (2, 3):
        (tmp_path / "ck" / f"awsrn-sd-x{scale}").mkdir(parents=True)
        shutil.copy(CK.parents[1] / f"awsrn-sd-x{scale}" / "model.safetensors",
                    tmp_path / "ck" / f"awsrn-sd-x{scale}" / "model.safetensors")
    monkeypatch.setenv(CHECKPOINTS_ENV, str(tmp_path / "ck"))
    before = job.job_id()
    assert job.job_id() == before
    with open(tmp_path / "ck" / "awsrn-sd-x3" / "model.safetensors", "ab") as f:   # "retrained": other bytes
        f.write(b" ")
    assert job.job_id() != before
    gone = run_job(Job(0, "evaluate", {"model": "awsrn-s-bam", "scale": 2, "pretrained": True,
                                       "datasets": ["skimage"]}), tmp_path / "o")
    assert gone["status"] == "failed" and "no trained checkpoint of awsrn-s-bam x2" in gone["error"]


def test_the_readme_sweep_example_is_a_valid_spec(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "spec.yaml").write_text(block)
    jobs = load_spec(tmp_path / "spec.yaml")
    assert [j.kind for j in jobs] == ["evaluate", "evaluate", "evaluate", "train"]
    assert jobs[2].params["pretrained"] is True and jobs[2].scales() == [2, 3, 4] and jobs[1].num_gpus == 0.25
