"""Copy an experiment preset's finished runs from a run store into a folder of the repository, their
curves thinned to every EVERY-th step (attnlab.store.thin_copy), so that a preset spanning several
sessions loses no finished run. Curves stay whole when a claim of the experiment is fitted on them
(source: curves), since thinning would change its fit. A store adopts the copies as they are:

    python scripts/pack-runs.py arda2026 E4 paper results/runs docs/paper/arda2026/E4/runs [--every 50]
    python scripts/pack-runs.py wu2023 W5 paper STORE docs/paper/wu2023/W5/runs --device cuda   # GPU runs
    mkdir -p results/runs && cp -rn docs/paper/arda2026/E4/runs/. results/runs/   # to resume

Runs already in the destination are left as they are; prints how many of the preset's runs are packed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from attnlab.experiments.reproduce import experiment_configs, experiment_file
from attnlab.run import open_store
from attnlab.store import thin_copy


def kept_every(experiment, every: int) -> int:
    """The thinning pack uses: 1 (whole curves) when a claim of `experiment` is fitted on curves, else `every`."""
    return 1 if any(getattr(claim, "on_curves", False) for claim in experiment.claims) else every


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paper")
    parser.add_argument("experiment")
    parser.add_argument("preset")
    parser.add_argument("store", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--every", type=int, default=50,
                        help="keep the curves' rows of every EVERY-th step (all of them when a claim is fitted on curves)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="the device the runs were made on (part of their ids)")
    args = parser.parse_args()
    experiment = experiment_file(args.paper).experiments[args.experiment]
    every = kept_every(experiment, args.every)
    configs = [c for cs in experiment_configs(args.experiment, experiment, args.preset, args.device).values() for c in cs]
    store = open_store(args.store)
    packed = added = 0
    for config in configs:
        target = args.dest / store.run_id(config)
        if not target.exists() and store.is_complete(config):
            thin_copy(store.path(config), target, every)
            added += 1
        packed += target.exists()
    print(f"{args.paper} {args.experiment} ({args.preset}): {packed} of {len(configs)} runs packed in "
          f"{args.dest} ({added} new; curves {'whole' if every == 1 else f'every {every}th step'})")


if __name__ == "__main__":
    main()
