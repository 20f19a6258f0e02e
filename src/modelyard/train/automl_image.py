"""Image-classification AutoML: small CNNs trained from scratch on the CPU (no pretrained weights), searched over
width, depth, learning rate and augmentation under a time budget, exported to ONNX.

How a search runs:

1. The input size is the dataset's median image side (16..64 px, a multiple of 4); channels are 1 when every image
   is grayscale. Normalisation (the training set's mean/std) is part of the network, so the served model takes
   pixels scaled to 0..1.
2. Each candidate architecture is exported to ONNX and timed on onnxruntime (batch 1) *before* it is trained:
   latency depends on the architecture, not the weights, so an architecture over ``max_latency_ms`` costs a
   second, not a training run.
3. Accepted candidates train for a short, equal slice of the search budget on a subset of the training split
   (one-cycle learning rate, AdamW, label smoothing) and are scored on the validation split. Optuna's TPE sampler
   proposes the next candidate after a few known-good starting points.
4. The best candidate trains on the whole training split for the rest of the budget (one-cycle planned to end at
   the deadline, validation after each epoch, the best epoch kept), is exported and re-timed.

With ``max_trials`` the search is step-bounded instead: at most that many candidates, each trained for a fixed
number of steps (``CANDIDATE_EPOCHS`` over the search subset, at least ``MIN_CANDIDATE_STEPS``), and the winner for
``FINAL_EPOCHS`` over the training split (at least ``MIN_FINAL_STEPS``) on one thread. The time budget
still stops it if reached first; when it is not, the same data and seed give the same model on a busy machine as on
an idle one.
"""

from __future__ import annotations

import io
import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.train import metrics as m
from modelyard.train.latency import measure_latency

SEARCH_SHARE = 0.3  # of the budget for comparing candidates; the rest trains the winner
EXPORT_RESERVE_S = 4.0
SEARCH_SUBSET = 12_000
VALIDATION_SUBSET = 3_000
BATCH = 128
# the step-bounded schedule of a search with max_trials (sized so a candidate costs about what a time slice does)
CANDIDATE_EPOCHS = 2
MIN_CANDIDATE_STEPS = 30
FINAL_EPOCHS = 8
MIN_FINAL_STEPS = 60
STARTING_POINTS = [
    {"width": 16, "depth": 3, "lr": 3e-3, "augment": "affine"},
    {"width": 32, "depth": 3, "lr": 2e-3, "augment": "affine"},
    {"width": 16, "depth": 2, "lr": 3e-3, "augment": "none"},
    {"width": 24, "depth": 3, "lr": 3e-3, "augment": "affine+flip"},
]


@dataclass(frozen=True)
class ImageSearchResult:
    task: str
    metric: str
    higher_is_better: bool
    classes: tuple[str, ...]
    winner: dict
    leaderboard: tuple[dict, ...]
    onnx: bytes = field(repr=False)
    latency: dict
    preprocessing: dict
    trials: int
    seconds: float
    stop_reason: str
    refitted: bool = False
    epochs: float = 0.0

    def to_dict(self) -> dict:
        return {"task": self.task, "metric": self.metric, "higher_is_better": self.higher_is_better,
                "classes": list(self.classes), "winner": self.winner, "leaderboard": list(self.leaderboard),
                "latency": self.latency, "preprocessing": self.preprocessing, "trials": self.trials,
                "seconds": round(self.seconds, 2), "stop_reason": self.stop_reason, "epochs": round(self.epochs, 2)}

    def __str__(self) -> str:
        return (f"cnn {self.winner['params']} {self.metric}={self.winner['score']:.4f} latency p95 "
                f"{self.latency['p95_ms']:.3f} ms after {self.trials} candidates and {self.epochs:.1f} final epochs "
                f"in {self.seconds:.1f}s")


def build_cnn(channels: int, n_classes: int, width: int, depth: int, mean: list[float], std: list[float]):
    """A small VGG-style CNN: ``depth`` stages of conv3x3-BN-ReLU (+ max-pool), doubling the width, then global
    average pooling and a linear layer; the input is normalised inside and the output is softmax probabilities."""
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
            layers, c_in = [], channels
            for stage in range(depth):
                c_out = width * 2 ** stage
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
                if stage > 0:  # a second conv from the second stage on: more capacity where maps are small
                    layers += [nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
                if stage < depth - 1:
                    layers.append(nn.MaxPool2d(2))
                c_in = c_out
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(c_in, n_classes)
            )

        def logits(self, x):
            return self.head(self.features((x - self.mean) / self.std))

        def forward(self, x):
            return torch.softmax(self.logits(x), dim=1)

    return SmallCNN()


def export_onnx(model, channels: int, size: tuple[int, int], metadata: dict) -> bytes:
    """ONNX with input ``image`` (float32 ``[N, C, H, W]``, 0..1) and output ``probabilities``; dynamic batch."""
    import json

    import onnx
    import torch

    model.eval()
    example = torch.rand(2, channels, *size)
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            buffer = io.BytesIO()
            try:
                # the TorchScript exporter takes 0.3 s where the dynamo one takes 5 s: it runs per candidate
                torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=["image"],
                                  output_names=["probabilities"], opset_version=17,
                                  dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}})
                data = buffer.getvalue()
            except Exception:  # noqa: BLE001 - fall back to the dynamo exporter for anything it cannot trace
                program = torch.onnx.export(model, (example,), None, dynamo=True, input_names=["image"],
                                            output_names=["probabilities"],
                                            dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
                data = program.model_proto.SerializeToString()
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    proto = onnx.load_model_from_string(data)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"modelyard.{key}", json.dumps(value)
    return proto.SerializeToString()


def _augment(batch, mode: str, generator):
    """Random affine (rotation +-10 deg, scale 0.9-1.1, shift +-8 %) and, with ``flip``, horizontal flips."""
    import torch
    import torch.nn.functional as F

    if mode == "none":
        return batch
    n = batch.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * (math.pi / 9)
    scale = 1.0 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.16
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    if "flip" in mode:
        flips = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        theta[:, 0, 0] *= flips
        theta[:, 1, 0] *= flips
    grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, padding_mode="border", align_corners=False)


def _train(model, x: np.ndarray, y: np.ndarray, lr: float, augment: str, seconds: float, seed: int,
           x_val: np.ndarray | None = None, y_val: np.ndarray | None = None, cancelled=None,
           on_epoch: Callable[[int, float, float], None] | None = None,
           steps: int | None = None) -> tuple[object, float, float]:
    """Train for about ``seconds`` with a one-cycle schedule sized to fit, or, with ``steps``, for exactly that many
    steps (stopped early only at ``seconds``): the schedule then does not depend on how fast the machine is. With
    validation data, evaluate after every epoch and keep the best weights. Returns (model, epochs done, best
    validation accuracy or -1)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    steps_per_epoch = max(1, math.ceil(len(x) / BATCH))

    model.to(memory_format=torch.channels_last)  # oneDNN's fast path for small convolutions on CPU

    def step(indices) -> None:
        batch = xt[indices].float().div_(255.0)
        batch = _augment(batch, augment, generator).contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model.logits(batch), yt[indices])
        loss.backward()
        optimizer.step()

    model.train()
    probe_started = time.monotonic()
    order = rng.permutation(len(x))
    probe = 0 if steps is not None else min(3, steps_per_epoch)
    for i in range(probe):  # measure the step time to size the schedule (these steps count, at a low rate)
        for group in optimizer.param_groups:
            group["lr"] = lr / 25
        step(torch.from_numpy(order[i * BATCH:(i + 1) * BATCH]))
    # at least 8 steps: OneCycleLR divides by zero when its warm-up ends on step 0 (4 steps at pct_start 0.25), which
    # a slow machine's measured step time produced (or a tiny step count asked for); the deadline below still stops
    # a schedule that does not fit
    if steps is not None:
        total = max(8, steps)
    else:
        per_step = (time.monotonic() - probe_started) / probe
        eval_cost = 0.0 if x_val is None else per_step * 0.35 * len(x_val) / BATCH
        epochs_fit = max(0.05, (seconds - (time.monotonic() - probe_started))
                         / (per_step * steps_per_epoch + eval_cost))
        total = max(8, int(epochs_fit * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=0.25)
    deadline = probe_started + seconds
    done, best, best_state = 0, -1.0, None
    position = probe
    while done < total and time.monotonic() < deadline:
        if position >= steps_per_epoch:
            position, order = 0, rng.permutation(len(x))
            if x_val is not None:
                best, best_state = _checkpoint(model, x_val, y_val, best, best_state, on_epoch, done / steps_per_epoch)
            if cancelled and cancelled():
                break
        step(torch.from_numpy(order[position * BATCH:(position + 1) * BATCH]))
        scheduler.step()
        position += 1
        done += 1
    if x_val is not None:
        best, best_state = _checkpoint(model, x_val, y_val, best, best_state, on_epoch, done / steps_per_epoch)
        model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return model, done / steps_per_epoch, best


def _final_stop_reason(search_reason: str, cancelled, final_deadline: float, time_budget_s: float,
                       epochs: float) -> str:
    """Why the whole run ended: "time budget" only when the winner's training ran to the deadline. It often ends
    sooner (its schedule is sized from the first steps, which are the slowest) and then says so."""
    if search_reason == "cancelled" or (cancelled and cancelled()):
        return "cancelled"
    early = final_deadline - time.monotonic()
    if early > max(2.0, 0.05 * time_budget_s):
        return f"the winner's training schedule finished ({epochs:.1f} epochs), {early:.0f}s before the time budget"
    return "time budget"


def _checkpoint(model, x_val, y_val, best, best_state, on_epoch, epoch):
    import copy

    accuracy = float((predict(model, x_val).argmax(axis=1) == y_val).mean())
    if on_epoch:
        on_epoch(int(round(epoch)), epoch, accuracy)
    if accuracy > best:
        return accuracy, copy.deepcopy(model.state_dict())
    return best, best_state


def predict(model, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    import torch

    was_training = model.training
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            out.append(model(torch.from_numpy(x[start:start + batch]).float().div_(255.0)).numpy())
    if was_training:
        model.train()
    return np.concatenate(out).astype(np.float64)


def _fastest_threads(channels, n_classes, size, mean, std, x_train) -> int:
    """1 thread or all cores, whichever trains faster right now: on a machine shared with other work, two
    threads fighting for two busy cores can be several times slower than one."""
    import torch

    candidates = sorted({1, max(1, os.cpu_count() or 1)})
    if len(candidates) == 1:
        torch.set_num_threads(1)
        return 1
    model = build_cnn(channels, n_classes, 16, 2, mean, std).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.from_numpy(x_train[:BATCH]).float().div_(255.0).contiguous(memory_format=torch.channels_last)
    target = torch.zeros(len(batch), dtype=torch.long)
    timings = {}
    for threads in candidates * 2:  # twice, interleaved: the first round also warms oneDNN up
        torch.set_num_threads(threads)
        started = time.perf_counter()
        for _ in range(2):
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model.logits(batch), target).backward()
            optimizer.step()
        timings[threads] = time.perf_counter() - started
    best = min(timings, key=timings.get)
    torch.set_num_threads(best)
    return best


def _steady_threads() -> int:
    """The thread count of a step-bounded search: always one. A count picked by timing would tie the float sums
    to the load, and several threads on busy cores can be many times slower than one (the small CNNs here gain
    little from more)."""
    import torch

    torch.set_num_threads(1)
    return 1


def input_geometry(median_size: list[int]) -> tuple[int, int]:
    """The model's input side: the median image side clamped to 16..64 and rounded to a multiple of 4."""
    side = int(np.median([s for s in median_size if s] or [32]))
    side = min(64, max(16, int(round(side / 4.0)) * 4))
    return side, side


def search_images(store, version, *, time_budget_s: float, max_trials: int | None = None,
                  max_latency_ms: float | None = None, metric: str | None = None, seed: int = 0, progress=None,
                  log=None, cancelled=None, on_trial=None) -> ImageSearchResult:
    """Search on a dataset version (its fixed train/validation split)."""
    started = time.monotonic()
    size = input_geometry(version.schema.get("median_size", [32, 32]))
    channels = int(version.schema.get("channels", 3))
    if progress:
        progress(0.01, f"decoding images at {size[0]}x{size[1]}x{channels}")
    x, y, split, _ = store.load_images(version, size, channels)
    remaining = time_budget_s - (time.monotonic() - started)
    if remaining <= 1:
        raise InvalidInput(f"time budget {time_budget_s}s was used up decoding the images; give a larger budget")
    return search_image_arrays(x[split == "t"], y[split == "t"], x[split == "v"], y[split == "v"],
                               tuple(version.schema["classes"]), time_budget_s=remaining, max_trials=max_trials,
                               max_latency_ms=max_latency_ms, metric=metric, seed=seed, progress=progress, log=log,
                               cancelled=cancelled, on_trial=on_trial)


def search_image_arrays(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                        classes: tuple[str, ...], *, time_budget_s: float, max_trials: int | None = None,
                        max_latency_ms: float | None = None, metric: str | None = None, seed: int = 0,
                        progress=None, log=None, cancelled=None, on_trial=None) -> ImageSearchResult:
    """Search on arrays: ``x`` uint8 ``(N, C, H, W)``, ``y`` class indices into ``classes``. With ``max_trials``
    the search tries at most that many candidates on a step-bounded schedule (see the module's docstring)."""
    import optuna
    import torch

    started = time.monotonic()
    metric = m.check_metric(metric, "classification")
    if metric != "accuracy":
        raise InvalidInput(f"metric {metric!r}: image AutoML optimises accuracy")
    if len(x_train) == 0 or len(x_val) == 0:
        raise InvalidInput("image AutoML needs images in both the train and validation splits")
    if max_trials is not None and max_trials < 1:
        raise InvalidInput("max trials: must be at least 1")
    torch.manual_seed(seed)
    note = log or (lambda _m: None)
    channels, size = int(x_train.shape[1]), (int(x_train.shape[2]), int(x_train.shape[3]))
    n_classes = len(classes)
    scaled = x_train.astype(np.float32) / 255.0
    mean = [float(v) for v in scaled.mean(axis=(0, 2, 3))]
    std = [max(1e-3, float(v)) for v in scaled.std(axis=(0, 2, 3))]
    del scaled
    if max_trials is None:
        threads = _fastest_threads(channels, n_classes, size, mean, std, x_train)
    else:  # a thread count picked by timing would make the float sums, and so the model, depend on the load
        threads = _steady_threads()
    note(f"training on {threads} thread(s), input {size[0]}x{size[1]}x{channels}, {len(x_train)} train / "
         f"{len(x_val)} validation images")
    metadata = {"task": "image-classification", "classes": list(classes),
                "input": {"name": "image", "size": list(size), "channels": channels, "scale": 1 / 255.0}}
    rng = np.random.default_rng(seed)
    subset = rng.permutation(len(x_train))[:SEARCH_SUBSET]
    val_subset = rng.permutation(len(x_val))[:VALIDATION_SUBSET]
    final_deadline = started + time_budget_s - EXPORT_RESERVE_S
    search_deadline = started + time_budget_s * SEARCH_SHARE
    sample = {"image": (x_val[:1].astype(np.float32) / 255.0)}
    board: list[dict] = []
    latency_cache: dict[tuple[int, int], dict] = {}
    planned = 6 if max_trials is None else max_trials
    candidate_steps = max(MIN_CANDIDATE_STEPS, CANDIDATE_EPOCHS * math.ceil(len(subset) / BATCH))
    final_steps = max(MIN_FINAL_STEPS, FINAL_EPOCHS * math.ceil(len(x_train) / BATCH))
    if max_trials is not None:
        note(f"step-bounded search: at most {max_trials} candidate(s) of {candidate_steps} steps, the winner "
             f"{final_steps} steps")
    state = {"stop": "time budget"}

    def latency_of(width: int, depth: int) -> dict:
        if (width, depth) not in latency_cache:
            probe = build_cnn(channels, n_classes, width, depth, mean, std)
            latency_cache[(width, depth)] = measure_latency(export_onnx(probe, channels, size, metadata), sample)
        return latency_cache[(width, depth)]

    def objective(trial) -> float:
        params = {"width": trial.suggest_categorical("width", [8, 16, 24, 32]),
                  "depth": trial.suggest_int("depth", 2, 3 if min(size) < 32 else 4),
                  "lr": trial.suggest_float("lr", 5e-4, 1e-2, log=True),
                  "augment": trial.suggest_categorical("augment", ["none", "affine", "affine+flip"])}
        entry = {"trial": trial.number, "family": "cnn", "params": params, "score": None, "latency_ms": None,
                 "accepted": None}
        board.append(entry)
        latency = latency_of(params["width"], params["depth"])
        entry["latency_ms"], entry["latency_p50_ms"] = latency["p95_ms"], latency["p50_ms"]
        entry["accepted"] = max_latency_ms is None or latency["p95_ms"] <= max_latency_ms
        if not entry["accepted"]:
            note(f"candidate {trial.number} {params}: latency p95 {latency['p95_ms']:.3f} ms over the limit; "
                 "rejected before training")
            if on_trial:
                on_trial({**entry, "score": None})
            return 0.0
        slice_s = max(1.0, (search_deadline - time.monotonic()) / max(1, planned - trial.number))
        torch.manual_seed(seed + trial.number)
        model = build_cnn(channels, n_classes, params["width"], params["depth"], mean, std)
        if max_trials is not None:  # step-bounded; the deadline only cuts in if the budget is reached first
            slice_s = max(1.0, search_deadline - time.monotonic())
        trial_began = time.monotonic()
        model, _, _ = _train(model, x_train[subset], y_train[subset], params["lr"], params["augment"], slice_s,
                             seed + trial.number, cancelled=cancelled,
                             steps=None if max_trials is None else candidate_steps)
        entry["score"] = round(float((predict(model, x_val[val_subset]).argmax(axis=1) == y_val[val_subset]).mean()),
                               6)
        note(f"candidate {trial.number} {params}: accuracy {entry['score']:.4f} on {len(val_subset)} validation "
             f"images after {time.monotonic() - trial_began:.1f}s, latency p95 {latency['p95_ms']:.3f} ms")
        if on_trial:
            on_trial(entry)
        if progress:
            progress(min(0.3, 0.3 * (time.monotonic() - started) / max(1e-9, search_deadline - started)),
                     f"candidate {trial.number}: accuracy {entry['score']:.4f}")
        return entry["score"]

    def stop(study, _trial) -> None:
        if cancelled and cancelled():
            state["stop"] = "cancelled"
            study.stop()
        elif time.monotonic() >= search_deadline - 1.0:
            state["stop"] = "time budget"
            study.stop()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=len(STARTING_POINTS))
        )
        for point in STARTING_POINTS:
            study.enqueue_trial(point)
        study.optimize(objective, n_trials=max_trials, timeout=max(0.5, search_deadline - time.monotonic()),
                       callbacks=[stop])
    if state["stop"] == "time budget" and max_trials is not None and len(board) >= max_trials:
        state["stop"] = f"max trials ({max_trials})"
    scored = [e for e in board if e["accepted"] and e["score"] is not None]
    if not scored:
        measured = [e for e in board if e["latency_ms"] is not None]
        if max_latency_ms is not None and measured and not any(e["accepted"] for e in board):
            fastest = min(measured, key=lambda e: e["latency_ms"])
            raise InvalidInput(f"max latency {max_latency_ms} ms: no CNN met it (fastest: {fastest['params']} at "
                               f"{fastest['latency_ms']:.3f} ms p95)")
        raise InvalidInput(f"the time budget of {time_budget_s:.0f}s was too short to train one candidate")
    best = max(scored, key=lambda e: e["score"])
    params = best["params"]
    final_seconds = final_deadline - time.monotonic()
    if max_trials is None:
        note(f"training the winner {params} on all {len(x_train)} training images for {final_seconds:.0f}s")
    else:
        note(f"training the winner {params} on all {len(x_train)} training images for {final_steps} steps")

    def on_epoch(index: int, epoch: float, accuracy: float) -> None:
        note(f"epoch {epoch:.2f}: validation accuracy {accuracy:.4f}")
        if on_trial:
            on_trial({"trial": 1000 + index, "family": "cnn-final", "params": params, "score": accuracy,
                      "latency_ms": None, "accepted": True})
        if progress:
            progress(min(0.95, 0.3 + 0.65 * (time.monotonic() - search_deadline)
                         / max(1e-9, final_deadline - search_deadline)), f"final epoch {epoch:.1f}: accuracy "
                     f"{accuracy:.4f}")

    torch.manual_seed(seed)
    model = build_cnn(channels, n_classes, params["width"], params["depth"], mean, std)
    if final_seconds > 2:
        model, epochs, accuracy = _train(model, x_train, y_train, params["lr"], params["augment"], final_seconds,
                                         seed, x_val=x_val, y_val=y_val, cancelled=cancelled, on_epoch=on_epoch,
                                         steps=None if max_trials is None else final_steps)
        refitted = True
    else:
        model, epochs, _ = _train(model, x_train[subset], y_train[subset], params["lr"], params["augment"], 1.0,
                                  seed)
        accuracy = float((predict(model, x_val).argmax(axis=1) == y_val).mean())
        refitted = False
    if max_trials is None or state["stop"] == "cancelled" or (cancelled and cancelled()):
        state["stop"] = _final_stop_reason(state["stop"], cancelled, final_deadline, time_budget_s, epochs)
    elif time.monotonic() >= final_deadline:
        state["stop"] = "time budget"
    model_bytes = export_onnx(model, channels, size, metadata)
    latency = measure_latency(model_bytes, sample)
    final = {
        "trial": -1,
        "family": "cnn",
        "params": {**params, "epochs": round(epochs, 2)},
        "score": round(accuracy, 6),
        "latency_ms": latency["p95_ms"],
        "latency_p50_ms": latency["p50_ms"],
        "accepted": max_latency_ms is None or latency["p95_ms"] <= max_latency_ms,
    }
    if not final["accepted"]:  # same architecture as measured before; only timing noise can get here
        raise InvalidInput(f"the trained model measured {latency['p95_ms']:.3f} ms p95, over the limit of "
                           f"{max_latency_ms} ms (the machine is busier than during the search); try again")
    leaderboard = [final] + sorted(board, key=lambda e: (e["accepted"] is not False, e["score"] or -1.0),
                                   reverse=True)
    preprocessing = {"input": "image", "size": list(size), "scale": 1 / 255.0, "mean": [0.0] * channels,
                     "std": [1.0] * channels, "layout": "NCHW"}
    return ImageSearchResult(
        task="image-classification", metric="accuracy", higher_is_better=True, classes=tuple(classes), winner=final,
        leaderboard=tuple(leaderboard), onnx=model_bytes, latency=latency, preprocessing=preprocessing,
        trials=len(board), seconds=time.monotonic() - started, stop_reason=state["stop"], refitted=refitted,
        epochs=epochs)
