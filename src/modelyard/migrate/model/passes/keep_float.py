"""INT8 passes that keep chosen nodes in float: the optimiser's accuracy fallback (the NNCF accuracy-control idea).

``int8-static-keep-float`` (ONNX Runtime QDQ) and ``nncf-int8-keep-float`` (NNCF, for OpenVINO) take the configs of
``int8-static`` / ``nncf-int8`` plus ``exclude_nodes`` (ONNX node names) and ``exclude_op_types``. They are cached
and verified like every other pass and registered in ``modelyard.migrate.model.passes.PASSES``.

``nodes_of_layers`` maps layer names (torch module paths, as the layer-wise compare blames them) to the ONNX nodes
that implement them, through the exporter's name scopes.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from modelyard.migrate.model.passes.onnx import Int8Static, Int8StaticConfig
from modelyard.migrate.model.passes.openvino import NncfInt8, NncfInt8Config


class KeepFloat:
    """Fills the INT8 passes' ``_kept_in_float`` hook from the config's ``exclude_nodes`` and ``exclude_op_types``."""

    def _kept_in_float(self, model, config, notes: list[str]) -> list[str]:
        excluded = excluded_node_names(model, config.exclude_nodes, config.exclude_op_types)
        notes.append(f"{len(excluded)} nodes kept in float")
        return excluded


class Int8StaticKeepFloatConfig(Int8StaticConfig):
    """``int8-static``'s config plus what stays in float.

    Args:
        exclude_nodes: ONNX node names left unquantized. Default none.
        exclude_op_types: operator types left unquantized (``Add``, ``Softmax``...). Default none.
    """

    exclude_nodes: list[str] = Field(default_factory=list)
    exclude_op_types: list[str] = Field(default_factory=list)


class Int8StaticKeepFloat(KeepFloat, Int8Static):
    """INT8 static QDQ quantization with some nodes or operator types kept in float32."""

    name = "int8-static-keep-float"
    description = "INT8 static (QDQ) quantization keeping the named nodes / operator types in float."
    config_model = Int8StaticKeepFloatConfig
    suffix = ".int8-static-kf.onnx"



class NncfInt8KeepFloatConfig(NncfInt8Config):
    """``nncf-int8``'s config plus what stays in float (``exclude_nodes``, ``exclude_op_types``)."""

    exclude_nodes: list[str] = Field(default_factory=list)
    exclude_op_types: list[str] = Field(default_factory=list)


class NncfInt8KeepFloat(KeepFloat, NncfInt8):
    """NNCF post-training INT8 with an ignored scope: the named nodes / operator types stay in float."""

    name = "nncf-int8-keep-float"
    description = "NNCF INT8 post-training quantization keeping the named nodes / operator types in float."
    config_model = NncfInt8KeepFloatConfig
    suffix = ".nncf-int8-kf.onnx"



def excluded_node_names(model, names: list[str], op_types: list[str]) -> list[str]:
    """Node names to keep in float: the given names that exist plus every node of the given operator types."""
    present = {node.name for node in model.graph.node}
    chosen = [n for n in names if n in present]
    types = set(op_types)
    chosen += [node.name for node in model.graph.node if node.op_type in types and node.name not in chosen]
    return chosen


def nodes_of_layers(onnx_path: Path, layers: list[str]) -> list[str]:
    """ONNX node names implementing the given layers (module paths; ``path#k`` counts as ``path``)."""
    import onnx

    from modelyard.runtime.graph_layers import node_scope

    model = onnx.load(str(onnx_path), load_external_data=False)
    wanted = [layer.split("#", 1)[0] for layer in layers]
    chosen: list[str] = []
    for node in model.graph.node:
        scope = node_scope(node)
        if not scope or not node.name or node.op_type == "Constant":
            continue
        if any(scope == w or scope.startswith(w + ".") for w in wanted):
            chosen.append(node.name)
    return chosen
