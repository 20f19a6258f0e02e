"""A few steps of fine-tuning for a pruned ONNX image classifier, on the labelled images of the dataset version it was
trained on (its lineage): removing channels costs accuracy, and a short recovery on the same data wins most of it
back before the gate judges the result.

The graph runs as torch operations (``runtime.onnx_torch``), with its float weights as trainable tensors; the result
goes back into the same graph, so nothing about the model's structure or signature changes. A classifier's output
may be probabilities (Modelyard's exports end in a Softmax) or logits; the loss is the cross-entropy either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput

TRAINABLE_OPS = {"Conv", "Gemm", "MatMul", "BatchNormalization"}


def _log_probabilities(out):
    import torch

    rows = out.detach().sum(dim=1)
    if bool((out.detach() >= 0).all()) and bool(torch.allclose(rows, torch.ones_like(rows), atol=1e-3)):
        return torch.log(out.clamp_min(1e-7))
    return torch.log_softmax(out, dim=1)


def fine_tune_classifier(source: Path, dest: Path, x: np.ndarray, y: np.ndarray, steps: int = 30,
                         batch: int = 16, lr: float = 1e-3, seed: int = 0) -> dict:
    """Train the float weights of ``source`` (first output: class scores) on ``x``/``y`` for ``steps`` Adam steps;
    writes ``dest``; returns ``{"steps", "samples", "loss_before", "loss_after"}`` (mean cross-entropy on all of
    ``x``)."""
    import onnx
    import torch
    from onnx import numpy_helper

    from modelyard.runtime.onnx_torch import OnnxTorchProgram

    model = onnx.load(str(source))
    graph = model.graph
    inputs = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if len(inputs) != 1:
        raise InvalidInput(f"fine-tuning needs a one-input classifier; this graph has inputs {inputs}")
    # weights and biases; BatchNormalization's scale and shift, not its running statistics
    weights = {name for node in graph.node if node.op_type in TRAINABLE_OPS
               for name in (node.input[1:3] if node.op_type == "BatchNormalization" else node.input[1:])}
    floats = {t.name for t in graph.initializer if t.name in weights and t.data_type == onnx.TensorProto.FLOAT}
    torch.manual_seed(seed)
    program = OnnxTorchProgram(model)
    params = program.trainable(floats)
    if not params:
        raise InvalidInput("fine-tuning found no float weights to train in this graph")
    data, labels = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))

    def loss_on(index) -> torch.Tensor:
        scores = program.forward({inputs[0]: data[index]})[program.output_names[0]]
        if scores.ndim != 2 or int(labels.max()) >= scores.shape[1]:
            raise InvalidInput(f"fine-tuning needs class scores (batch, classes); the first output has shape "
                               f"{list(scores.shape)}")
        return torch.nn.functional.nll_loss(_log_probabilities(scores), labels[index])

    every = torch.arange(len(data))
    with torch.no_grad():
        before = float(loss_on(every))
    optimizer = torch.optim.Adam(params.values(), lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        index = torch.from_numpy(rng.choice(len(data), size=min(batch, len(data)), replace=False))
        optimizer.zero_grad()
        loss_on(index).backward()
        optimizer.step()
    with torch.no_grad():
        after = float(loss_on(every))
    for init in graph.initializer:
        if init.name in params:
            init.CopyFrom(numpy_helper.from_array(params[init.name].detach().numpy().astype(np.float32), init.name))
    onnx.save(model, str(dest))
    return {"steps": steps, "samples": int(len(data)), "loss_before": round(before, 5), "loss_after": round(after, 5)}
