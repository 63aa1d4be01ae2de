"""One-shot GPU job for the baselines: train the width-only network or the static references with the
supernet's data, recipe and time budget, save their checkpoints, then time every level of every approach
(our library, the networks just trained and any ``--compare-with`` checkpoints) on this GPU in one run.

``--approach width-only``: one universally slimmable MobileNetV3 (sandwich rule + in-place distillation),
``--time-budget`` seconds of training. ``--approach static``: the ``--static-refs`` networks, plain
cross-entropy; with ``--split-budget`` (default) they share ``--time-budget`` evenly, so the family costs
as much training as one dynamic network; ``--no-split-budget`` gives each the whole budget.

Writes to ``--out``: ``<name>.pt`` per trained network (fp16), ``train_log_<name>.jsonl``, ``job.log``,
``results.json`` (rewritten after every step) and, when our library is present, ``compare_gpu.json`` /
``compare_gpu.md`` (GPU latency + test top-1 of every level; merge it into the CPU comparison with
``python -m experiments.compare --merge``). Every step is guarded like the supernet's GPU job.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from dynofa_ros.offline.calibrate import LIBRARY_N_CALIB
from dynofa_ros.offline.commands.options import val_size
from dynofa_ros.offline.commands.train import add_training_arguments, config_from_args
from dynofa_ros.offline.train import resolve_device
from dynofa_ros.supernet.library import default_library_path
from experiments.compare import GPU_PROFILE, markdown, run_comparison
from experiments.gpu_job import JobLog, Results, environment, load_job_data
from experiments.slimmable import (
    LAYOUTS,
    US_NETS_MIN_WIDTH,
    BaselineConfig,
    SlimmableNet,
    end_points_validator,
    save_baseline,
    train_elastic,
)
from experiments.static_refs import STATIC_REFS, static_configs


def planned_networks(args: argparse.Namespace) -> dict[str, tuple[BaselineConfig, float]]:
    """``{name: (config, training budget in seconds)}`` of the networks this job trains."""
    if args.approach == "static":
        configs = static_configs(args.static_refs, max(args.resolutions))
        share = args.time_budget / len(configs) if args.split_budget else args.time_budget
        return {name: (cfg, share) for name, cfg in configs.items()}
    cfg = BaselineConfig(args.layout, args.width_min, args.width_max, tuple(args.resolutions))
    short = args.layout.replace("mobilenet_v3_", "mbv3-")
    name = (f"us-{short}" + (f"-w{cfg.width_max:g}" if cfg.width_max != 1.0 else "")
            + ("-mutual" if len(cfg.resolutions) > 1 else ""))
    return {name: (cfg, args.time_budget)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.baseline_gpu_job",
                                     description=__doc__.splitlines()[0])
    add_training_arguments(parser)
    parser.set_defaults(time_budget=420.0, epochs=300, eval_every=10)
    parser.add_argument("--approach", choices=("width-only", "static"), required=True)
    parser.add_argument("--layout", choices=LAYOUTS, default="mobilenet_v3_large", help="width-only network")
    parser.add_argument("--width-min", type=float, default=US_NETS_MIN_WIDTH, help="smallest width (width-only)")
    parser.add_argument("--width-max", type=float, default=1.0, help="largest width (width-only; US-Nets: 1.0)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64],
                        help="input sizes; several = MutualNet-style width x resolution (width-only); "
                        "static networks use the largest (default: %(default)s)")
    parser.add_argument("--static-refs", nargs="+", default=list(STATIC_REFS), choices=sorted(STATIC_REFS),
                        metavar="NAME", help=f"static networks (default: all of {sorted(STATIC_REFS)})")
    parser.add_argument("--split-budget", action=argparse.BooleanOptionalAction, default=True,
                        help="static networks share --time-budget (default) or each get all of it")
    parser.add_argument("--out", type=Path, required=True, help="output folder ($OUT)")
    parser.add_argument("--library", type=Path, help="our library.json for the GPU comparison "
                        "(default: the shipped one; skipped when there is none)")
    parser.add_argument("--compare-with", type=Path, nargs="*", default=[], metavar="PT",
                        help="more baseline checkpoints (e.g. from an earlier run) to time in the comparison")
    parser.add_argument("--compare-warmup", type=int, default=10)
    parser.add_argument("--compare-repeats", type=int, default=50)
    parser.add_argument("--compare-rounds", type=int, default=5)
    parser.add_argument("--eval-limit", type=int, default=None, help="use only N val/test images (quick runs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.init is not None or args.resume_from is not None:
        raise SystemExit("--init and --resume-from are supernet options; the baseline job always trains from scratch")
    args.out.mkdir(parents=True, exist_ok=True)
    log = JobLog(args.out / "job.log")
    device = resolve_device(args.device)
    config = config_from_args(args)
    networks = planned_networks(args)
    res = Results(args.out / "results.json", env=environment(device),
                  args=json.loads(json.dumps(vars(args), default=str)),
                  networks={n: {"config": c.to_dict(), "budget_s": b} for n, (c, b) in networks.items()})
    log(f"dynofa baseline gpu job: {json.dumps(res.data['env'])}")
    log(f"args: {' '.join(sys.argv[1:] if argv is None else argv)}")
    res.save()
    torch.manual_seed(config.seed)
    data: dict[str, np.ndarray] = {}
    cifar = None

    with res.step("data", log):
        cifar = load_job_data(args, config.seed, data, res, log, test=False)

    checkpoints: list[Path] = []
    for name, (net_config, budget) in networks.items():
        with res.step(f"train {name}", log):
            model = SlimmableNet(net_config)
            validate = end_points_validator(torch.from_numpy(data["val_x"]).to(device),
                                            torch.from_numpy(data["val_y"]).to(device),
                                            torch.from_numpy(data["train_x"]).to(device), config.n_calib)
            train_config = config_from_args(argparse.Namespace(**{**vars(args), "time_budget": budget}))
            log_path = args.out / f"train_log_{name}.jsonl"
            log_path.unlink(missing_ok=True)
            result = train_elastic(model, data["train_x"], data["train_y"], train_config, device, log_fn=log,
                                   log_path=log_path, validate=validate)
            record = {"epochs": result.epochs, "steps": result.steps, "seconds": result.elapsed_s,
                      "budget_s": budget, "final": result.log[-1] if result.log else None,
                      "recipe": asdict(train_config), "device": res.data["env"]}
            res.data["networks"][name]["train"] = record
            checkpoints.append(save_baseline(args.out / f"{name}.pt", model, name, record))
            log(f"wrote {checkpoints[-1]} ({checkpoints[-1].stat().st_size / 2**20:.1f} MiB)")

    with res.step("compare", log):
        library = args.library or default_library_path()
        baselines = checkpoints + list(args.compare_with)
        result = run_comparison(library, baselines, [GPU_PROFILE] if device.type == "cuda" else ["cpu-1t"], cifar,
                                val_size(args, len(cifar.train_y)), config.seed, LIBRARY_N_CALIB, args.eval_limit, None,
                                args.compare_warmup, args.compare_repeats, args.compare_rounds, device)
        (args.out / "compare_gpu.json").write_text(json.dumps(result, indent=1))
        table = markdown(result)
        (args.out / "compare_gpu.md").write_text(table)
        log("\n" + table)

    return res.finish(log)


if __name__ == "__main__":
    raise SystemExit(main())
