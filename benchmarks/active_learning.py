"""Active learning against random sampling: labels each strategy needs to reach 95 % of the full-data accuracy.

An image-classification pool, a seed set of 20 random labels, batches of 10, the product's loop
(``modelyard.train.active_loop.simulate``: the quick model, the strategies, the 10 % random control arm in every
batch and the gain tracker's fallback) run once per strategy and seed. Random is the baseline; the strategies
carry the control arm as the product does. The full-data accuracy is the quick model trained on the whole pool;
the target is 95 % of it; "labels to target" is where the mean learning curve over seeds first reaches it (linear
between rounds). Anchor (scikit-learn digits, logistic regression on raw pixels, 5 seeds): random 160, margin 90
(-44 %), k-center 110, entropy 160. Goal: the default strategy needs >= 35 % fewer labels than random.

    python benchmarks/active_learning.py [--data DIR] [--seeds 5] [--budget 400] [--strategies margin,entropy,kcenter]

Default data: scikit-learn's digits written as 8x8 PNGs in class folders. ``--data DIR`` takes any image folder
(``class/*.png|jpg|bmp``). Images are found and decoded by the product's importer code (``modelyard.data.images``).
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ANCHOR = {"data": "scikit-learn digits", "random": 160, "margin": 90, "kcenter": 110, "entropy": 160,
          "saved_vs_random": 0.44}
GOAL_SAVED = 0.35


def write_digits(folder: Path) -> Path:
    """scikit-learn's 1,797 digits as 8x8 gray PNGs in ``folder/<digit>/<n>.png``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (image, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        target_dir = folder / str(target)
        target_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * (255 / 16)).round().astype(np.uint8)).save(target_dir / f"{index:04d}.png")
    return folder


def load_folder(folder: Path, max_images: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """Embeddings, class indices and class names of the decodable images in ``folder``, the product's way, and how
    many images the folder holds. With ``max_images`` a seeded sample of that many, in proportion to the classes
    (every round refits the model, so a pool of 10,000s would take hours)."""
    from modelyard.data import images
    from modelyard.data.image_features import FEATURE_SIZE, embed, image_features
    from modelyard.data.splits import stratified_split

    found, _notes = images.scan_folder(folder)
    total = len(found)
    if max_images and total > max_images:
        keep = stratified_split([item.label for item in found], total, max_images / total, seed=12345) == "v"
        found = [item for item, kept in zip(found, keep, strict=True) if kept]
    facts = [images.inspect_image(item.source) for item in found]
    usable = [(item, fact) for item, fact in zip(found, facts, strict=True) if not fact.get("error")]
    if len(usable) < 50:
        raise SystemExit(f"--data {folder}: {len(usable)} decodable image(s) in class folders; need at least 50")
    channels = 1 if images.is_grayscale([fact["mode"] for _, fact in usable]) else 3
    pixels = np.stack([images.decode_to_array(item.source.read_bytes(), FEATURE_SIZE, channels)
                       for item, _ in usable])
    classes = sorted({item.label for item, _ in usable})
    if len(classes) < 2:
        raise SystemExit(f"--data {folder}: one class folder only; need at least 2")
    index = {name: i for i, name in enumerate(classes)}
    return embed(image_features(pixels)), np.array([index[item.label] for item, _ in usable]), classes, total


def labels_to_target(curve: list[tuple[int, float]], target: float) -> float | None:
    """Labels at which ``curve`` first reaches ``target``, linear between its points (a batch of 10 would
    otherwise round every answer to 10 labels, coarse next to differences of 30-50); None: never."""
    for (n0, s0), (n1, s1) in zip(curve, curve[1:], strict=False):
        if s0 >= target:
            return float(n0)
        if s1 >= target:
            return round(n0 + (n1 - n0) * (target - s0) / (s1 - s0), 1)
    return float(curve[-1][0]) if curve and curve[-1][1] >= target else None


def area_under_curve(curve: list[tuple[int, float]]) -> float:
    """Mean accuracy over the label range (trapezoids divided by the range), 0..1."""
    xs = np.array([c[0] for c in curve], dtype=float)
    ys = np.array([c[1] for c in curve], dtype=float)
    return float(((ys[1:] + ys[:-1]) / 2 * np.diff(xs)).sum() / (xs[-1] - xs[0]))


def main(argv: list[str] | None = None) -> dict:
    from modelyard.data.active_learning import DEFAULT_STRATEGY
    from modelyard.data.splits import stratified_split
    from modelyard.train.active_loop import QUICK_MODEL, GainSettings, QuickModel, simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an image folder (class/*.png); default: scikit-learn digits")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-size", type=int, default=20)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--budget", type=int, default=None,
                        help="labels per campaign (default: per seed, twice what random needs to reach the target, "
                             "at most the pool)")
    parser.add_argument("--heldout", type=float, default=0.3, help="share of items held out for scoring")
    parser.add_argument("--strategies", default="margin,entropy,kcenter")
    parser.add_argument("--control", type=float, default=0.1, help="control-arm share of each batch")
    parser.add_argument("--max-images", type=int, default=3000,
                        help="use a seeded, class-proportional sample of at most this many images (0: all)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    started = time.monotonic()
    from threadpoolctl import threadpool_limits

    with tempfile.TemporaryDirectory(prefix="modelyard-al-bench-") as scratch, threadpool_limits(limits=1):
        folder = Path(args.data).expanduser() if args.data else write_digits(Path(scratch) / "digits")
        if not folder.is_dir():
            raise SystemExit(f"--data {folder}: not a folder")
        embeddings, labels, classes, found = load_folder(folder, args.max_images)
    n_classes = len(classes)
    curves: dict[str, list[list[tuple[int, float]]]] = {name: [] for name in ["random", *strategies]}
    fallbacks = {name: 0 for name in strategies}
    full_scores, targets, budgets = [], [], []
    splits = []
    for seed in range(args.seeds):
        side = stratified_split(labels.tolist(), len(labels), args.heldout, seed)
        pool, heldout = np.flatnonzero(side == "t"), np.flatnonzero(side == "v")
        splits.append((pool, heldout))
        full = QuickModel(n_classes, seed).fit(embeddings[pool], labels[pool]).score(embeddings[heldout],
                                                                                     labels[heldout])
        full_scores.append(full)
        targets.append(0.95 * full)
        if not args.budget:  # a range that holds random's whole climb to the target and as much again
            probe = simulate(embeddings, labels, pool, heldout, "random", n_classes=n_classes, seed=seed,
                             seed_size=args.seed_size, batch_size=args.batch, budget=len(pool),
                             gain=GainSettings(control_fraction=0.0, enabled=False), stop_at=0.95 * full)
            budgets.append(min(len(pool), args.seed_size + 2 * (probe.curve[-1][0] - args.seed_size)))
    # one budget for every seed, so the mean curves cover the same range
    budget = min(args.budget or max(budgets), min(len(pool) for pool, _ in splits))
    for seed, (pool, heldout) in enumerate(splits):
        for name in curves:
            gain = (GainSettings(control_fraction=0.0, enabled=False) if name == "random"
                    else GainSettings(control_fraction=args.control))
            result = simulate(embeddings, labels, pool, heldout, name, n_classes=n_classes, seed=seed,
                              seed_size=args.seed_size, batch_size=args.batch, budget=budget, gain=gain)
            curves[name].append(list(result.curve))
            if name in fallbacks and result.verdict.fallback:
                fallbacks[name] += 1
        print(f"seed {seed}: full-data accuracy {full_scores[seed]:.4f}; labels to 95 %: " + ", ".join(
            f"{name} {labels_to_target(curves[name][-1], targets[seed])}" for name in curves), file=sys.stderr,
            flush=True)
    target = 0.95 * float(np.mean(full_scores))
    summary: dict[str, dict] = {"labels_to_target": {}, "per_seed": {}, "seed_mean": {}, "aulc": {},
                                "mean_curve": {}}
    for name, runs in curves.items():
        length = min(len(c) for c in runs)
        mean_curve = [(runs[0][i][0], float(np.mean([c[i][1] for c in runs]))) for i in range(length)]
        summary["mean_curve"][name] = [[n, round(s, 4)] for n, s in mean_curve]
        summary["labels_to_target"][name] = labels_to_target(mean_curve, target)
        summary["per_seed"][name] = [labels_to_target(c, t) for c, t in zip(runs, targets, strict=True)]
        reached = [n for n in summary["per_seed"][name] if n is not None]
        summary["seed_mean"][name] = round(float(np.mean(reached)), 1) if len(reached) == len(runs) else None
        summary["aulc"][name] = round(area_under_curve(mean_curve), 4)
    default = DEFAULT_STRATEGY if DEFAULT_STRATEGY in strategies else strategies[0]
    random_labels = summary["labels_to_target"]["random"]
    default_labels = summary["labels_to_target"][default]
    saved = (round(1 - default_labels / random_labels, 4)
             if random_labels is not None and default_labels is not None else None)
    report = {
        "schema": "modelyard.bench-active-learning/1",
        "data": str(args.data) if args.data else "scikit-learn digits (8x8 PNGs)",
        "items": int(len(labels)),
        "images_in_folder": found,
        "classes": n_classes,
        "pool": int(len(labels) - len(heldout)),
        "heldout": int(len(heldout)),
        "seeds": args.seeds,
        "seed_size": args.seed_size,
        "batch": args.batch,
        "budget": budget,
        "control_fraction": args.control,
        "quick_model": QUICK_MODEL,
        "full_data_score": round(float(np.mean(full_scores)), 4),
        "target": round(target, 4),
        "labels_to_target": summary["labels_to_target"],
        "labels_to_target_per_seed": summary["per_seed"],
        "labels_to_target_seed_mean": summary["seed_mean"],
        "aulc": summary["aulc"],
        "fallbacks": fallbacks,
        "default": default,
        "saved_vs_random": saved,
        "saved_by_strategy": {name: (round(1 - summary["labels_to_target"][name] / random_labels, 4)
                                     if random_labels and summary["labels_to_target"][name] else None)
                              for name in strategies},
        "goal_saved": GOAL_SAVED,
        "meets_goal": saved is not None and saved >= GOAL_SAVED,
        "anchor": ANCHOR,
        "mean_curve": summary["mean_curve"],
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
