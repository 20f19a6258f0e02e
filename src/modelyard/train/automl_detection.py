"""Detection AutoML: CenterNet-style detectors (``train.detectors``) searched over width, depth, input size,
augmentation and learning rate under a time budget, scored by validation mAP, exported to ONNX with the decoding
inside.

How a search runs:

1. The input sizes tried are ``input_size`` when given, else the dataset's median image side and three quarters of
   it (multiples of 32, 64..320). Training images are letterboxed once, at the largest size, and resampled to a
   candidate's size by its augmentation; validation images are letterboxed to each size as needed.
2. Every contender's architecture (width, depth, size) is exported to ONNX with its decoding and timed on
   onnxruntime (batch 1, one thread: ``train.latency``) *before* it trains; one over ``max_latency_ms`` is rejected
   at the cost of an export, not a training run.
3. Accepted contenders train for an equal slice of ``SEARCH_SHARE`` of the budget and are scored by mAP on (up to
   ``VALIDATION_SUBSET`` images of) the validation split. Optuna's TPE proposes the next after known-good starting
   points. On a machine too slow for a slice to say anything (a contender under ``INFORMATIVE_STEPS`` steps, or
   the best under ``NOISE_FLOOR`` mAP), the search stops and keeps the first, default contender.
4. The best contender keeps training from its weights for the rest of the budget (a new one-cycle schedule), with
   validation mAP a few times along the way and the best weights kept; it is exported and re-timed.

With ``max_trials`` the search is step-bounded (at most that many contenders of ``CANDIDATE_EPOCHS`` passes, the
winner ``FINAL_EPOCHS`` more, on one thread), so the same data and seed give the same model however busy the
machine is, unless the budget is reached first.
"""

from __future__ import annotations

import copy
import io
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated
from modelyard.train.automl_image import ImageSearchResult
from modelyard.train.latency import measure_latency


@dataclass(frozen=True)
class DetectionSearchResult(ImageSearchResult):
    """The image search's result (same fields, so the ``automl.train`` job treats both alike) for a detector."""

    def __str__(self) -> str:
        w = self.winner
        return (f"centernet {w['params']} ({w['parameters']:,} parameters) mAP50 {w['map50']:.4f} mAP50-95 "
                f"{w['map50_95']:.4f} latency p95 {self.latency['p95_ms']:.3f} ms after {self.trials} contenders and "
                f"{self.epochs:.1f} final epochs in {self.seconds:.1f}s")

SEARCH_SHARE = 0.3
# the final validation, export and timing: at least this, or this share of the budget (they slow down under load)
EXPORT_RESERVE_S = 8.0
EXPORT_RESERVE_SHARE = 0.04
VALIDATION_SUBSET = 500
FINAL_EVALUATIONS = 6  # validation passes during the winner's training (each costs about one epoch's forward)
CANDIDATE_EPOCHS = 3
FINAL_EPOCHS = 12
MIN_CANDIDATE_STEPS = 20
MIN_FINAL_STEPS = 40
METRICS = ("map50_95", "map50")
# a contender trained fewer steps than this, or scoring below NOISE_FLOOR, says little about how it ends up (early
# on, the smallest network always leads): the search then stops and keeps the first (default) contender
INFORMATIVE_STEPS = 100
NOISE_FLOOR = 0.05
WIDTHS = (8, 12, 16, 24, 32)
MAX_SEARCHED_SIDE = 320
STARTING_POINTS = [
    {"width": 16, "depth": 1, "size_rank": 0, "augment": "scale+flip+color", "lr": 4e-3},
    # no mosaic among the starting points: on the synthetic shapes it trailed scale+flip+color at every checkpoint
    # of 1,400 steps (mAP50-95 0.638 vs 0.672 after 25 epochs); the sampler may still pick it
    {"width": 24, "depth": 1, "size_rank": 0, "augment": "scale+flip+color", "lr": 3e-3},
    {"width": 12, "depth": 1, "size_rank": 1, "augment": "scale+flip", "lr": 5e-3},
    {"width": 16, "depth": 2, "size_rank": 0, "augment": "flip", "lr": 4e-3},
]


def input_sizes(median_side: float, fixed: int | None = None) -> tuple[int, ...]:
    """The input sides a search tries, largest first: ``fixed`` alone, else the median image side and 3/4 of it,
    rounded to multiples of 32 within 64..``MAX_SEARCHED_SIDE`` (a CPU trains a 320 px detector about six times
    slower than a 128 px one; larger inputs are for ``--input-size``)."""
    if fixed is not None:
        if fixed % 16 or not 32 <= fixed <= 1024:
            raise InvalidInput(f"input size {fixed}: must be a multiple of 16 between 32 and 1024")
        return (fixed,)

    def snap(side: float) -> int:
        return int(min(MAX_SEARCHED_SIDE, max(64, round(side / 32.0) * 32)))

    return tuple(sorted({snap(median_side), snap(median_side * 0.75)}, reverse=True))


def _image_rgb(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def load_detection_split(store, version) -> tuple[tuple[str, ...], list, list, list, list]:
    """``(classes, train_images, train_items, val_images, val_items)`` of an ``object-detection`` version: the
    manifest's entries (``path, digest, split, width, height, boxes``) decoded to RGB arrays, broken entries
    skipped (the dataset check blocks training on them)."""
    if version.kind != "object-detection":
        raise InvalidInput(f"{version.ref} is a {version.kind} dataset, not an object-detection one")
    classes = tuple(version.schema["classes"])
    parts: dict[str, tuple[list, list]] = {"t": ([], []), "v": ([], [])}
    for entry in store.manifest(version)["entries"]:
        if entry.get("error"):
            continue
        split = {"train": "t", "validation": "v"}.get(entry.get("split"), entry.get("split"))
        if split not in parts:
            continue
        parts[split][0].append(_image_rgb(store.blobs.read_bytes(entry["digest"])))
        parts[split][1].append(Annotated.from_entry(entry["path"], entry))
    return classes, parts["t"][0], parts["t"][1], parts["v"][0], parts["v"][1]


def search_detection(store, version, **kwargs) -> DetectionSearchResult:
    """Search on a dataset version (its fixed train/validation split); keyword arguments as
    :func:`search_detection_arrays`."""
    progress = kwargs.get("progress")
    if progress:
        progress(0.01, f"decoding the images of {version.ref}")
    started = time.monotonic()
    classes, train_images, train_items, val_images, val_items = load_detection_split(store, version)
    kwargs["time_budget_s"] = kwargs["time_budget_s"] - (time.monotonic() - started)
    if kwargs["time_budget_s"] <= 1:
        raise InvalidInput("the time budget was used up decoding the images; give a larger budget")
    return search_detection_arrays(train_images, train_items, val_images, val_items, classes, **kwargs)


def _threads(steady: bool, data, n_classes: int) -> int:
    """One thread for a step-bounded search (float sums must not depend on the load); else one or every core,
    whichever trains faster right now: on a machine shared with other work, threads fighting for busy cores can be
    several times slower than one (measured: 6x on two loaded cores)."""
    import torch

    from modelyard.train.detectors.augment import augment_batch
    from modelyard.train.detectors.network import STRIDE, build_detector
    from modelyard.train.detectors.targets import detection_loss

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    candidates = [1] if steady or (usable or 1) <= 1 else [1, int(usable)]
    if len(candidates) == 1:
        torch.set_num_threads(1)
        return 1
    model = build_detector(n_classes, 16, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    images, boxes = torch.from_numpy(data.images[:16]), torch.from_numpy(data.boxes[:16])
    timings: dict[int, float] = {}
    for threads in candidates * 2:  # twice, interleaved: the first round also warms oneDNN up
        torch.set_num_threads(threads)
        began = time.perf_counter()
        for _ in range(2):
            x, b = augment_batch(images, boxes, data.size, "flip", generator)
            optimizer.zero_grad(set_to_none=True)
            detection_loss(model(x), b, STRIDE)[0].backward()
            optimizer.step()
        timings[threads] = time.perf_counter() - began
    best = min(timings, key=timings.get)
    torch.set_num_threads(best)
    return best


def search_detection_arrays(train_images: Sequence[np.ndarray], train_items: Sequence[Annotated],
                            val_images: Sequence[np.ndarray], val_items: Sequence[Annotated],
                            classes: Sequence[str], *, time_budget_s: float, max_trials: int | None = None,
                            max_latency_ms: float | None = None, metric: str | None = None,
                            input_size: int | None = None, backbone: str | None = None, seed: int = 0,
                            progress=None, log=None, cancelled=None, on_trial=None) -> DetectionSearchResult:
    """Search on images (uint8 ``(H, W, 3)`` RGB) and their labels (same order).

    Args:
        classes: the class list; its order is the ``classes`` output's index.
        time_budget_s: wall clock for everything (search, winner's training, export).
        max_trials: at most this many contenders, on a step-bounded schedule (see the module docstring).
        max_latency_ms: reject contenders whose batch-1 p95 latency on onnxruntime is over this.
        metric: ``map50_95`` (default, COCO's primary metric) or ``map50``.
        input_size: fix the input side (a multiple of 16); default: searched.
        backbone: a local safetensors file with backbone weights to start every contender from; its width and
            depth then fix the architecture (the file must fit it).
    """
    import optuna
    import torch

    from modelyard.train.detectors.augment import POLICIES
    from modelyard.train.detectors.export import detector_metadata, export_detector
    from modelyard.train.detectors.network import TOP_K, build_detector, load_backbone, parameter_count
    from modelyard.train.detectors.training import evaluate_map, prepare, train_detector

    started = time.monotonic()
    metric = metric or "map50_95"
    if metric not in METRICS:
        raise InvalidInput(f"metric {metric!r}: detection AutoML optimises {' or '.join(METRICS)}")
    if not train_items or not val_items:
        raise InvalidInput("detection AutoML needs images in both the train and validation splits")
    for split, items in (("train", train_items), ("validation", val_items)):
        if not any(item.boxes for item in items):  # no box to learn from, or no mAP to select by
            raise InvalidInput(f"detection AutoML needs labeled boxes in the {split} split; it has none")
    classes = tuple(classes)
    note = log or (lambda _m: None)
    sides = [max(item.width, item.height) for item in train_items if item.width and item.height]
    sizes = input_sizes(float(np.median(sides)) if sides else 256.0, input_size)
    fixed_arch = _backbone_architecture(backbone, len(classes)) if backbone else None
    if progress:
        progress(0.02, f"letterboxing {len(train_items)} training images to {sizes[0]} px")
    train_data = prepare(train_images, train_items, classes, sizes[0])
    threads = _threads(max_trials is not None, train_data, len(classes))
    note(f"training on {threads} thread(s); {len(train_items)} train / {len(val_items)} validation images, "
         f"{len(classes)} classes, input sizes {list(sizes)}" + (f", backbone {fixed_arch}" if fixed_arch else ""))
    rng = np.random.default_rng(seed)
    val_pick = sorted(rng.permutation(len(val_items))[:VALIDATION_SUBSET])
    val_cache: dict[int, tuple] = {}

    def validation(size: int, subset: bool = True):
        key = (size, subset)
        if key not in val_cache:
            chosen = val_pick if subset else range(len(val_items))
            items = [val_items[i] for i in chosen]
            val_cache[key] = (prepare([val_images[i] for i in chosen], items, classes, size), items)
        return val_cache[key]

    def score(model, size: int, subset: bool = True) -> dict:
        data, items = validation(size, subset)
        return evaluate_map(model, data, items, classes)

    def build(params: dict):
        torch.manual_seed(seed)
        model = build_detector(len(classes), params["width"], params["depth"])
        if backbone:
            load_backbone(model, backbone)
        return model

    def metadata(params: dict, size: int) -> dict:
        return detector_metadata(classes, size, TOP_K, {"architecture": {"family": "centernet",
                                                                          "width": params["width"],
                                                                          "depth": params["depth"]}})

    latency_cache: dict[tuple, dict] = {}

    def latency_of(params: dict, size: int) -> dict:
        key = (params["width"], params["depth"], size)
        if key not in latency_cache:
            probe = build_detector(len(classes), params["width"], params["depth"])
            sample = {"image": np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)}
            latency_cache[key] = measure_latency(export_detector(probe, size, metadata(params, size)), sample)
        return latency_cache[key]

    final_deadline = started + time_budget_s - max(EXPORT_RESERVE_S, EXPORT_RESERVE_SHARE * time_budget_s)
    search_deadline = started + time_budget_s * SEARCH_SHARE
    per_epoch = max(1, len(train_data) // 32)
    candidate_steps = max(MIN_CANDIDATE_STEPS, CANDIDATE_EPOCHS * per_epoch)
    final_steps = max(MIN_FINAL_STEPS, FINAL_EPOCHS * per_epoch)
    planned = 5 if max_trials is None else max_trials
    board: list[dict] = []
    weights: dict[int, dict] = {}
    state = {"stop": "time budget"}
    if max_trials is not None:
        note(f"step-bounded search: at most {max_trials} contender(s) of {candidate_steps} steps, the winner "
             f"{final_steps} more")

    def objective(trial) -> float:
        if fixed_arch:
            width, depth = fixed_arch
        else:
            width = trial.suggest_categorical("width", list(WIDTHS))
            depth = trial.suggest_int("depth", 1, 2)
        rank = trial.suggest_int("size_rank", 0, len(sizes) - 1)
        params = {"width": width, "depth": depth, "size": sizes[min(rank, len(sizes) - 1)],
                  "augment": trial.suggest_categorical("augment", list(POLICIES)),
                  "lr": trial.suggest_float("lr", 1e-3, 8e-3, log=True)}
        entry = {"trial": trial.number, "family": "centernet", "params": params, "score": None, "latency_ms": None,
                 "accepted": None}
        board.append(entry)
        latency = latency_of(params, params["size"])
        entry["latency_ms"], entry["latency_p50_ms"] = latency["p95_ms"], latency["p50_ms"]
        entry["accepted"] = max_latency_ms is None or latency["p95_ms"] <= max_latency_ms
        if not entry["accepted"]:
            note(f"contender {trial.number} {params}: latency p95 {latency['p95_ms']:.3f} ms over the limit; "
                 "rejected before training")
            if on_trial:
                on_trial(entry)
            return -1.0
        model = build(params)
        entry["parameters"] = parameter_count(model)
        slice_s = max(1.0, (search_deadline - time.monotonic()) / max(1, planned - trial.number))
        if max_trials is not None:
            slice_s = max(1.0, final_deadline - time.monotonic())
        began = time.monotonic()
        run = train_detector(model, train_data, size=params["size"], policy=params["augment"], lr=params["lr"],
                             seconds=slice_s, steps=None if max_trials is None else candidate_steps,
                             seed=seed + trial.number, cancelled=cancelled)
        entry["steps"] = run["steps"]
        found = score(model, params["size"])
        entry["score"] = round(found[metric], 6)
        entry["map50"], entry["map50_95"] = round(found["map50"], 6), round(found["map50_95"], 6)
        weights[trial.number] = copy.deepcopy(model.state_dict())
        note(f"contender {trial.number} {params} ({entry['parameters']:,} parameters): mAP50 {found['map50']:.4f}, "
             f"mAP50-95 {found['map50_95']:.4f} after {time.monotonic() - began:.1f}s, latency p95 "
             f"{latency['p95_ms']:.3f} ms")
        if on_trial:
            on_trial(entry)
        if progress:
            progress(min(0.3, 0.3 * (time.monotonic() - started) / max(1e-9, search_deadline - started)),
                     f"contender {trial.number}: {metric} {entry['score']:.4f}")
        return entry["score"]

    def stop(study, _trial) -> None:
        if cancelled and cancelled():
            state["stop"] = "cancelled"
            study.stop()
        elif max_trials is None and time.monotonic() >= search_deadline - 1.0:
            study.stop()
        elif max_trials is None and board and board[-1].get("steps", INFORMATIVE_STEPS) < INFORMATIVE_STEPS:
            state["uninformative"] = True  # the machine is too slow for a time slice to rank contenders
            study.stop()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=seed,
                                                                       n_startup_trials=len(STARTING_POINTS)))
        for point in STARTING_POINTS:
            study.enqueue_trial({k: v for k, v in point.items() if not fixed_arch or k not in ("width", "depth")})
        timeout = None if max_trials is not None else max(0.5, search_deadline - time.monotonic())
        study.optimize(objective, n_trials=max_trials, timeout=timeout, callbacks=[stop])
    if state["stop"] == "time budget" and max_trials is not None and len(board) >= max_trials:
        state["stop"] = f"max trials ({max_trials})"
    scored = [e for e in board if e["accepted"] and e["score"] is not None]
    if not scored:
        measured = [e for e in board if e["latency_ms"] is not None]
        if max_latency_ms is not None and measured and not any(e["accepted"] for e in board):
            fastest = min(measured, key=lambda e: e["latency_ms"])
            raise InvalidInput(f"max latency {max_latency_ms} ms: no detector met it (fastest: {fastest['params']} "
                               f"at {fastest['latency_ms']:.3f} ms p95)")
        raise InvalidInput(f"the time budget of {time_budget_s:.0f}s was too short to train one contender")
    best = max(scored, key=lambda e: e["score"])
    if max_trials is None and (best["score"] < NOISE_FLOOR or state.get("uninformative")):
        best = scored[0]
        note(f"the contenders trained too few steps to rank them (best {metric} {max(e['score'] for e in scored):.4f}, "
             f"{min(e.get('steps', 0) for e in scored)} steps); keeping the default contender {best['params']}")
    params = best["params"]
    model = build(params)
    model.load_state_dict(weights[best["trial"]])
    kept = {"score": best["score"], "state": copy.deepcopy(model.state_dict()), "epochs": 0.0}
    seconds = final_deadline - time.monotonic()
    note(f"training the winner {params} further from its weights for "
         + (f"{final_steps} steps" if max_trials is not None else f"{seconds:.0f}s"))
    evaluations = {"next": 1.0 / FINAL_EVALUATIONS}
    epochs_planned = final_steps / per_epoch
    final_began = time.monotonic()

    def on_epoch(epochs: float) -> None:
        fraction = ((time.monotonic() - final_began) / max(1e-9, seconds) if max_trials is None
                    else epochs / max(1e-9, epochs_planned))
        if fraction < evaluations["next"]:
            return
        evaluations["next"] = fraction + 1.0 / FINAL_EVALUATIONS
        found = score(model, params["size"])
        note(f"epoch {epochs:.1f}: validation mAP50 {found['map50']:.4f}, mAP50-95 {found['map50_95']:.4f}")
        if on_trial:
            on_trial({"trial": 1000 + int(epochs), "family": "centernet-final", "params": params,
                      "score": round(found[metric], 6), "latency_ms": None, "accepted": True})
        if progress:
            progress(min(0.95, 0.3 + 0.65 * fraction), f"epoch {epochs:.1f}: {metric} {found[metric]:.4f}")
        if found[metric] > kept["score"]:
            kept.update(score=found[metric], state=copy.deepcopy(model.state_dict()), epochs=epochs, found=found)

    run = {"epochs": 0.0}
    if seconds > 2 and not (cancelled and cancelled()):
        run = train_detector(model, train_data, size=params["size"], policy=params["augment"], lr=params["lr"],
                             seconds=seconds, steps=None if max_trials is None else final_steps, seed=seed,
                             cancelled=cancelled, on_epoch=on_epoch)
        found = score(model, params["size"])
        if found[metric] >= kept["score"]:
            kept.update(score=found[metric], state=copy.deepcopy(model.state_dict()), epochs=run["epochs"],
                        found=found)
        model.load_state_dict(kept["state"])
    if cancelled and cancelled():
        state["stop"] = "cancelled"
    elif max_trials is None:
        early = final_deadline - time.monotonic()
        state["stop"] = ("time budget" if early <= max(2.0, 0.05 * time_budget_s) else
                         f"the winner's training schedule finished, {early:.0f}s before the time budget")
    # the validation subset is the whole split when the split is small: no second pass over it
    full = (kept["found"] if "found" in kept and len(val_items) <= VALIDATION_SUBSET
            else score(model, params["size"], subset=False))
    model_bytes = export_detector(model, params["size"], metadata(params, params["size"]))
    latency = measure_latency(model_bytes, {"image": validation(params["size"])[0].images[:1].astype(np.float32)
                                            / 255.0})
    final = {"trial": -1, "family": "centernet",
             "params": {**params, "epochs": round(run["epochs"], 2)},
             "score": round(full[metric], 6), "map50": round(full["map50"], 6), "map50_95": round(full["map50_95"], 6),
             "per_class": full["per_class"], "parameters": parameter_count(model),
             "latency_ms": latency["p95_ms"], "latency_p50_ms": latency["p50_ms"],
             "accepted": max_latency_ms is None or latency["p95_ms"] <= max_latency_ms}
    if not final["accepted"]:  # the same architecture was measured before; only timing noise gets here
        raise InvalidInput(f"the trained detector measured {latency['p95_ms']:.3f} ms p95, over the limit of "
                           f"{max_latency_ms} ms (the machine is busier than during the search); try again")
    leaderboard = [final] + sorted(board, key=lambda e: (e["accepted"] is not False, e["score"] or -1.0),
                                   reverse=True)
    size = params["size"]
    preprocessing = {"input": "image", "size": [size, size], "scale": 1 / 255.0, "mean": [0.0] * 3, "std": [1.0] * 3,
                     "layout": "NCHW"}
    return DetectionSearchResult(
        task="detection", metric=metric, higher_is_better=True, classes=classes, winner=final,
        leaderboard=tuple(leaderboard), onnx=model_bytes, latency=latency, preprocessing=preprocessing,
        trials=len(board), seconds=time.monotonic() - started, stop_reason=state["stop"], refitted=False,
        epochs=math.floor(run["epochs"] * 100) / 100)


def _backbone_architecture(path: str, n_classes: int) -> tuple[int, int]:
    """The ``(width, depth)`` a backbone file was saved from, read from its tensors' names and shapes."""
    from safetensors import safe_open

    from modelyard.train.detectors.network import build_detector

    try:
        with safe_open(str(path), framework="pt") as handle:
            shapes = {k.removeprefix("backbone."): tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118 - safe_open is no dict
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise InvalidInput(f"pretrained backbone {path}: not a readable safetensors file ({exc})") from None
    # the stem's first conv is (width, 3, 3, 3); stage4 holds one stride-2 conv and `depth` residual blocks
    stem = shapes.get("stem.0.weight", ())
    width = int(stem[0]) if len(stem) == 4 else 0
    depth = len({k.split(".")[1] for k in shapes if k.startswith("stage4.")}) - 1
    if width > 0 and depth > 0:
        expected = build_detector(n_classes, width, depth).backbone.state_dict()
        if set(expected) == set(shapes) and all(tuple(v.shape) == shapes[k] for k, v in expected.items()):
            return width, depth
    raise InvalidInput(f"pretrained backbone {path}: its tensors fit no detector of this family (save one with "
                       "train.detectors.network.save_backbone)")
