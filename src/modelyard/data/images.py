"""Image files: finding them (class folders or a CSV of path,label), inspecting each one (corrupt or truncated,
size, mode, brightness, a 256-bit average hash that picks near-duplicate candidates) and decoding them into arrays
for training.

Awkward images are handled where they are decoded: RGBA is composited on white, palette and CMYK images become
RGB, grayscale stays one channel when the whole dataset is grayscale, and images smaller than the model's input are
scaled up. Only a file Pillow cannot decode is "corrupt"; it is recorded with the reason, never silently dropped.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from modelyard.core.errors import InvalidInput

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
_BUFFER_REPR = re.compile(r"<_io\.\w+ (object|name=[^>]*) at 0x[0-9a-f]+>|<_io\.\w+ name=[^>]*>")


@dataclass(frozen=True)
class ImageFile:
    """One image found in a source: its path inside the dataset, its label and where to read it."""

    path: str  # posix path relative to the dataset root, e.g. "cat/001.jpg"
    label: str
    source: Path


def scan_folder(root: Path) -> tuple[list[ImageFile], list[str]]:
    """Find ``root/<class>/*.jpg|jpeg|png|bmp`` (nested folders below a class count for that class).

    A root holding a single folder and no images (an archive that wraps everything in one folder) is descended
    into. Returns the images and notes (files skipped for their type).
    """
    root = Path(root)
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    while len(entries) == 1 and entries[0].is_dir() and not _has_class_dirs_with_images(root):
        root = entries[0]
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    found: list[ImageFile] = []
    other: list[str] = []  # every visible file that is not an image, wherever it sits
    links = 0
    for class_dir in sorted(p for p in entries if p.is_dir()):
        for path in sorted(class_dir.rglob("*")):
            if any(part.startswith(".") for part in path.relative_to(root).parts):
                continue
            if path.is_symlink():
                links += 1
            elif not path.is_file():
                continue
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                found.append(ImageFile(path.relative_to(root).as_posix(), class_dir.name, path))
            else:
                other.append(path.relative_to(root).as_posix())
    loose = 0
    for path in sorted(p for p in entries if not p.is_dir()):
        if path.is_symlink():
            links += 1
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            loose += 1
        elif path.is_file():
            other.append(path.name)
    other.sort()
    notes = []
    if other:
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        notes.append(f"skipped {len(other)} file(s) that are not .jpg/.jpeg/.png/.bmp images: {shown}")
    if links:
        notes.append(f"skipped {links} symbolic link(s): only regular files are imported")
    if loose:
        notes.append(f"skipped {loose} image(s) directly in the root folder: images must sit in a folder per class")
    return found, notes


def _has_class_dirs_with_images(root: Path) -> bool:
    for sub in root.iterdir():
        if sub.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in sub.iterdir() if p.is_file()):
            return True
    return False


def read_label_csv(csv_path: Path) -> tuple[list[ImageFile], list[str]]:
    """Images listed in a CSV of ``path,label`` (header optional), paths relative to the CSV's folder.

    Raises:
        InvalidInput: a row without two fields, an absolute path or one that leaves the CSV's folder, a missing file.
    """
    import csv

    base = csv_path.parent.resolve()
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = csv_path.read_text(encoding="latin-1")
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidInput(f"{csv_path.name}: the file is empty")
    if [c.strip().lower() for c in rows[0][:2]] in (["path", "label"], ["file", "label"], ["filename", "label"],
                                                    ["image", "label"]):
        rows = rows[1:]
    found = []
    for number, row in enumerate(rows, start=1):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise InvalidInput(f"{csv_path.name} row {number}: expected 'path,label', got {','.join(row)[:100]!r}")
        rel, label = row[0].strip(), row[1].strip()
        pure = PurePosixPath(rel.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts:
            raise InvalidInput(f"{csv_path.name} row {number}: path {rel!r} must be relative and stay inside "
                               f"{base}")
        target = (base / pure).resolve()
        if not target.is_relative_to(base):
            raise InvalidInput(f"{csv_path.name} row {number}: path {rel!r} leaves {base} (through a link)")
        if not target.is_file():
            raise InvalidInput(f"{csv_path.name} row {number}: no such image {rel!r}")
        found.append(ImageFile(pure.as_posix(), label, target))
    return found, []


def inspect_image(data: bytes | Path) -> dict:
    """Facts about one encoded image (its bytes, or a file Pillow reads as it decodes): ``width, height, mode,
    format, brightness (0-255), ahash`` or ``error``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as probe:
            probe.verify()  # structure and checksums (PNG CRCs); a second open is needed to decode
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            image.load()  # decodes every pixel: truncated files fail here
            fmt = (image.format or "").lower()
            gray = to_gray(image)
    except UnidentifiedImageError:
        # Pillow's own message names the in-memory buffer ("<_io.BytesIO object at 0x...>"), which tells nobody
        return {"error": "cannot decode: not a JPEG, PNG or BMP image (unrecognised content)"}
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = _BUFFER_REPR.sub("the file", str(exc).splitlines()[0][:160]) if str(exc) else type(exc).__name__
        return {"error": f"cannot decode: {reason}"}
    thumb = np.asarray(gray.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32)
    return {
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "format": fmt,
        "brightness": round(float(thumb.mean()), 2),
        "ahash": average_hash(gray),
    }


def average_hash(gray) -> str:
    """The 256-bit average hash (64 hex digits) of a Pillow image in mode ``L``: 16x16, one bit per pixel above the
    mean. Brightness- and scale-invariant; ``near_duplicates`` uses it to pick candidate pairs."""
    from PIL import Image

    small = np.asarray(gray.resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float32)
    return np.packbits((small > small.mean()).ravel()).tobytes().hex()


def to_gray(image):
    """One gray channel, transparency composited on white first."""
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = flatten_alpha(image)
    return image.convert("L")


def flatten_alpha(image):
    """Composite an image with transparency on white (what a viewer shows), as RGB."""
    from PIL import Image

    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def is_grayscale(modes: list[str]) -> bool:
    """True when every image of a dataset is single-channel."""
    return bool(modes) and all(mode in GRAY_MODES for mode in modes)


def decode_to_array(data: bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """Decode, convert (RGBA on white, palette/CMYK to RGB, gray), resize to ``size`` = (height, width) and return
    a ``uint8`` array of shape ``(channels, height, width)``. Smaller images are scaled up."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "P", "PA"):
            image = flatten_alpha(image)
        image = image.convert("L" if channels == 1 else "RGB")
        height, width = size
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array[None, :, :] if channels == 1 else array.transpose(2, 0, 1)


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a ``(C, H, W)`` or ``(H, W)`` uint8 array."""
    from PIL import Image

    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
