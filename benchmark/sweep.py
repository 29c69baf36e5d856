"""``awsrn-bench sweep SPEC``: many evaluate/train jobs, in this process or as Ray tasks.

A spec (YAML or JSON) holds ``jobs``; each job is ``kind: evaluate`` or ``kind: train`` plus the keys of
that subcommand (``model``, ``scales`` (or one ``scale``), ``weights``, ``datasets``, ``protocol``, ...; for train the
``TrainConfig`` fields: ``iters``, ``data``, ``batch``, ...). The engine is Ray's (``--backend ray``: one task
per job, a local Ray by default, ``--address`` joins a cluster, ``num_gpus`` lets small models share a card);
``--backend local`` runs the same jobs one after another without Ray; ``--backend group`` trains the train jobs
together in this process (``train.train_group``: one CUDA stream each, so small models share one GPU where Ray is
not installed), then runs every job as the local backend does. This module only turns jobs into calls
of ``evaluate()``/``train()`` and keeps a ledger so that:

* results go into the same store with the same keys as the subcommands (``<out>/store``);
* a finished job is recorded in ``<out>/store/sweep/`` (keyed by the job's content and, for weights, the
  file's sha256) and skipped by a rerun;
* a job runs under a file lock, so two sweeps started at once into one ``--out`` run each job once;
* a failed job is reported with its cause and the other jobs go on.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

EVAL_KEYS = {"model", "scales", "scale", "weights", "pretrained", "datasets", "protocol", "self_ensemble", "deploy",
             "graph", "device", "tile", "data_root", "threads"}
RESOURCE_KEYS = {"num_gpus", "num_cpus"}       # Ray resources of the job's task; ignored by the local backend
TRAIN_ONLY = {"datasets"}                      # graded after training when given
# the columns of `evaluate --format csv`, one row per (model, scale, dataset)
EVAL_COLUMNS = ["model", "scale", "dataset", "protocol", "psnr", "ssim", "n_images", "self_ensemble", "deploy",
                "forward_s"]


class SpecError(ValueError):
    """A sweep spec that cannot be run: names the file, the job and the key."""


@dataclass(frozen=True)
class Job:
    index: int
    kind: str                                   # 'evaluate' or 'train'
    params: dict = field(default_factory=dict)
    num_gpus: float = 0.0
    num_cpus: float = 1.0

    def describe(self) -> str:
        keys = ", ".join(f"{k}={v}" for k, v in self.params.items() if k in ("model", "scale", "weights", "datasets"))
        return f"job {self.index} ({self.kind}: {keys})"

    def scales(self) -> list[int]:
        """An evaluate job's scales: ``scales`` as evaluate's flag, or one ``scale`` (default 2)."""
        scale = self.params.get("scales", self.params.get("scale", 2))
        return [int(x) for x in scale] if isinstance(scale, list) else [int(scale)]

    def job_id(self) -> str:
        """Content key: the job's parameters and, for a weights or init file, its sha256 (for ``pretrained``,
        each scale's checkpoint file: a retrained checkpoint makes the job new)."""
        from .checkpoints import file_sha256
        ident = {"kind": self.kind, **self.params}
        for key in ("weights", "init_from"):
            path = self.params.get(key)
            if path and Path(path).is_file():
                ident[f"{key}_sha256"] = file_sha256(path)
        if self.params.get("pretrained"):
            from .registry import pretrained_weights
            ident["pretrained_sha256"] = [file_sha256(pretrained_weights(self.params["model"], s,
                                                                         self.params.get("data_root")))
                                          for s in self.scales()]
        text = json.dumps(ident, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _train_fields() -> set[str]:
    from .train import TrainConfig
    return {f.name for f in dataclasses.fields(TrainConfig)}


def load_spec(path: str | Path) -> list[Job]:
    """Parse and check a spec file; every problem is a SpecError naming the file, job and key."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            spec = json.loads(text)
        else:
            import yaml
            spec = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError, ImportError) as exc:
        raise SpecError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}") from None
    except Exception as exc:     # yaml.YAMLError and friends: one line, not a traceback
        raise SpecError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("jobs"), list) or not spec["jobs"]:
        raise SpecError(f"{path}: expected a mapping with a non-empty list 'jobs'")
    train_keys = _train_fields() | TRAIN_ONLY
    jobs = []
    for i, raw in enumerate(spec["jobs"]):
        if not isinstance(raw, dict):
            raise SpecError(f"{path}: job {i}: expected a mapping, got {type(raw).__name__}")
        raw = dict(raw)
        kind = raw.pop("kind", None)
        if kind not in ("evaluate", "train"):
            raise SpecError(f"{path}: job {i}: 'kind' must be 'evaluate' or 'train', got {kind!r}")
        allowed = (EVAL_KEYS if kind == "evaluate" else train_keys) | RESOURCE_KEYS
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise SpecError(f"{path}: job {i}: unknown key {unknown[0]!r} for kind {kind} "
                            f"(expected one of: {', '.join(sorted(allowed))})")
        for key in ("datasets", "data", "monitor"):       # lists may also be written 'Set5,Set14'
            if isinstance(raw.get(key), str):
                raw[key] = [t for t in raw[key].split(",") if t]
        if kind == "evaluate" and not raw.get("model") and not raw.get("weights"):
            raise SpecError(f"{path}: job {i}: an evaluate job needs 'model' or 'weights'")
        if kind == "train" and not raw.get("data"):
            raise SpecError(f"{path}: job {i}: a train job needs 'data' (training folders)")
        resources = {k: float(raw.pop(k)) for k in list(raw) if k in RESOURCE_KEYS}
        jobs.append(Job(i, kind, raw, **resources))
    return jobs


# ------------------------------------------------------------------------------------------ one job
def _evaluate(params: dict, out: Path, data_root) -> pd.DataFrame:
    import torch
    from .evaluate import evaluate
    if params.get("threads"):
        torch.set_num_threads(int(params["threads"]))
    res = evaluate(params.get("model"), params.get("datasets", ["Set5"]), Job(0, "evaluate", params).scales(),
                   params.get("protocol", "matlab"), weights=params.get("weights"),
                   pretrained=bool(params.get("pretrained", False)),
                   self_ensemble=bool(params.get("self_ensemble", False)), data_root=params.get("data_root", data_root),
                   store=out / "store", device=params.get("device", "cpu"), tile=params.get("tile"),
                   deploy=bool(params.get("deploy", False)), graph=bool(params.get("graph", False)), progress=False)
    if res.images.empty:
        why = "; ".join(f"{p}: {w}" for p, w in res.skipped[:3]) or "no image found"
        raise ValueError(f"no image could be graded ({why})")
    return res.summary.reindex(columns=EVAL_COLUMNS)


def _train_config(params: dict, out: Path, data_root):
    """A train job's ``TrainConfig`` and the test sets it is graded on afterwards (or None)."""
    from .train import TrainConfig
    p = dict(params)
    datasets = p.pop("datasets", None)
    p["data"] = tuple(p["data"])
    if "monitor" in p:
        p["monitor"] = tuple(p["monitor"])
    p.setdefault("out", str(out / "runs" / f"{p.get('model', 'awsrn-s')}-x{p.get('scale', 4)}"))
    p.setdefault("data_root", data_root)
    return TrainConfig(**p), datasets


def _train(params: dict, out: Path, data_root) -> pd.DataFrame:
    from .train import train
    cfg, datasets = _train_config(params, out, data_root)
    p = dataclasses.asdict(cfg)
    summary = train(cfg, resume=True, progress=False)   # a finished run is left as it is
    row = {"model": p.get("model", "awsrn-s"), "scale": p.get("scale", 4), "dataset": "", "out": summary["out"],
           "iters": summary["iters"]}
    if not datasets:
        return pd.DataFrame([row])
    from .evaluate import evaluate
    from .registry import create_model
    # built with the run's structure overrides (e.g. n_lfb=2); its rows are keyed by the weights' sha256
    model = create_model(p.get("model", "awsrn-s"), scale=p.get("scale", 4),
                         weights=str(Path(p["out"]) / "model.safetensors"), **p.get("overrides", {}))
    res = evaluate(model, datasets, [p.get("scale", 4)], data_root=p["data_root"], store=out / "store",
                   device=p.get("device", "cpu"), progress=False)
    return res.summary.reindex(columns=EVAL_COLUMNS).assign(out=summary["out"], iters=summary["iters"])


def _output_present(job: Job, out: Path, data_root) -> bool:
    """A train job's ledger entry stands only while its run's weights exist (a deleted run folder is
    trained again rather than graded from a missing file)."""
    if job.kind != "train":
        return True
    return (Path(_train_config(job.params, out, data_root)[0].out) / "model.safetensors").is_file()


def run_job(job: Job, out: str | Path, data_root=None) -> dict:
    """Run one job unless the ledger has it; never raises: returns {index, status, rows, error}.

    status: 'done' (ran now), 'reused' (in the ledger), 'failed' (error holds the cause)."""
    from .results import ResultStore, environment
    out = Path(out)
    try:
        key = {"job": job.job_id()}
        store = ResultStore(out / "store")
        lock_path = store.run_path("sweep", key).with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)          # a second sweep waits here, then finds the ledger entry
            done = store.read_run("sweep", key)
            if not done.empty and _output_present(job, out, data_root):
                return {"index": job.index, "status": "reused", "rows": done.to_dict("records"), "error": None}
            rows = (_evaluate if job.kind == "evaluate" else _train)(job.params, out, data_root)
            rows = rows.assign(job=job.index, job_id=key["job"], kind=job.kind)
            store.write_run("sweep", key, rows, {**environment(job.params.get("device", "cpu")),
                                                 "spec": json.dumps({"kind": job.kind, **job.params}, default=str)})
            return {"index": job.index, "status": "done", "rows": rows.to_dict("records"), "error": None}
    except Exception as exc:      # reported with its cause; the other jobs go on
        cause = f"{type(exc).__name__}: {exc}"
        if os.environ.get("AWSRN_DEBUG"):
            cause += "\n" + traceback.format_exc()
        return {"index": job.index, "status": "failed", "rows": [], "error": cause}


# ------------------------------------------------------------------------------------------ backends
def _run_local(jobs: list[Job], out: Path, data_root) -> list[dict]:
    return [run_job(j, out, data_root) for j in jobs]


def _run_group(jobs: list[Job], out: Path, data_root) -> list[dict]:
    """Train the unfinished train jobs together (one process, one CUDA stream each, every run to its own
    ``iters``), then run every job as the local backend does: each train job finds its run finished and is
    graded and recorded in the ledger as usual. If the group fails (one bad job stops it), the jobs run one by
    one instead, so the bad one is reported with its cause and the others still train."""
    from .train import _finished, train_group
    from .results import ResultStore
    store = ResultStore(out / "store")
    cfgs = []
    for j in jobs:
        if j.kind != "train" or not store.read_run("sweep", {"job": j.job_id()}).empty:
            continue
        try:
            cfg, _ = _train_config(j.params, out, data_root)
        except (TypeError, ValueError, KeyError):
            continue                    # run_job reports it with its cause
        if _finished(cfg) is None and cfg.out not in {c.out for c in cfgs}:
            cfgs.append(cfg)
    if cfgs:
        lock_path = out / "store" / "sweep" / "group.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)      # a second group sweep waits, then finds the runs finished
            try:
                train_group([c for c in cfgs if _finished(c) is None], resume=True)
            except Exception as exc:             # noqa: BLE001  the jobs retry one by one below
                print(f"the group training stopped ({type(exc).__name__}: {exc}); training the jobs one by one",
                      file=sys.stderr)
    return _run_local(jobs, out, data_root)


def _run_ray(jobs: list[Job], out: Path, data_root, address: str | None, workers: int | None) -> list[dict]:
    try:
        import ray
    except ImportError:
        raise SpecError("--backend ray needs Ray: pip install -e '.[ray]'") from None
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:   # the embedded local Ray: nothing to set up; --workers caps the tasks running at once
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(run_job)
        refs = [task.options(num_cpus=j.num_cpus, num_gpus=j.num_gpus).remote(j, str(Path(out).resolve()), data_root)
                for j in jobs]
        results = []
        for j, ref in zip(jobs, refs):
            try:
                results.append(ray.get(ref))
            except Exception as exc:       # the worker itself died (out of memory, killed)
                results.append({"index": j.index, "status": "failed", "rows": [], "error": f"{type(exc).__name__}: {exc}"})
        return results
    finally:
        if started:
            ray.shutdown()


def sweep(spec: str | Path | list[Job], out: str | Path = "results", backend: str = "local",
          address: str | None = None, workers: int | None = None, data_root=None) -> tuple[pd.DataFrame, list[dict]]:
    """Run every job of ``spec``; returns (all result rows, one outcome per job in spec order)."""
    jobs = load_spec(spec) if isinstance(spec, (str, Path)) else list(spec)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if backend == "local":
        outcomes = _run_local(jobs, out, data_root)
    elif backend == "ray":
        outcomes = _run_ray(jobs, out, data_root, address, workers)
    elif backend == "group":
        outcomes = _run_group(jobs, out, data_root)
    else:
        raise SpecError(f"--backend must be local, ray or group, got {backend!r}")
    outcomes.sort(key=lambda o: o["index"])
    rows = [r for o in outcomes for r in o["rows"]]
    return pd.DataFrame(rows), outcomes


class JobsFailed(RuntimeError):
    """Trainings of an ablation that did not finish, each named with its cause (one line at the CLI)."""


def run_training_jobs(jobs: list[Job], out: Path, backend: str = "local", address: str | None = None,
                      workers: int | None = None, data_root=None) -> None:
    """The trainings of an ablation as sweep jobs; every one must finish (a table with a variant missing
    would compare the wrong things), so failures are raised together, each with its cause."""
    _, outcomes = sweep(jobs, out, backend=backend, address=address, workers=workers, data_root=data_root)
    failed = [o for o in outcomes if o["status"] == "failed"]
    if failed:
        by_index = {j.index: j for j in jobs}
        raise JobsFailed("; ".join(f"{by_index[o['index']].describe()} failed: {o['error']}" for o in failed))


def report(jobs_outcomes: list[dict], jobs: list[Job] | None = None, stream=None) -> int:
    """Print one line per failed job and a count (to stderr); returns the number of failures."""
    stream = stream or sys.stderr
    by_index = {j.index: j for j in jobs or []}
    failed = [o for o in jobs_outcomes if o["status"] == "failed"]
    for o in failed:
        what = by_index[o["index"]].describe() if o["index"] in by_index else f"job {o['index']}"
        print(f"{what} failed: {o['error']}", file=stream)
    counts = {s: sum(o["status"] == s for o in jobs_outcomes) for s in ("done", "reused", "failed")}
    print(f"{len(jobs_outcomes)} jobs: {counts['done']} ran, {counts['reused']} reused from the ledger, "
          f"{counts['failed']} failed", file=stream)
    return len(failed)
