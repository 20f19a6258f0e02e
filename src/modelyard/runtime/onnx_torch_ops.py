"""The torch kernels behind :mod:`modelyard.runtime.onnx_torch`: one function per ONNX operator (default domain).

Each kernel takes ``(inputs, attrs, opset)``: the input tensors (None for an optional input left empty), the node's
attributes (tensors as torch tensors; ``_n_outputs`` is the node's output count) and the model's default-domain
opset, and returns a tensor or a tuple of tensors. Shape-like inputs (axes, pads, sizes) are read on the host.
Anything a kernel does not cover is refused with :class:`InvalidInput`, never approximated.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.runtime.onnx_graph import ONNX_DTYPES


def _torch_dtype(onnx_type: int):
    import torch

    name = ONNX_DTYPES.get(onnx_type)
    if name is None:
        raise InvalidInput(f"ONNX element type {onnx_type} has no torch equivalent")
    return getattr(torch, name)


def _ints(value) -> list[int]:
    """A host list of ints from a tensor, a list or None."""
    if value is None:
        return []
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [int(v) for v in (value if isinstance(value, list) else [value])]


def _same_device(*tensors):
    """Move host tensors next to the first device tensor (ONNX has no devices; shape math lives on the host)."""
    device = next((t.device for t in tensors if t is not None and t.device.type != "cpu"), None)
    if device is None:
        return tensors
    return tuple(t.to(device) if t is not None and t.device != device else t for t in tensors)


# -- operators ------------------------------------------------------------------------------------------------------
# Each takes (inputs, attrs, opset) and returns a tensor or a tuple of tensors. ``inputs`` holds None for an
# optional input left empty.


def _conv_padding(x, attrs, kernel, strides, dilations):
    """``(F.pad amounts or None, symmetric padding per spatial dim)`` from ONNX pads/auto_pad."""
    spatial = len(kernel)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads_begin, pads_end = [], []
        for i in range(spatial):
            size = x.shape[2 + i]
            out = math.ceil(size / strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
            small, big = total // 2, total - total // 2
            pads_begin.append(small if auto_pad == "SAME_UPPER" else big)
            pads_end.append(big if auto_pad == "SAME_UPPER" else small)
    elif auto_pad == "VALID":
        pads_begin = pads_end = [0] * spatial
    else:
        pads = list(attrs.get("pads", [0] * (2 * spatial)))
        pads_begin, pads_end = pads[:spatial], pads[spatial:]
    if pads_begin == pads_end:
        return None, pads_begin
    explicit: list[int] = []
    for begin, end in zip(reversed(pads_begin), reversed(pads_end), strict=True):
        explicit += [begin, end]
    return explicit, [0] * spatial


def _conv(inputs, attrs, opset):
    import torch.nn.functional as F

    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    spatial = len(kernel)
    strides = list(attrs.get("strides", [1] * spatial))
    dilations = list(attrs.get("dilations", [1] * spatial))
    explicit, padding = _conv_padding(x, attrs, kernel, strides, dilations)
    if explicit is not None:
        x = F.pad(x, explicit)
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}.get(spatial)
    if fn is None:
        raise InvalidInput(f"Conv with {spatial} spatial dims is not supported")
    return fn(x, w, bias, strides, padding, dilations, attrs.get("group", 1))


def _conv_transpose(inputs, attrs, opset):
    import torch.nn.functional as F

    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    spatial = w.dim() - 2
    strides = list(attrs.get("strides", [1] * spatial))
    dilations = list(attrs.get("dilations", [1] * spatial))
    pads = list(attrs.get("pads", [0] * (2 * spatial)))
    if pads[:spatial] != pads[spatial:] or "output_shape" in attrs or attrs.get("auto_pad", "NOTSET") != "NOTSET":
        raise InvalidInput("ConvTranspose with asymmetric pads, auto_pad or output_shape is not supported")
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[spatial]
    return fn(x, w, bias, strides, pads[:spatial], list(attrs.get("output_padding", [0] * spatial)),
              attrs.get("group", 1), dilations)


def _pool(kind):
    def run(inputs, attrs, opset):
        import torch.nn.functional as F

        x = inputs[0]
        kernel = list(attrs["kernel_shape"])
        spatial = len(kernel)
        strides = list(attrs.get("strides", [1] * spatial))
        dilations = list(attrs.get("dilations", [1] * spatial))
        explicit, padding = _conv_padding(x, attrs, kernel, strides, dilations)
        ceil_mode = bool(attrs.get("ceil_mode", 0))
        if kind == "max":
            if explicit is not None:
                x = F.pad(x, explicit, value=float("-inf"))
            fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[spatial]
            return fn(x, kernel, strides, padding, dilations, ceil_mode)
        include_pad = bool(attrs.get("count_include_pad", 0))
        if any(d != 1 for d in dilations):
            raise InvalidInput("AveragePool with dilations is not supported")
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[spatial]
        if explicit is None:
            return fn(x, kernel, strides, padding, ceil_mode, include_pad)
        pooled = fn(F.pad(x, explicit), kernel, strides, padding, ceil_mode, True)
        if include_pad:
            return pooled
        # torch pads symmetrically only: average over the real elements as (mean of x) / (mean of a 0/1 mask)
        mask = F.pad(x.new_ones((1, 1, *x.shape[2:])), explicit)
        return pooled / fn(mask, kernel, strides, padding, ceil_mode, True)

    return run


def _batch_norm(inputs, attrs, opset):
    import torch.nn.functional as F

    x, scale, bias, mean, var = inputs[:5]
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, attrs.get("epsilon", 1e-5))


def _gemm(inputs, attrs, opset):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if attrs.get("transA", 0):
        a = a.transpose(0, 1)
    if attrs.get("transB", 0):
        b = b.transpose(0, 1)
    out = a @ b
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        out = out * alpha
    if c is not None:
        out = out + (c * beta if beta != 1.0 else c)
    return out


def _softmax(fn_name):
    def run(inputs, attrs, opset):
        x = inputs[0]
        axis = attrs.get("axis", -1 if opset >= 13 else 1)
        if opset >= 13:
            return getattr(x, fn_name)(dim=axis)
        axis = axis % max(x.dim(), 1)  # older opsets: coerce to 2-D at axis
        flat = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
        return getattr(flat, fn_name)(dim=1).reshape(x.shape)

    return run


def _reshape(inputs, attrs, opset):
    x = inputs[0]
    shape = _ints(inputs[1]) if opset >= 5 else list(attrs["shape"])
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


def _flatten(inputs, attrs, opset):
    x = inputs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.dim() if axis < 0 else axis  # the range is [-rank, rank]: not a modulo of rank + 1
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)


def _axes(inputs, attrs, opset, from_opset):
    """Axes from the attribute (older opsets) or the second input (newer); None when absent."""
    if opset >= from_opset:
        return _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else None
    return list(attrs["axes"]) if "axes" in attrs else None


def _unsqueeze(inputs, attrs, opset):
    x = inputs[0]
    axes = _axes(inputs, attrs, opset, 13) or []
    rank = x.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):
        x = x.unsqueeze(axis)
    return x


def _squeeze(inputs, attrs, opset):
    x = inputs[0]
    axes = _axes(inputs, attrs, opset, 13)
    if axes is None:
        return x.squeeze()
    return x.squeeze(tuple(a % x.dim() for a in axes)) if axes else x


def _concat(inputs, attrs, opset):
    import torch

    return torch.cat(_same_device(*[t for t in inputs if t is not None]), dim=attrs["axis"])


def _split(inputs, attrs, opset):
    x = inputs[0]
    axis = attrs.get("axis", 0) % x.dim()
    sizes = _ints(inputs[1]) if opset >= 13 and len(inputs) > 1 and inputs[1] is not None else attrs.get("split")
    if not sizes:
        parts = attrs.get("num_outputs") or attrs["_n_outputs"]
        size = -(-x.shape[axis] // parts)
        sizes = [min(size, x.shape[axis] - i * size) for i in range(parts)]
    return tuple(x.split(list(sizes), dim=axis))


def _slice(inputs, attrs, opset):
    import torch

    x = inputs[0]
    if opset >= 10:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
        steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    else:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis %= x.dim()
        size = x.shape[axis]
        if step > 0:
            start = min(max(start + size if start < 0 else start, 0), size)
            end = min(max(end + size if end < 0 else end, 0), size)
            x = x.narrow(axis, start, max(0, end - start)) if step == 1 else \
                x.index_select(axis, torch.arange(start, end, step, device=x.device))
        else:
            start = min(max(start + size if start < 0 else start, 0), size - 1)
            end = min(max(end + size if end < 0 else end, -1), size - 1)
            x = x.index_select(axis, torch.arange(start, end, step, device=x.device))
    return x


def _gather(inputs, attrs, opset):
    data, indices = inputs
    axis = attrs.get("axis", 0) % data.dim()
    indices = indices.to(data.device).long()
    indices = indices.where(indices >= 0, indices + data.shape[axis])
    picked = data.index_select(axis, indices.reshape(-1))
    return picked.reshape((*data.shape[:axis], *indices.shape, *data.shape[axis + 1:]))  # () for a 0-D pick


def _gather_elements(inputs, attrs, opset):
    import torch

    data, indices = inputs
    axis = attrs.get("axis", 0) % data.dim()
    indices = indices.to(data.device).long()
    return torch.gather(data, axis, indices.where(indices >= 0, indices + data.shape[axis]))


def _nd_index(data, indices, batch_dims: int):
    """``(flat data, index tuple, result prefix)`` for GatherND/ScatterND: the batch dims of ``data`` folded into
    one, then one index tensor per dim the last axis of ``indices`` addresses (negative entries wrapped)."""
    import torch

    indices = indices.to(data.device).long()
    depth = indices.shape[-1]
    batch = int(np.prod(data.shape[:batch_dims], dtype=np.int64))
    flat = data.reshape(batch, *data.shape[batch_dims:])
    rows = indices.reshape(batch, -1, depth)
    sizes = torch.tensor(data.shape[batch_dims:batch_dims + depth], device=data.device)
    rows = rows.where(rows >= 0, rows + sizes)
    which = torch.arange(batch, device=data.device).unsqueeze(1).expand(batch, rows.shape[1])
    return flat, (which, *rows.unbind(-1)), tuple(indices.shape[:-1])


def _gather_nd(inputs, attrs, opset):
    data, indices = inputs
    batch_dims = attrs.get("batch_dims", 0)
    flat, index, prefix = _nd_index(data, indices, batch_dims)
    return flat[index].reshape(*prefix, *data.shape[batch_dims + indices.shape[-1]:])


def _scatter_nd(inputs, attrs, opset):
    data, indices, updates = inputs
    reduction = attrs.get("reduction", "none")
    if reduction not in ("none", "add"):
        raise InvalidInput(f"ScatterND reduction={reduction!r} is not supported")
    flat, index, _ = _nd_index(data, indices, 0)
    flat = flat.clone()
    values = updates.to(flat.device).reshape(*index[1].shape, *data.shape[indices.shape[-1]:])
    flat.index_put_(index, values, accumulate=reduction == "add")
    return flat.reshape(data.shape)


def _shape(inputs, attrs, opset):
    import torch

    dims = list(inputs[0].shape)
    start, end = attrs.get("start", 0), attrs.get("end")
    return torch.tensor(dims[start:end] if end is not None else dims[start:], dtype=torch.int64)


def _size(inputs, attrs, opset):
    import torch

    return torch.tensor(inputs[0].numel(), dtype=torch.int64)


def _constant(inputs, attrs, opset):
    import torch

    if "value" in attrs:
        return attrs["value"]
    for key, dtype in (("value_float", torch.float32), ("value_floats", torch.float32),
                       ("value_int", torch.int64), ("value_ints", torch.int64)):
        if key in attrs:
            return torch.tensor(attrs[key], dtype=dtype)
    raise InvalidInput(f"Constant with attributes {sorted(attrs)} is not supported")


def _constant_of_shape(inputs, attrs, opset):
    import torch

    value = attrs.get("value")
    shape = _ints(inputs[0])
    if value is None:
        return torch.zeros(shape, dtype=torch.float32)
    return torch.full(shape, value.reshape(-1)[0].item(), dtype=value.dtype)


def _cast(inputs, attrs, opset):
    return inputs[0].to(_torch_dtype(attrs["to"]))


def _cast_like(inputs, attrs, opset):
    return inputs[0].to(inputs[1].dtype)


def _reduce(name):
    def run(inputs, attrs, opset):
        import torch

        x = inputs[0]
        from_opset = 13 if name == "sum" else 18
        axes = _axes(inputs, attrs, opset, from_opset)
        keep = bool(attrs.get("keepdims", 1))
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return x
            axes = list(range(x.dim()))
        dims = tuple(a % x.dim() for a in axes) if x.dim() else ()
        if name == "mean":
            return x.mean(dim=dims, keepdim=keep)
        if name == "sum":  # dtype: torch widens integer sums to int64, ONNX keeps the input type
            return x.sum(dim=dims, keepdim=keep, dtype=x.dtype)
        if name == "max":
            return x.amax(dim=dims, keepdim=keep)
        if name == "min":
            return x.amin(dim=dims, keepdim=keep)
        if name == "prod":
            for d in sorted(dims, reverse=True):
                x = x.prod(dim=d, keepdim=keep, dtype=x.dtype)
            return x
        if name == "l2":
            return torch.sqrt((x * x).sum(dim=dims, keepdim=keep))
        if name == "sumsquare":
            return (x * x).sum(dim=dims, keepdim=keep, dtype=x.dtype)
        return torch.logsumexp(x, dim=dims, keepdim=keep)

    return run


def _arg(kind):
    def run(inputs, attrs, opset):
        x = inputs[0]
        axis = attrs.get("axis", 0) % x.dim()
        keep = bool(attrs.get("keepdims", 1))
        if attrs.get("select_last_index", 0):
            flipped = x.flip(axis)
            index = (flipped.argmax if kind == "max" else flipped.argmin)(dim=axis, keepdim=keep)
            return x.shape[axis] - 1 - index
        return (x.argmax if kind == "max" else x.argmin)(dim=axis, keepdim=keep)

    return run


def _expand(inputs, attrs, opset):
    import torch

    x = inputs[0]
    shape = torch.broadcast_shapes(tuple(x.shape), tuple(_ints(inputs[1])))
    return x.expand(shape)


def _tile(inputs, attrs, opset):
    return inputs[0].repeat(_ints(inputs[1]))


def _pad(inputs, attrs, opset):
    import torch.nn.functional as F

    x = inputs[0]
    mode = attrs.get("mode", "constant")
    if opset >= 11:
        pads = _ints(inputs[1])
        value = (
            inputs[2].reshape(-1)[0].item() if len(inputs) > 2 and inputs[2] is not None and inputs[2].numel() else 0
        )
        axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(x.dim()))
    else:
        pads, value, axes = list(attrs["pads"]), attrs.get("value", 0.0), list(range(x.dim()))
    n = len(axes)
    begin = dict(zip([a % x.dim() for a in axes], pads[:n], strict=True))
    end = dict(zip([a % x.dim() for a in axes], pads[n:], strict=True))
    explicit: list[int] = []
    for dim in reversed(range(x.dim())):
        explicit += [begin.get(dim, 0), end.get(dim, 0)]
    while explicit[-2:] == [0, 0] and len(explicit) > 2:
        explicit = explicit[:-2]
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}.get(mode)
    if torch_mode is None:
        raise InvalidInput(f"Pad mode {mode!r} is not supported")
    if torch_mode == "constant":
        return F.pad(x, explicit, mode=torch_mode, value=value)
    # torch pads the last 1-3 dims of a batched (N, C, ...) tensor only: fold every unpadded dim into C
    padded = len(explicit) // 2
    if padded > 3:
        raise InvalidInput(f"Pad mode {mode!r} over more than 3 dims is not supported")
    lead = x.shape[:x.dim() - padded]
    out = F.pad(x.reshape(1, int(np.prod(lead, dtype=np.int64)), *x.shape[x.dim() - padded:]), explicit,
                mode=torch_mode)
    return out.reshape(*lead, *out.shape[2:])


def _range(inputs, attrs, opset):
    import torch

    start, limit, delta = (t.reshape(-1)[0].item() for t in inputs)
    return torch.arange(start, limit, delta, dtype=inputs[0].dtype, device=inputs[0].device)


def _resize(inputs, attrs, opset):
    """Resize one axis at a time with the source coordinates and taps ONNX Runtime computes (float32 host math),
    so every coordinate transform and nearest mode is exact, not only the ones ``F.interpolate`` shares."""
    x = inputs[0]
    mode = attrs.get("mode", "nearest")
    if opset < 11:  # Upsample and Resize-10: (X, scales) or a scales attribute, asymmetric, "simple" nearest
        scales = inputs[1] if len(inputs) > 1 else attrs.get("scales")
        sizes, transform, nearest_mode = None, "asymmetric", "simple"
    else:
        scales = inputs[2] if len(inputs) > 2 else None
        sizes = inputs[3] if len(inputs) > 3 else None
        transform = attrs.get("coordinate_transformation_mode", "half_pixel")
        nearest_mode = attrs.get("nearest_mode", "round_prefer_floor")
    if transform == "tf_crop_and_resize" or attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise InvalidInput(f"Resize with coordinate_transformation_mode={transform!r} or "
                           f"keep_aspect_ratio_policy={attrs.get('keep_aspect_ratio_policy')!r} is not supported")
    axes = [a % x.dim() for a in attrs.get("axes", range(x.dim()))]
    in_sizes = [x.shape[a] for a in axes]
    if sizes is not None and sizes.numel():
        out_sizes = _ints(sizes)
        factors = [np.float32(o) / np.float32(i) for o, i in zip(out_sizes, in_sizes, strict=True)]
    else:
        factors = [np.float32(v) for v in _ints_or_floats(scales)]
        out_sizes = [int(f * np.float32(i)) for f, i in zip(factors, in_sizes, strict=True)]
    if mode not in ("nearest", "linear", "cubic"):
        raise InvalidInput(f"Resize mode {mode!r} is not supported")
    for axis, in_size, out_size, factor in zip(axes, in_sizes, out_sizes, factors, strict=True):
        if out_size == in_size and factor == 1:
            continue
        coords = _resize_coordinates(transform, out_size, in_size, factor)
        if mode == "nearest":
            x = x.index_select(axis, _host_index(_nearest(coords, nearest_mode, factor, in_size), x.device))
        elif mode == "linear":
            if attrs.get("antialias", 0) and factor < 1:
                raise InvalidInput("Resize linear with antialias when downsampling is not supported")
            coords = np.clip(coords, 0, in_size - 1)
            low = np.minimum(np.floor(coords).astype(np.int64), in_size - 1)
            frac = coords - low.astype(np.float32)
            x = _taps(x, axis, [low, np.minimum(low + 1, in_size - 1)], [1 - frac, frac])
        else:
            if attrs.get("antialias", 0) and factor < 1:
                raise InvalidInput("Resize cubic with antialias when downsampling is not supported")
            base = np.floor(coords)
            weights = _cubic_weights(coords - base, np.float32(attrs.get("cubic_coeff_a", -0.75)))
            taps = base.astype(np.int64)[:, None] + np.arange(-1, 3)
            if attrs.get("exclude_outside", 0):
                weights = np.where((taps < 0) | (taps >= in_size), 0, weights)
                weights = weights / weights.sum(axis=1, keepdims=True)
            taps = np.clip(taps, 0, in_size - 1)
            x = _taps(x, axis, list(taps.T), list(weights.T))
    return x


def _ints_or_floats(value) -> list:
    if value is None:
        raise InvalidInput("Resize needs scales or sizes")
    return value.reshape(-1).tolist() if hasattr(value, "reshape") else list(value)


def _resize_coordinates(transform: str, out_size: int, in_size: int, scale) -> np.ndarray:
    """The source coordinate of each output index along one axis (float32, as ONNX Runtime computes it)."""
    x = np.arange(out_size, dtype=np.float32)
    half = np.float32(0.5)
    if transform == "asymmetric":
        return x / scale
    if transform == "half_pixel":
        return (x + half) / scale - half
    if transform == "pytorch_half_pixel":
        return (x + half) / scale - half if out_size > 1 else np.zeros(out_size, np.float32)
    if transform == "align_corners":
        return x * np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.zeros(1, np.float32)
    if transform == "half_pixel_symmetric":
        adjustment = np.float32(out_size) / (scale * np.float32(in_size))
        offset = np.float32(in_size) / 2 * (1 - adjustment)
        return offset + (x + half) / scale - half
    # NOTE: tf_half_pixel_for_nearest (opsets 11-12) is left out: neither onnxruntime nor the ONNX reference runs it,
    # so there is nothing to check it against
    raise InvalidInput(f"Resize coordinate_transformation_mode={transform!r} is not supported")


def _nearest(coords: np.ndarray, nearest_mode: str, scale, in_size: int) -> np.ndarray:
    if nearest_mode == "round_prefer_floor":
        index = np.ceil(coords - np.float32(0.5))
    elif nearest_mode == "round_prefer_ceil":
        index = np.floor(coords + np.float32(0.5))
    elif nearest_mode == "floor":
        index = np.floor(coords)
    elif nearest_mode == "ceil":
        index = np.ceil(coords)
    elif nearest_mode == "simple":  # Upsample / Resize-10: ceil when downsampling, else truncate
        index = np.ceil(coords) if scale < 1 else np.trunc(coords)
    else:
        raise InvalidInput(f"Resize nearest_mode={nearest_mode!r} is not supported")
    return np.clip(index, 0, in_size - 1).astype(np.int64)


def _cubic_weights(s: np.ndarray, a) -> np.ndarray:
    """Keys cubic convolution weights of the taps at -1, 0, 1, 2 around each coordinate's floor."""
    def near(t):  # |t| <= 1
        return ((a + 2) * t - (a + 3)) * t * t + 1

    def far(t):  # 1 < |t| < 2
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a

    return np.stack([far(s + 1), near(s), near(1 - s), far(2 - s)], axis=1).astype(np.float32)


def _host_index(index: np.ndarray, device):
    import torch

    return torch.from_numpy(np.ascontiguousarray(index)).to(device)


def _taps(x, axis: int, indices: list, weights: list):
    """Sum of ``x`` gathered at each index set along ``axis``, times its per-position weight."""
    shape = [1] * x.dim()
    shape[axis] = -1
    out = None
    for index, weight in zip(indices, weights, strict=True):
        w = _host_index(np.asarray(weight, dtype=np.float32), x.device).to(x.dtype).reshape(shape)
        term = x.index_select(axis, _host_index(index, x.device)) * w
        out = term if out is None else out + term
    return out


def _layer_norm(inputs, attrs, opset):
    import torch.nn.functional as F

    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = attrs.get("axis", -1) % x.dim()
    return F.layer_norm(x, x.shape[axis:], scale, bias, attrs.get("epsilon", 1e-5))


def _instance_norm(inputs, attrs, opset):
    import torch.nn.functional as F

    x, scale, bias = inputs
    return F.instance_norm(x, weight=scale, bias=bias, eps=attrs.get("epsilon", 1e-5))


def _topk(inputs, attrs, opset):
    x = inputs[0]
    k = _ints(inputs[1])[0] if opset >= 10 else attrs["k"]
    values, indices = x.topk(k, dim=attrs.get("axis", -1), largest=bool(attrs.get("largest", 1)),
                             sorted=bool(attrs.get("sorted", 1)))
    return values, indices


def _clip(inputs, attrs, opset):
    x = inputs[0]
    if opset >= 11:
        low = inputs[1] if len(inputs) > 1 else None
        high = inputs[2] if len(inputs) > 2 else None
        low = low.item() if low is not None else None
        high = high.item() if high is not None else None
    else:
        low, high = attrs.get("min"), attrs.get("max")
    return x.clamp(low, high) if low is not None or high is not None else x


def _div(inputs, attrs, opset):
    import torch

    a, b = _same_device(*inputs)
    if not a.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def _mod(inputs, attrs, opset):
    import torch

    a, b = _same_device(*inputs)
    return torch.fmod(a, b) if attrs.get("fmod", 0) else torch.remainder(a, b)


def _variadic(fn_name):
    def run(inputs, attrs, opset):
        import torch

        tensors = _same_device(*inputs)
        result = tensors[0]
        for t in tensors[1:]:
            result = getattr(torch, fn_name)(result, t)
        return result

    return run


def _binary(fn_name):
    def run(inputs, attrs, opset):
        import torch

        return getattr(torch, fn_name)(*_same_device(*inputs))

    return run


def _unary(fn: Callable):
    return lambda inputs, attrs, opset: fn(inputs[0], attrs)


def _where(inputs, attrs, opset):
    import torch

    return torch.where(*_same_device(*inputs))


def _prelu(inputs, attrs, opset):
    import torch

    x, slope = _same_device(*inputs)
    return torch.where(x >= 0, x, x * slope)


def _einsum(inputs, attrs, opset):
    import torch

    return torch.einsum(attrs["equation"], *_same_device(*inputs))


def _trilu(inputs, attrs, opset):
    k = _ints(inputs[1])[0] if len(inputs) > 1 and inputs[1] is not None else 0
    return inputs[0].triu(k) if attrs.get("upper", 1) else inputs[0].tril(k)


def _cumsum(inputs, attrs, opset):
    x = inputs[0]
    axis = _ints(inputs[1])[0]
    reverse = bool(attrs.get("reverse", 0))
    if reverse:
        x = x.flip(axis)
    out = x.cumsum(dim=axis, dtype=x.dtype)  # dtype: torch widens integer sums to int64
    if attrs.get("exclusive", 0):
        out = out - x
    return out.flip(axis) if reverse else out


def _gelu(x, attrs):
    import torch.nn.functional as F

    return F.gelu(x, approximate=attrs.get("approximate", "none"))


def _matmul(inputs, attrs, opset):
    a, b = _same_device(*inputs)
    return a @ b


def _is_inf(x, attrs):
    import torch

    positive, negative = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
    if positive and negative:
        return torch.isinf(x)
    if positive:
        return torch.isposinf(x)
    return torch.isneginf(x) if negative else torch.zeros_like(x, dtype=torch.bool)


def _hard_sigmoid(x, attrs):
    return (x * attrs.get("alpha", 0.2) + attrs.get("beta", 0.5)).clamp(0, 1)


def _identity(inputs, attrs, opset):
    return inputs[0]


def _elementwise():
    import torch
    import torch.nn.functional as F

    return {
        "Relu": _unary(lambda x, a: F.relu(x)),
        "Sigmoid": _unary(lambda x, a: torch.sigmoid(x)),
        "Tanh": _unary(lambda x, a: torch.tanh(x)),
        "Exp": _unary(lambda x, a: torch.exp(x)),
        "Log": _unary(lambda x, a: torch.log(x)),
        "Sqrt": _unary(lambda x, a: torch.sqrt(x)),
        "Abs": _unary(lambda x, a: torch.abs(x)),
        "Neg": _unary(lambda x, a: torch.neg(x)),
        "Reciprocal": _unary(lambda x, a: torch.reciprocal(x)),
        "Floor": _unary(lambda x, a: torch.floor(x)),
        "Ceil": _unary(lambda x, a: torch.ceil(x)),
        "Round": _unary(lambda x, a: torch.round(x)),
        "Sin": _unary(lambda x, a: torch.sin(x)),
        "Cos": _unary(lambda x, a: torch.cos(x)),
        "Erf": _unary(lambda x, a: torch.erf(x)),
        "Sign": _unary(lambda x, a: torch.sign(x)),
        "Not": _unary(lambda x, a: torch.logical_not(x)),
        "IsNaN": _unary(lambda x, a: torch.isnan(x)),
        "IsInf": _unary(_is_inf),
        "Softplus": _unary(lambda x, a: F.softplus(x)),
        "Softsign": _unary(lambda x, a: F.softsign(x)),
        "Mish": _unary(lambda x, a: F.mish(x)),
        "HardSwish": _unary(lambda x, a: F.hardswish(x)),
        "HardSigmoid": _unary(_hard_sigmoid),
        "Gelu": _unary(_gelu),
        "LeakyRelu": _unary(lambda x, a: F.leaky_relu(x, a.get("alpha", 0.01))),
        "Elu": _unary(lambda x, a: F.elu(x, a.get("alpha", 1.0))),
        "Selu": _unary(lambda x, a: a.get("gamma", 1.0507009873554805) * torch.where(
            x > 0, x, a.get("alpha", 1.6732632423543772) * (torch.exp(x) - 1))),
        "Celu": _unary(lambda x, a: F.celu(x, a.get("alpha", 1.0))),
        "Add": _binary("add"), "Sub": _binary("sub"), "Mul": _binary("mul"), "Pow": _binary("pow"),
        "Equal": _binary("eq"), "Less": _binary("lt"), "Greater": _binary("gt"), "LessOrEqual": _binary("le"),
        "GreaterOrEqual": _binary("ge"), "And": _binary("logical_and"), "Or": _binary("logical_or"),
        "Xor": _binary("logical_xor"),
        "Max": _variadic("maximum"), "Min": _variadic("minimum"), "Sum": _variadic("add"),
    }


def _operators() -> dict[str, Callable]:
    ops = _elementwise()
    ops.update({
        "Conv": _conv, "ConvTranspose": _conv_transpose, "BatchNormalization": _batch_norm,
        "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
        "GlobalAveragePool": lambda i, a, o: i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True),
        "GlobalMaxPool": lambda i, a, o: i[0].amax(dim=tuple(range(2, i[0].dim())), keepdim=True),
        "Gemm": _gemm, "MatMul": _matmul, "Softmax": _softmax("softmax"), "LogSoftmax": _softmax("log_softmax"),
        "Reshape": _reshape, "Flatten": _flatten, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze,
        "Transpose": lambda i, a, o: i[0].permute(a.get("perm", list(reversed(range(i[0].dim()))))),
        "Concat": _concat, "Split": _split, "Slice": _slice, "Gather": _gather, "GatherElements": _gather_elements,
        "GatherND": _gather_nd, "ScatterND": _scatter_nd,
        "Shape": _shape, "Size": _size, "Constant": _constant, "ConstantOfShape": _constant_of_shape,
        "Cast": _cast, "CastLike": _cast_like, "Identity": _identity, "Dropout": _identity,
        "ReduceMean": _reduce("mean"), "ReduceSum": _reduce("sum"), "ReduceMax": _reduce("max"),
        "ReduceMin": _reduce("min"), "ReduceProd": _reduce("prod"), "ReduceL2": _reduce("l2"),
        "ReduceSumSquare": _reduce("sumsquare"), "ReduceLogSumExp": _reduce("logsumexp"),
        "ArgMax": _arg("max"), "ArgMin": _arg("min"), "Expand": _expand, "Tile": _tile, "Pad": _pad,
        "Range": _range, "Resize": _resize, "Upsample": _resize, "LayerNormalization": _layer_norm,
        "InstanceNormalization": _instance_norm, "TopK": _topk, "Clip": _clip, "Div": _div, "Mod": _mod,
        "Where": _where, "PRelu": _prelu, "Einsum": _einsum, "Trilu": _trilu, "CumSum": _cumsum,
        "Mean": lambda i, a, o: _variadic("add")(i, a, o) / len(i),
    })
    return ops


_OPS: dict[str, Callable] | None = None


def operators() -> dict[str, Callable]:
    global _OPS
    if _OPS is None:
        _OPS = _operators()
    return _OPS


def supported_ops() -> list[str]:
    """The ONNX operators (default domain) this module runs."""
    return sorted(operators())
