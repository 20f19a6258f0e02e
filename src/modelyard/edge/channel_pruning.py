"""Structured channel pruning of an ONNX graph: physically remove a Conv's weakest output channels and the matching
input channels of the Conv that reads them, so the model gets smaller and faster (magnitude pruning only zeroes
weights: the file and the work stay the same size on a dense runtime).

A pair qualifies when Conv A (group 1) feeds Conv B (group 1) through nothing but per-channel or element-wise ops
(``Relu``, ``LeakyRelu``, ``Sigmoid``, ``Clip``, ``BatchNormalization``), every tensor on the way has that one reader
and is no graph output, and every weight involved belongs to that one node. A's channels are ranked by the L1 norm
of their filters (the classic criterion, Li et al. 2017); the lowest ``ratio`` of them go, along with their bias,
their BatchNormalization parameters and B's input slices. Anything else is left as it is. Like every packaging step
it is kept only when the compare engine's gate accepts it against the float model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PASS_THROUGH = {"Relu", "LeakyRelu", "Sigmoid", "Clip", "BatchNormalization"}


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def structured_prune(source: Path, dest: Path, ratio: float) -> dict:
    """Write ``source`` with the weakest ``ratio`` of output channels removed from every qualifying Conv to
    ``dest``; returns ``{"layers": pruned convs, "channels_removed": total, "channels_before": total before}``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    inits = {init.name: index for index, init in enumerate(graph.initializer)}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(graph.initializer[inits[name]])

    def store(name: str, value: np.ndarray) -> None:
        graph.initializer[inits[name]].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))

    def owned(name: str) -> bool:
        return name in inits and len(readers.get(name, [])) == 1

    layers = removed = before = 0
    touched: set[str] = set()
    for node in list(graph.node):
        if node.op_type != "Conv" or _group(node) != 1 or len(node.input) < 2 or not owned(node.input[1]):
            continue
        chain, tensor = [], node.output[0]
        while True:
            users = readers.get(tensor, [])
            if len(users) != 1 or tensor in outputs:
                chain = None
                break
            user = users[0]
            if user.op_type in PASS_THROUGH and user.input[0] == tensor:
                chain.append(user)
                tensor = user.output[0]
                continue
            if user.op_type == "Conv" and _group(user) == 1 and user.input[0] == tensor and owned(user.input[1]):
                chain.append(user)
            else:
                chain = None
            break
        if not chain:
            continue
        *between, after = chain
        if any(n.op_type == "BatchNormalization" and not all(owned(i) for i in n.input[1:5]) for n in between):
            continue
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if bias is not None and not owned(bias):
            continue
        weight = array(node.input[1])
        channels = weight.shape[0]
        drop = int(channels * ratio)
        if drop < 1 or channels - drop < 1 or node.input[1] in touched or after.input[1] in touched:
            continue
        norms = np.abs(weight).reshape(channels, -1).sum(axis=1)
        keep = np.sort(np.argsort(norms, kind="stable")[drop:])
        store(node.input[1], weight[keep])
        if bias is not None:
            store(bias, array(bias)[keep])
        for bn in (n for n in between if n.op_type == "BatchNormalization"):
            for name in bn.input[1:5]:
                store(name, array(name)[keep])
        store(after.input[1], array(after.input[1])[:, keep])
        touched.update({node.input[1], after.input[1]})
        layers += 1
        removed += drop
        before += channels
        # the shapes recorded for the tensors in between are now wrong; let the runtime infer them again
        stale = {node.output[0], *(n.output[0] for n in between)}
        kept_info = [v for v in graph.value_info if v.name not in stale]
        del graph.value_info[:]
        graph.value_info.extend(kept_info)
    onnx.save(model, str(dest))
    return {"layers": layers, "channels_removed": removed, "channels_before": before}
