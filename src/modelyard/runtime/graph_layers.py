"""Find torch module boundaries inside an ONNX graph, so graph tensors can be compared with module outputs.

The dynamo exporter records each node's module stack in ``metadata_props["pkg.torch.onnx.name_scopes"]``
(``['', 'encoder.layer.0', 'encoder.layer.0.attention.self.query', 'linear']``); the TorchScript exporter encodes
it in node names (``/encoder/layer.0/attention/self/query/MatMul``). From either we group nodes into *layers*:
runs of connected nodes belonging to the same leaf module (or to the same module truncated at ``depth``). A
module called twice yields two layers, ``path`` and ``path#2``.

Passes that rewrite a graph (fp16, quantization) keep tensor names but may drop metadata, so the map is also
saved beside an artifact as ``<model>.layers.json`` and read back from there first.
"""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, dataclass
from pathlib import Path

SIDECAR_SUFFIX = ".layers.json"
_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
_IGNORED_SCOPE_PREFIX = "_empty_nn_module_stack"


@dataclass(frozen=True)
class GraphLayer:
    """A module's footprint in the graph.

    Args:
        name: module path, ``path#k`` for its k-th call.
        output: the tensor holding the module's primary output (its last boundary output).
        outputs: every tensor produced inside and used outside, in production order.
        inputs: non-constant tensors consumed inside but produced outside, in first-use order.
        op_types: operator types of its nodes, in order.
    """

    name: str
    output: str
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    op_types: tuple[str, ...]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> GraphLayer:
        return cls(
            name=data["name"],
            output=data["output"],
            outputs=tuple(data["outputs"]),
            inputs=tuple(data["inputs"]),
            op_types=tuple(data["op_types"]),
        )


def node_scope(node) -> str | None:
    """The deepest module path of an ONNX node ('' for the root module), or ``None`` when unknown."""
    for prop in node.metadata_props:
        if prop.key == _SCOPES_KEY:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            modules = [s for s in scopes[:-1] if not s.startswith(_IGNORED_SCOPE_PREFIX)]
            return modules[-1] if modules else None
    if node.name.startswith("/"):
        # TorchScript exporter: /encoder/layer.0/attention/MatMul; torchvision style /layer1/layer1.0/conv1/Conv
        parts = node.name.strip("/").split("/")[:-1]
        path = ""
        for part in parts:
            path = part if (path and part.startswith(path + ".")) else (f"{path}.{part}" if path else part)
        return path
    return None


def graph_layers(model, depth: int | None = None) -> list[GraphLayer]:
    """Group the nodes of ``model`` (an ``onnx.ModelProto``) into module layers in topological order.

    Args:
        model: the ONNX model (its nodes must carry scopes, see the module docstring).
        depth: keep only the first ``depth`` dotted components of module paths (coarser layers). Default: leaves.

    Returns:
        the layers, ordered by the position of their output in the graph; empty when the graph has no scopes.
    """
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    constants = {out for n in graph.node if n.op_type == "Constant" for out in n.output}
    graph_outputs = {o.name for o in graph.output}

    scopes: list[str | None] = []
    for node in graph.node:
        scope = node_scope(node)
        if scope and depth is not None:
            scope = ".".join(scope.split(".")[:depth])
        scopes.append(scope or None)
    present = {s for s in scopes if s}
    leaves = {s for s in present if not any(other.startswith(s + ".") for other in present)}

    consumers: dict[str, set[int]] = {}
    for idx, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, set()).add(idx)

    # segments: runs of nodes of one leaf scope; a later run joins the open one when it consumes its tensors
    segments: list[tuple[str, list[int]]] = []
    open_segment: dict[str, int] = {}
    produced_by_segment: list[set[str]] = []
    previous_scope: str | None = None
    for idx, (node, scope) in enumerate(zip(graph.node, scopes, strict=True)):
        if node.op_type == "Constant" or scope not in leaves:
            if node.op_type != "Constant":
                previous_scope = scope
            continue
        seg = open_segment.get(scope)
        joins = seg is not None and (
            previous_scope == scope or any(name in produced_by_segment[seg] for name in node.input)
        )
        if not joins:
            segments.append((scope, []))
            produced_by_segment.append(set())
            seg = len(segments) - 1
            open_segment[scope] = seg
        segments[seg][1].append(idx)
        produced_by_segment[seg].update(node.output)
        previous_scope = scope

    calls: dict[str, int] = {}
    layers: list[tuple[int, GraphLayer]] = []
    for scope, members in segments:
        member_set = set(members)
        produced = [out for i in members for out in graph.node[i].output if out]
        outputs = [
            t for t in produced if t in graph_outputs or any(c not in member_set for c in consumers.get(t, ()))
        ]
        if not outputs:
            continue
        inputs: list[str] = []
        produced_set = set(produced)
        for i in members:
            for name in graph.node[i].input:
                if (name and name not in produced_set and name not in initializers and name not in constants
                        and name not in inputs):
                    inputs.append(name)
        calls[scope] = calls.get(scope, 0) + 1
        name = scope if calls[scope] == 1 else f"{scope}#{calls[scope]}"
        position = max(i for i in members if outputs[-1] in graph.node[i].output)
        layer = GraphLayer(
            name=name,
            output=outputs[-1],
            outputs=tuple(outputs),
            inputs=tuple(inputs),
            op_types=tuple(graph.node[i].op_type for i in members),
        )
        layers.append((position, layer))
    layers.sort(key=lambda item: item[0])
    return [layer for _, layer in layers]


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + SIDECAR_SUFFIX)


def save_layer_map(layers: list[GraphLayer], model_path: Path) -> Path:
    """Write ``<model>.layers.json`` atomically beside ``model_path``."""
    target = sidecar_path(model_path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps({"schema": "modelyard.layers/1", "layers": [x.to_dict() for x in layers]}, indent=1))
    tmp.replace(target)
    return target


def load_layer_map(model_path: Path) -> list[GraphLayer] | None:
    """The layers saved beside ``model_path``, or ``None`` when there is no readable sidecar."""
    path = sidecar_path(model_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [GraphLayer.from_dict(item) for item in data["layers"]]
    except (ValueError, KeyError, TypeError):
        return None


def layers_for(model, model_path: Path | None, depth: int | None = None) -> list[GraphLayer]:
    """The model's own scopes when present, else its sidecar map (restricted to tensors the graph still has)."""
    own = graph_layers(model, depth)
    if own:
        return own
    saved = load_layer_map(model_path) if model_path is not None else None
    if not saved:
        return []
    tensors = {i.name for i in model.graph.input} | {o for n in model.graph.node for o in n.output}
    return [layer for layer in saved if layer.output in tensors and all(t in tensors for t in layer.inputs)]
