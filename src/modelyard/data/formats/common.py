"""What every annotation format shares: safe item paths, image sizes read from file headers, the all-or-nothing
output folder, copying images from wherever they live, and small JSON/number helpers for streaming writers.

Writers build their output in a hidden sibling folder and rename it into place at the end, so an export that fails
half-way leaves nothing behind; readers collect everything first and build the :class:`AnnotationSet` last, so a
bad item anywhere means nothing is returned.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from modelyard.core.errors import InvalidInput

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# a normalised or percent coordinate that lands this close outside the image is float noise, not a box that
# crosses the edge: snap it so it is not counted as clipped
EDGE_SNAP_PX = 1e-3

# what a writer is given to find each item's image: its bytes by item, its file by item, or None (labels only)
ImageSource = Callable[[str], bytes] | Mapping[str, Path] | None


def safe_item(item: str, where: str = "") -> PurePosixPath:
    """An item id as a relative posix path that stays inside its folder (ids become file names on export)."""
    pure = PurePosixPath(str(item).replace("\\", "/"))
    if not str(item) or pure.is_absolute() or ".." in pure.parts or str(pure) in (".", ""):
        raise InvalidInput(f"{where or item}: item {item!r} must be a relative path that stays inside the folder")
    return pure


def safe_name(item: str) -> str:
    """:func:`safe_item` as a string, with a fast path for the plain ids a large export is made of."""
    parts = item.split("/")
    if item and "\\" not in item and all(part not in ("", ".", "..") for part in parts):
        return item
    return safe_item(item).as_posix()


def image_size(path: Path, item: str) -> tuple[int, int]:
    """``(width, height)`` from the image's header (nothing is decoded); a file that is not an image is refused
    with the item named."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return int(image.width), int(image.height)
    except FileNotFoundError:
        raise InvalidInput(f"{item}: image file {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = "not a JPEG, PNG or BMP image" if isinstance(exc, UnidentifiedImageError) else str(exc)[:160]
        raise InvalidInput(f"{item}: the image {path.name} cannot be read ({reason})") from None


def check_size(item: str, claimed: tuple[int, int], actual: tuple[int, int], source: str) -> tuple[int, int]:
    """The image's real size; refuses an annotation whose stated size differs (its pixel boxes would be wrong).
    A stated size of 0 (some tools leave it out) takes the real one."""
    if claimed[0] > 0 and claimed[1] > 0 and tuple(claimed) != tuple(actual):
        raise InvalidInput(f"{item}: {source} says the image is {claimed[0]}x{claimed[1]} but the file is "
                           f"{actual[0]}x{actual[1]}; its boxes would land in the wrong place")
    return actual


def snap(value: float, limit: float) -> float:
    """``value`` with float noise at the image's edges (0 and ``limit``) removed."""
    if -EDGE_SNAP_PX < value < 0:
        return 0.0
    if limit < value < limit + EDGE_SNAP_PX:
        return float(limit)
    return value


def number(value: float) -> int | float:
    """A coordinate for a file: an int when whole, else rounded to 4 decimals (1/10,000 px; far inside the
    half-pixel round-trip promise, and files stay short)."""
    if value.is_integer() if isinstance(value, float) else isinstance(value, int):
        return int(value)
    rounded = round(float(value), 4)
    return int(rounded) if rounded.is_integer() else rounded


def find_file(candidates: list[Path]) -> Path | None:
    return next((c for c in candidates if c.is_file()), None)


def peek(path: Path, size: int = 4096) -> str:
    """The first non-blank character of a text file (``{`` or ``[`` tells COCO from Label Studio without reading a
    large file whole)."""
    with open(path, "rb") as handle:
        head = handle.read(size).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1].decode("ascii", errors="replace")


def load_json(path: Path):
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name}: not UTF-8 text") from None


def read_class_list(path: Path) -> list[str]:
    """One class name per line (blank lines skipped). CVAT's ``labelmap.txt`` is ``name:color::`` lines under a ``#``
    header; any other file is names as they are (a class may be called ``#1: a``)."""
    names = []
    cvat = path.name == "labelmap.txt"
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if not line or (cvat and line.startswith("#")):
            continue
        names.append(line.split(":", 1)[0].strip() if cvat else line)
    if len(set(names)) != len(names):
        raise InvalidInput(f"{path.name}: names a class twice")
    return names


def class_order(declared: list[str] | None, used: list[str]) -> tuple[str, ...]:
    """The declared class list when there is one (labels outside it are then refused by the set, naming the
    item), else the used names in natural order."""
    if declared is not None:
        return tuple(declared)
    from modelyard.data.tabular import _natural_key

    return tuple(sorted(set(used), key=_natural_key))


class ImageWriter:
    """Copies each item's image into an export from an :data:`ImageSource`, one file at a time, and makes each
    folder of the export once."""

    def __init__(self, source: ImageSource):
        self.source = source
        self.files = 0
        self._made: set[Path] = set()

    def make_parent(self, target: Path) -> None:
        """``target``'s folder, created once per export (a 20k-file export otherwise spends its time in mkdir)."""
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)

    def __call__(self, item: str, folder: Path, name: str) -> None:
        """Write ``item``'s image to ``folder / name`` (joined only when there is an image to write)."""
        if self.source is None:
            return
        target = folder / name
        self.make_parent(target)
        if isinstance(self.source, Mapping):
            origin = self.source.get(item)
            if origin is None:
                raise InvalidInput(f"{item}: no image file was given for this item")
            shutil.copyfile(origin, target)
        else:
            target.write_bytes(self.source(item))
        self.files += 1


@contextmanager
def staged_folder(dest: Path) -> Iterator[Path]:
    """A fresh folder that becomes ``dest`` only when the block succeeds; ``dest`` must be new or empty."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"export destination {dest} exists and is not an empty folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        os.replace(stage, dest)  # rename(2) may replace an empty folder
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def one_per_item(items, path_of: Callable[[str], PurePosixPath], what: str) -> None:
    """Refuse two items that a per-image format would write to the same file (``a.png`` and ``a.jpg`` both make
    ``a.txt``)."""
    seen: dict[PurePosixPath, str] = {}
    for annotated in items:
        target = path_of(annotated.item)
        if target in seen:
            raise InvalidInput(f"{annotated.item}: {what} {target} would also hold {seen[target]}; rename one")
        seen[target] = annotated.item


def stem_path(item: str, suffix: str) -> PurePosixPath:
    pure = safe_item(item)
    return pure.with_suffix(suffix) if pure.suffix else pure.with_name(pure.name + suffix)
