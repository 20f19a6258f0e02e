"""Feeds for a ModelSpec: seeded random tensors within the spec's ranges, or real samples from disk.

Real samples (``--data PATH``):

* a ``.npz`` file, or a folder of ``<input>.npy`` files: an array of the input's rank is one sample; one more
  leading axis enumerates samples;
* a folder of ``.npz`` files: one sample each;
* a folder of images (``.png``, ``.ppm``, ``.pgm``; any Pillow format when Pillow is installed): one sample per
  image, preprocessed with the spec's ``preprocessing`` (resize, scale, mean/std, layout).

Every loader yields ``dict[input name, np.ndarray]``, one sample at a time, so large sets stream.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput, NotFound

IMAGE_SUFFIXES = {".png", ".ppm", ".pgm", ".jpg", ".jpeg", ".bmp"}


def _np_dtype(name: str):
    if name == "bfloat16":
        return np.float32  # generated in fp32; the runner casts to bf16 where the model wants it
    return np.dtype(name)


def random_feeds(spec, samples: int, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """``samples`` seeded random feeds: floats uniform in ``range`` (default [0, 1]), ints in ``[low, high)``
    (default [0, 10)), bools fair coins, strings the decimal text of such ints. Named dims take their size from
    ``spec.dims`` (default 1).

    Inputs with a ``data`` file take their samples from it instead (cycled when shorter than ``samples``).
    """
    if samples < 1:
        raise InvalidInput(f"samples must be at least 1, got {samples}")
    rng = np.random.default_rng(seed)
    dims = spec.dim_values()
    stored = {i.name: _stored_samples(spec, i) for i in spec.inputs if i.data}
    for index in range(samples):
        feeds: dict[str, np.ndarray] = {}
        for inp in spec.inputs:
            if inp.name in stored:
                series = stored[inp.name]
                feeds[inp.name] = series[index % len(series)]
                continue
            shape = inp.concrete_shape(dims)
            if inp.dtype == "bool":
                feeds[inp.name] = rng.random(shape) < 0.5
            elif inp.dtype == "string":
                # tokens "0".."9" (or the range's integers): a model one-hot encoding text sees known or unknown
                # categories alike, so any tokens exercise it
                low, high = inp.range or (0, 10)
                feeds[inp.name] = rng.integers(int(low), int(high), size=shape).astype(str).astype(object)
            elif inp.dtype.startswith(("int", "uint")):
                low, high = inp.range or (0, 10)
                feeds[inp.name] = rng.integers(int(low), int(high), size=shape).astype(inp.dtype)
            else:
                low, high = inp.range or (0.0, 1.0)
                feeds[inp.name] = rng.uniform(low, high, size=shape).astype(_np_dtype(inp.dtype))
        yield feeds


def _stored_samples(spec, inp) -> list[np.ndarray]:
    path = spec.resolve(inp.data)
    if not path.is_file():
        raise NotFound(f"spec.inputs[{inp.name}].data: {path} does not exist")
    array = _read_npy(path)
    return _split_samples(array, inp, f"spec.inputs[{inp.name}].data")


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"{path.name} is not a readable .npy file: {exc}") from None


def _split_samples(array: np.ndarray, inp, where: str) -> list[np.ndarray]:
    rank = len(inp.shape)
    if array.ndim == rank:
        return [array]
    if array.ndim == rank + 1:
        return [array[i] for i in range(array.shape[0])]
    raise InvalidInput(
        f"{where}: array has shape {list(array.shape)}; input {inp.name!r} has rank {rank} "
        f"(give rank {rank} for one sample or {rank + 1} for several)"
    )


def load_feeds(path: str | Path, spec, samples: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Real samples from ``path`` (see the module docstring), at most ``samples`` of them."""
    p = Path(path).expanduser()
    if not p.exists():
        raise NotFound(f"data {p} does not exist")
    iterator = _iter_feeds(p, spec)
    count = 0
    for feeds in iterator:
        yield feeds
        count += 1
        if samples is not None and count >= samples:
            return
    if count == 0:
        raise InvalidInput(f"data {p} holds no samples")


def _iter_feeds(p: Path, spec) -> Iterator[dict[str, np.ndarray]]:
    names = [i.name for i in spec.inputs]
    if p.is_file() and p.suffix == ".npz":
        yield from _from_arrays(_read_npz(p), spec, str(p))
        return
    if p.is_file() and p.suffix == ".npy":
        if len(names) != 1:
            raise InvalidInput(f"data {p.name}: one .npy file can only feed a one-input model (inputs: {names})")
        yield from _from_arrays({names[0]: _read_npy(p)}, spec, str(p))
        return
    if not p.is_dir():
        raise InvalidInput(f"data {p.name}: expected a .npz/.npy file or a folder")
    npy = {f.stem: f for f in p.glob("*.npy")}
    if npy:
        missing = [n for n in names if n not in npy]
        if missing:
            raise InvalidInput(f"data {p}: no {', '.join(m + '.npy' for m in missing)} for input(s) {missing}")
        yield from _from_arrays({n: _read_npy(npy[n]) for n in names}, spec, str(p))
        return
    npz = sorted(p.glob("*.npz"))
    if npz:
        for f in npz:
            yield from _from_arrays(_read_npz(f), spec, str(f))
        return
    images = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if images:
        yield from _from_images(images, spec)
        return
    raise InvalidInput(f"data {p}: no .npy, .npz or image files found")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"{path.name} is not a readable .npz file: {exc}") from None


def _from_arrays(arrays: dict[str, np.ndarray], spec, where: str) -> Iterator[dict[str, np.ndarray]]:
    names = [i.name for i in spec.inputs]
    missing = [n for n in names if n not in arrays]
    if missing:
        raise InvalidInput(f"data {where}: no array for input(s) {missing} (it has {sorted(arrays)})")
    series = {i.name: _split_samples(arrays[i.name], i, f"data {where}") for i in spec.inputs}
    counts = {len(v) for v in series.values()}
    if len(counts) != 1:
        raise InvalidInput(
            f"data {where}: inputs hold different sample counts { ({k: len(v) for k, v in series.items()}) }"
        )
    for index in range(counts.pop()):
        yield {name: values[index] for name, values in series.items()}


def _from_images(files: list[Path], spec) -> Iterator[dict[str, np.ndarray]]:
    from modelyard.runtime.detection import image_tensor

    pre = spec.preprocessing
    target = spec.input(pre.input) if pre and pre.input else spec.inputs[0]
    if len(spec.inputs) != 1 and not (pre and pre.input):
        raise InvalidInput("image data feeds one input: set preprocessing.input in the spec")
    layout = pre.layout if pre else "NCHW"
    shape = target.shape
    if len(shape) != 4:
        raise InvalidInput(f"image data needs a rank-4 input; {target.name!r} has shape {shape}")
    size = pre.size if pre and pre.size else None
    if size is None:
        h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
        if not (isinstance(h, int) and isinstance(w, int)):
            raise InvalidInput("image data: the input's height/width are dynamic; set preprocessing.size")
        size = (h, w)
    channels = shape[1] if layout == "NCHW" else shape[3]
    declared = pre.model_dump() if pre else None
    for f in files:
        pixels = read_image(f)  # H, W, C uint8
        yield {target.name: image_tensor(pixels, declared, size, channels, np.dtype(_np_dtype(target.dtype)).name)}


def read_image(path: Path) -> np.ndarray:
    """Decode an image to ``H x W x C`` uint8: Pillow when installed, else the built-in PNG/PPM/PGM readers."""
    try:
        from PIL import Image  # optional
    except ImportError:
        Image = None
    if Image is not None:
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert("RGB" if img.mode not in ("L",) else "L"))
        except OSError as exc:
            raise InvalidInput(f"{path.name}: cannot decode image: {exc}") from None
        return array[:, :, None] if array.ndim == 2 else array
    data = path.read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _decode_png(data, path.name)
    if data[:2] in (b"P5", b"P6"):
        return _decode_pnm(data, path.name)
    raise InvalidInput(f"{path.name}: only PNG, PPM and PGM images can be read without Pillow")


def _decode_pnm(data: bytes, name: str) -> np.ndarray:
    fields: list[bytes] = []
    pos = 2
    while len(fields) < 3:
        while data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    width, height, maxval = (int(x) for x in fields)
    if maxval > 255:
        raise InvalidInput(f"{name}: 16-bit PNM images are not supported")
    channels = 3 if data[:2] == b"P6" else 1
    pixels = np.frombuffer(data, dtype=np.uint8, count=width * height * channels, offset=pos + 1)
    return pixels.reshape(height, width, channels)


def _decode_png(data: bytes, name: str) -> np.ndarray:
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise InvalidInput(f"{name}: PNG without a header")
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise InvalidInput(f"{name}: only 8-bit non-interlaced gray/RGB/RGBA PNGs can be read without Pillow")
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for row in range(height):
        start = row * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1).astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 2:
            cur = (line + prev) & 0xFF
        else:  # Sub, Average and Paeth depend on the reconstructed left neighbour: decode byte by byte
            cur = np.zeros(stride, dtype=np.int32)
            for i in range(stride):
                left = cur[i - channels] if i >= channels else 0
                up = prev[i]
                up_left = prev[i - channels] if i >= channels else 0
                if kind == 1:
                    pred = left
                elif kind == 3:
                    pred = (left + up) // 2
                else:
                    p = left + up - up_left
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                    pred = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                cur[i] = (line[i] + pred) & 0xFF
        out[row] = cur
        prev = cur
    pixels = out.reshape(height, width, channels)
    if channels == 4:
        pixels = pixels[:, :, :3]
    elif channels == 2:
        pixels = pixels[:, :, :1]
    return pixels


def iter_feeds(spec, samples: int, data: str | Path | None = None, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Real samples from ``data`` (or the spec's ``dataset``) when given, else ``samples`` random feeds."""
    source = data if data is not None else (spec.resolve(spec.dataset) if spec.dataset else None)
    if source is not None:
        return load_feeds(source, spec, samples)
    return random_feeds(spec, samples, seed)
