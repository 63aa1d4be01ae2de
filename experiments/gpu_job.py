"""The one-shot GPU job: decode CIFAR-10, train the supernet within a time budget, export it, then (with
``--levels-from LIBRARY``, first, as it is what ships) rebuild that library's levels with the new weights
(``library/``: ready to ship), evaluate as many subnets as a budget allows (val top-1, MACs, params), their batch-1
latency, and the test top-1 of the largest and smallest subnets (taken from the library step when it built the same
sub-network) beside their top-1 on as many training images fed without augmentation (how well the supernet fits its
data: the gap says whether to train longer or regularise).

Writes to ``--out`` (six files, each under the device machine's 16 MiB transfer limit): the training state,
rewritten after every epoch (``supernet.pt``: the shipped fp16 checkpoint; ``momentum.pt``, ``progress.json``:
what ``--resume-from`` needs to continue the run in a later call), ``train_log.jsonl`` (one record per
epoch), ``job.log`` (everything printed) and ``results.json`` (rewritten after every step, so a timeout
still leaves the results so far); with ``--levels-from``, ``library/`` (``library.json``, ``supernet.pt``,
``bn_stats.pt``, ``heads.pt``).
Every step is guarded: a failure is logged and recorded and the next step still runs (the measuring steps are
skipped when training left no checkpoint).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dynofa_ros.datasets.image_dataset import ImageDataset, load_dataset
from dynofa_ros.offline.bn_tuning import BnTuneConfig
from dynofa_ros.offline.calibrate import LIBRARY_N_CALIB
from dynofa_ros.offline.commands.options import val_size
from dynofa_ros.offline.commands.train import add_training_arguments, config_from_args
from dynofa_ros.offline.data import stratified_split, subset
from dynofa_ros.offline.evaluate import evaluate_arch, subnet_cost
from dynofa_ros.offline.library_build import LATENCY_NOISE, build_candidate, write_levels
from dynofa_ros.offline.profile import CPU_PROFILES
from dynofa_ros.offline.timing import Timing, cuda_sync, time_calls
from dynofa_ros.offline.train import initial_supernet, resolve_device, train_supernet
from dynofa_ros.offline.train_state import PROGRESS, WEIGHTS, load_train_state
from dynofa_ros.supernet.arch import SubnetArch
from dynofa_ros.supernet.checkpoint import load_supernet
from dynofa_ros.supernet.library import SubnetLibrary, sha256_file
from dynofa_ros.supernet.runtime import extract_subnet
from dynofa_ros.supernet.spec import SupernetSpec


class JobLog:
    """Prints with flush and appends the same line (time-stamped) to ``job.log``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        line = f"[{time.perf_counter() - self.start:7.1f}s] {message}"
        print(line, flush=True)
        with self.path.open("a") as f:
            f.write(line + "\n")


class Results:
    """The job's JSON record, rewritten atomically on every :meth:`save`."""

    def __init__(self, path: Path, **initial: Any) -> None:
        self.path, self.data = path, dict(initial, steps={})

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)

    @contextlib.contextmanager
    def step(self, name: str, log: JobLog) -> Iterator[None]:
        """Time a step, record ok/error (with the traceback in the log) and save; never re-raise."""
        log(f"== {name}")
        t0 = time.perf_counter()
        record = self.data["steps"][name] = {"status": "running"}
        self.save()
        try:
            yield
            record["status"] = "ok"
        except Exception as exc:  # every step is best effort: later steps must still run
            record.update(status="error", error=f"{type(exc).__name__}: {exc}")
            log(f"!! {name} failed:\n{traceback.format_exc()}")
        record["seconds"] = round(time.perf_counter() - t0, 2)
        log(f"== {name}: {record['status']} in {record['seconds']} s")
        self.save()

    def skip(self, name: str, reason: str, log: JobLog) -> None:
        """Record a step as skipped (it counts as not ok)."""
        self.data["steps"][name] = {"status": "skipped", "reason": reason}
        log(f"== {name}: skipped ({reason})")
        self.save()

    def finish(self, log: JobLog) -> int:
        """Log the total time and the failed steps; the job's exit code (1 if any step failed)."""
        failed = [name for name, step in self.data["steps"].items() if step["status"] != "ok"]
        log(f"done in {time.perf_counter() - log.start:.0f} s; failed steps: {failed or 'none'}")
        return 1 if failed else 0


def load_job_data(args: argparse.Namespace, seed: int, data: dict[str, np.ndarray], res: Results, log: JobLog,
                  test: bool = True) -> ImageDataset:
    """A job's ``data`` step: fill ``data`` with the train/val (and test) arrays, subsets as ``--max-train-images``
    and ``--eval-limit`` ask, and record their sizes; returns the whole data set."""
    cifar = load_dataset(args.data, args.cache_dir, progress=False)
    split = stratified_split(cifar.train_y, val_size(args, len(cifar.train_y)), seed)
    train_idx = subset(split.train, args.max_train_images, seed)
    val_idx = subset(split.val, args.eval_limit, seed)
    data.update(train_x=cifar.train_x[train_idx], train_y=cifar.train_y[train_idx],
                val_x=cifar.train_x[val_idx], val_y=cifar.train_y[val_idx])
    if test:
        test_idx = subset(np.arange(len(cifar.test_y)), args.eval_limit, seed)
        data.update(test_x=cifar.test_x[test_idx], test_y=cifar.test_y[test_idx])
    res.data["data"] = {k: len(v) for k, v in data.items() if k.endswith("_y")}
    log(f"data: {res.data['data']}")
    return cifar


def environment(device: torch.device) -> dict[str, Any]:
    """Python/torch versions and the accelerator's name."""
    env: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "device": str(device), "cpu_count": os.cpu_count(), "host": platform.node()}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    return env


def batch1_latency(net: nn.Module, resolution: int, device: torch.device, warmup: int = 10,
                   runs: int = 30) -> dict[str, float]:
    """Median and p90 seconds of ``runs`` batch-1 fp32 forward passes after ``warmup`` passes."""
    x = torch.randn(1, 3, resolution, resolution, device=device)
    with torch.inference_mode():
        timing = Timing.of(time_calls(lambda: net(x), warmup, runs, sync=cuda_sync(device)), warmup)
    return {"p50_s": timing.p50_s, "p90_s": timing.p90_s}


def candidate_archs(spec: SupernetSpec, n: int, seed: int) -> list[SubnetArch]:
    """Largest, smallest, then distinct seeded random subnets (``n`` in all)."""
    rng = random.Random(seed)
    archs = [SubnetArch.largest(spec), SubnetArch.smallest(spec)]
    seen = {a.canonical(spec) for a in archs}
    for _ in range(100 * n):
        if len(archs) >= n:
            break
        arch = SubnetArch.sample(spec, rng)
        if arch.canonical(spec) not in seen:
            seen.add(arch.canonical(spec))
            archs.append(arch)
    return archs[:n]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.gpu_job",
                                     description=__doc__.splitlines()[0])
    add_training_arguments(parser)
    parser.set_defaults(time_budget=390.0, epochs=300, eval_every=10)
    parser.add_argument("--out", type=Path, required=True, help="output folder ($OUT)")
    parser.add_argument("--eval-budget", type=float, default=60.0, help="seconds for subnet evaluation")
    parser.add_argument("--max-subnets", type=int, default=500, help="most subnets to evaluate")
    parser.add_argument("--subnet-seed", type=int, default=0)
    parser.add_argument("--latency-budget", type=float, default=35.0, help="seconds for batch-1 latency")
    parser.add_argument("--latency-warmup", type=int, default=10)
    parser.add_argument("--latency-runs", type=int, default=30)
    parser.add_argument("--eval-limit", type=int, default=None, help="use only N val/test images (quick runs)")
    parser.add_argument("--levels-from", type=Path, metavar="LIBRARY",
                        help="after training, rebuild this library's levels with the new weights, as `dynofa "
                        "build-library --levels-from` does (BN statistics, own BN scale/shift and heads, test top-1) "
                        "but keeping every latency record (the same sub-networks), into OUT/library/: a library "
                        "ready to ship when it beats this one")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    log = JobLog(args.out / "job.log")
    device = resolve_device(args.device)
    spec = SupernetSpec()
    res = Results(args.out / "results.json", env=environment(device),
                  args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                  spec=spec.to_dict())
    log(f"dynofa gpu job: {json.dumps(res.data['env'])}")
    log(f"args: {' '.join(sys.argv[1:])}")
    res.save()
    torch.manual_seed(config.seed)
    supernet = initial_supernet(spec, args.init).to(device)
    data: dict[str, np.ndarray] = {}

    with res.step("data", log):
        load_job_data(args, config.seed, data, res, log)

    with res.step("train", log):
        try:
            result = train_supernet(supernet, spec, data["train_x"], data["train_y"], data["val_x"],
                                    data["val_y"], config, args.out, device, resume_from=args.resume_from,
                                    log_fn=log, log_path=args.out / "train_log.jsonl")
            res.data["train"] = {"epochs": result.epochs, "steps": result.steps, "seconds": result.elapsed_s,
                                 "final": result.log[-1] if result.log else None}
        except Exception:
            if (args.out / PROGRESS).is_file():
                log(f"training failed; restoring the last completed epoch from {args.out}")
                load_train_state(args.out, supernet, spec)
            raise

    with res.step("export", log):
        path = args.out / WEIGHTS  # written with the training state after every epoch
        if not (args.out / PROGRESS).is_file():
            raise RuntimeError("no training epoch completed: there is no checkpoint to export")
        res.data["checkpoint"] = {"path": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}

    if res.data["steps"]["export"]["status"] != "ok":
        measuring = ("evaluate", "latency", "test")
        for name in measuring if args.levels_from is None else ("library", *measuring):  # nothing trained to use
            res.skip(name, "no trained checkpoint (see the train step)", log)
        return res.finish(log)

    if args.levels_from is not None:  # first: what ships, should a later step run out of the call's time
        with res.step("library", log):
            res.data["library"] = rebuild_levels(args.levels_from, data, device, args.out, log)

    candidates: list[dict[str, Any]] = res.data.setdefault("candidates", [])
    with res.step("evaluate", log):
        t0 = time.perf_counter()
        val_x, val_y = (torch.from_numpy(data[k]).to(device) for k in ("val_x", "val_y"))
        calib = torch.from_numpy(data["train_x"]).to(device)
        for arch in candidate_archs(spec, args.max_subnets, args.subnet_seed):
            if len(candidates) >= 2 and time.perf_counter() - t0 > args.eval_budget:
                break  # largest and smallest always get evaluated
            val_top1 = evaluate_arch(supernet, arch, val_x, val_y, calib, spec, config.n_calib)
            macs, params = subnet_cost(supernet, arch)
            candidates.append({"arch": arch.to_dict(), "val_top1": val_top1, "macs": macs, "params": params})
            log(f"subnet {len(candidates)}: res {arch.resolution} d {list(arch.d)} top1 {val_top1:.4f} "
                f"macs {macs / 1e6:.1f}M params {params / 1e6:.2f}M")
            res.save()

    with res.step("latency", log):
        t0 = time.perf_counter()
        res.data["latency_method"] = (f"extracted subnet, eval, fp32, batch 1, {device}, {args.latency_warmup} "
                                      f"warm-up, median/p90 of {args.latency_runs} (synchronised)")
        for cand in candidates:
            if time.perf_counter() - t0 > args.latency_budget:
                break
            arch = SubnetArch.from_dict(cand["arch"])
            net = extract_subnet(supernet, arch).to(device)
            cand["latency"] = batch1_latency(net, arch.resolution, device, args.latency_warmup, args.latency_runs)
            log(f"latency res {arch.resolution} macs {cand['macs'] / 1e6:.1f}M: "
                f"p50 {cand['latency']['p50_s'] * 1e3:.2f} ms p90 {cand['latency']['p90_s'] * 1e3:.2f} ms")
        res.save()

    with res.step("test", log):
        test_x, test_y = (torch.from_numpy(data[k]).to(device) for k in ("test_x", "test_y"))
        calib, calib_y = (torch.from_numpy(data[k]).to(device) for k in ("train_x", "train_y"))
        fit = subset(np.arange(len(data["train_y"])), len(test_y), config.seed)  # as many as the test images
        fit_x, fit_y = (torch.from_numpy(data[k][fit]).to(device) for k in ("train_x", "train_y"))
        n_calib, tune = level_settings(len(calib))  # as a library's levels (and their heads): comparable
        rebuilt = {SubnetArch.from_dict(r["arch"]): r for r in res.data.get("library", {}).get("levels", [])}
        res.data["test"] = {}
        for name, arch in (("largest", SubnetArch.largest(spec)), ("smallest", SubnetArch.smallest(spec))):
            train_top1 = evaluate_arch(supernet, arch, fit_x, fit_y, calib, spec, n_calib)  # the shared classifier
            level = rebuilt.get(arch)
            if level is not None:  # the library step built this very sub-network the same way: not twice
                test_top1, source = level["test_top1"], f"the library step's {level['source_level']}"
            else:
                test_top1 = evaluate_arch(supernet, arch, test_x, test_y, calib, spec, n_calib, head_labels=calib_y,
                                          tune=tune)
                source = "this step"
            res.data["test"][name] = {"arch": arch.to_dict(), "test_top1": test_top1, "images": len(test_y),
                                      "n_calib": n_calib, "heads": "fitted per subnet, as a library's levels",
                                      "bn_tuning": tune.note(len(calib)), "test_top1_from": source,
                                      "train_top1": train_top1, "train_classifier": "shared"}
            log(f"{name}: test top-1 {test_top1:.4f} (own BN scale/shift and head; {source}), training images (no "
                f"augmentation, shared classifier) {train_top1:.4f}")

    return res.finish(log)


def level_settings(n_train: int) -> tuple[int, BnTuneConfig]:
    """Calibration images and BN tuning of a level built from ``n_train`` training images, as `dynofa
    build-library`'s defaults: the library step and the test step use the same, so their figures are one."""
    return min(LIBRARY_N_CALIB, n_train), BnTuneConfig()


def rebuild_levels(source_path: Path, data: dict[str, np.ndarray], device: torch.device, out: Path,
                   log: JobLog) -> dict[str, Any]:
    """The job's ``library`` step: ``source_path``'s levels calibrated, tuned and tested with the exported weights
    (``out``'s checkpoint, as the library will hold them) as ``dynofa build-library`` does, written to
    ``out/library``; a record of each level's test top-1 beside the source library's."""
    supernet, spec = load_supernet(out / WEIGHTS)
    supernet = supernet.to(device)
    source = SubnetLibrary.load(source_path, verify=False)
    if source.spec != spec:
        raise ValueError(f"{source_path} belongs to another supernet spec than the one trained")
    primary = next(iter(CPU_PROFILES))
    if any(lv.latency_for(primary) is None for lv in source.levels):
        raise ValueError(f"{source_path}: every level needs a {primary} latency record to be ordered by")
    calib, calib_y, test_x, test_y = (torch.from_numpy(data[k]).to(device)
                                      for k in ("train_x", "train_y", "test_x", "test_y"))
    n_calib, tune = level_settings(len(calib))
    built, record = [], []
    for lv in source.levels:
        built.append(build_candidate(supernet, lv.arch, lv.latency, calib, n_calib, test_x, test_y, spec, calib_y,
                                     tune))
        top1 = built[-1].level.top1
        record.append({"source_level": lv.name, "arch": lv.arch.to_dict(), "test_top1": top1, "source_top1": lv.top1})
        log(f"{lv.name}: test top-1 {top1:.4f} (the source library's {lv.top1:.4f})")
    lib, dropped = write_levels(out / "library", source.name, out / WEIGHTS, source.spec, built, primary, n_calib,
                                len(calib), tune, True, len(test_y))
    log(f"wrote {out / 'library'}: {len(lib.levels)} levels ({dropped} dropped: not more accurate than one over "
        f"{LATENCY_NOISE:.0%} faster)")
    return {"dir": "library", "source": str(source_path), "levels": record, "kept": len(lib.levels),
            "images": len(test_y), "n_calib": n_calib, "bn_tuning": tune.note(len(calib))}


if __name__ == "__main__":
    raise SystemExit(main())
