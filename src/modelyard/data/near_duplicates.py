"""Near-duplicate images: the same picture re-encoded, slightly resized or with its brightness changed.

Two stages, because one cheap hash cannot tell "the same picture" from "a similar picture" on small, low-texture
images (MNIST digits: a 64-bit dHash within 4 bits flagged 3,002 pairs of 1,200 distinct digits):

1. **Candidates**: a 256-bit average hash (16x16 gray thumbnail, one bit per pixel above the mean; brightness- and
   scale-invariant) within ``CANDIDATE_BITS`` bits. Re-encoded (JPEG q50-75), resized (28 -> 34 px) and brightened
   copies of MNIST digits stay within 10 bits; the bound is loose on purpose, stage 2 decides.
2. **Confirmation on pixels**: both images decoded, made gray, resized to 32x32 and standardised (zero mean, unit
   variance, so brightness and contrast do not count). A pair is a near-duplicate when their correlation is at
   least ``MIN_CORRELATION`` *and* nowhere does the 2x2-smoothed difference exceed ``MAX_DIFFERENCE`` standard
   deviations. Distinct digits can correlate at 0.99 (two plain "1"s) but always differ by more than 0.74 somewhere
   (a stroke that is elsewhere); the altered copies above differ by at most 0.54.

Calibration (MNIST test set, 10,000 distinct digits; see ``docs/data-and-automl.md``): 0 images flagged; recall
100 % on JPEG q75/q50, 28 -> 34 px, brightness x0.8+20 and all three combined.

The same function feeds ``data stats`` (counted at import), the dedupe preview and ``dedupe near``.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from modelyard.data.images import average_hash, flatten_alpha, to_gray

CANDIDATE_BITS = 12
MIN_CORRELATION = 0.95
MAX_DIFFERENCE = 0.6
THUMB_SIDE = 32
MAX_PAIRWISE_IMAGES = 20_000  # above this, only images with identical hashes become candidates
RULE = (f"256-bit average hash within {CANDIDATE_BITS} bits, then on standardised 32x32 gray pixels: correlation "
        f">= {MIN_CORRELATION} and no 2x2 area differing by more than {MAX_DIFFERENCE} standard deviations")


def standardised_thumbnail(data: bytes) -> np.ndarray | None:
    """A ``(32, 32)`` float32 thumbnail with zero mean and unit variance; None when the image cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "P", "PA"):
                image = flatten_alpha(image)
            gray = image.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    array = np.asarray(gray, dtype=np.float32)
    spread = float(array.std())
    return (array - array.mean()) / (spread if spread > 1e-6 else 1.0)


def compare_thumbnails(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """``(correlation, largest smoothed difference)`` of two standardised thumbnails (batched on the first axis
    when given ``(N, 32, 32)`` arrays)."""
    correlation = (first * second).mean(axis=(-2, -1))
    delta = first - second
    smoothed = (delta[..., :-1, :-1] + delta[..., 1:, :-1] + delta[..., :-1, 1:] + delta[..., 1:, 1:]) / 4
    return correlation, np.abs(smoothed).max(axis=(-2, -1))


def _hash_of(entry: dict, read_blob: Callable[[str], bytes]) -> str | None:
    if entry.get("ahash"):
        return entry["ahash"]
    from PIL import Image

    try:  # a version imported before the 256-bit hash existed: compute it now
        with Image.open(io.BytesIO(read_blob(entry["digest"]))) as image:
            image.load()
            return average_hash(to_gray(image))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def _candidates(hashes: np.ndarray) -> list[tuple[int, int]]:
    count = len(hashes)
    if count > MAX_PAIRWISE_IMAGES:
        buckets: dict[bytes, list[int]] = defaultdict(list)
        for index, row in enumerate(hashes):
            buckets[row.tobytes()].append(index)
        return [(members[0], other) for members in buckets.values() for other in members[1:]]
    words = hashes.view(np.uint64)  # (N, 4)
    pairs: list[tuple[int, int]] = []
    chunk = max(1, 1_000_000 // max(1, count))  # rows per step: (chunk, N, 4) words stay near 32 MB
    for start in range(0, count, chunk):
        distance = np.bitwise_count(words[start:start + chunk, None, :] ^ words[None, :, :]).sum(axis=2)
        rows, cols = np.nonzero(distance <= CANDIDATE_BITS)
        keep = cols > rows + start
        pairs.extend(zip((rows[keep] + start).tolist(), cols[keep].tolist(), strict=True))
    return pairs


def find_near_duplicates(entries: list[dict], read_blob: Callable[[str], bytes]) -> list[dict]:
    """Near-duplicate pairs among decodable ``entries`` (manifest entries with ``path``, ``digest`` and, from
    new imports, ``ahash``). Files with identical content are exact duplicates, not listed here.

    Returns:
        ``[{"first", "second", "correlation", "difference"}]`` in manifest order (``first`` comes earlier).
    """
    distinct: dict[str, dict] = {}
    for entry in entries:
        if not entry.get("error"):
            distinct.setdefault(entry["digest"], entry)
    items, hashes = [], []
    for entry in distinct.values():
        value = _hash_of(entry, read_blob)
        if value is not None:
            items.append(entry)
            hashes.append(np.frombuffer(bytes.fromhex(value), dtype=np.uint8))
    if len(items) < 2:
        return []
    candidates = _candidates(np.stack(hashes))
    thumbnails: dict[int, np.ndarray | None] = {}
    found = []
    for start in range(0, len(candidates), 8192):
        batch = []
        for first, second in candidates[start:start + 8192]:
            for index in (first, second):
                if index not in thumbnails:
                    thumbnails[index] = standardised_thumbnail(read_blob(items[index]["digest"]))
            if thumbnails[first] is not None and thumbnails[second] is not None:
                batch.append((first, second))
        if not batch:
            continue
        correlation, difference = compare_thumbnails(np.stack([thumbnails[a] for a, _ in batch]),
                                                     np.stack([thumbnails[b] for _, b in batch]))
        for (first, second), corr, diff in zip(batch, correlation.tolist(), difference.tolist(), strict=True):
            if corr >= MIN_CORRELATION and diff <= MAX_DIFFERENCE:
                found.append({"first": items[first]["path"], "second": items[second]["path"],
                              "correlation": round(corr, 4), "difference": round(diff, 4)})
    order = {entry["path"]: index for index, entry in enumerate(entries)}
    for pair in found:
        if order[pair["second"]] < order[pair["first"]]:
            pair["first"], pair["second"] = pair["second"], pair["first"]
    return sorted(found, key=lambda p: (order[p["first"]], order[p["second"]]))


def duplicate_removals(entries: list[dict], near_pairs: list[dict] | None) -> dict:
    """What ``dedupe`` removes: later copies of identical files, and with ``near_pairs`` the later image of each
    near-duplicate pair whose earlier image is kept.

    Returns:
        ``{"exact": [{"keep", "remove": [...]}], "near": [{"keep", "remove", "correlation", "difference"}],
        "remove": [paths in manifest order]}``.
    """
    first_by_digest: dict[str, str] = {}
    exact: dict[str, list[str]] = defaultdict(list)
    drop: set[str] = set()
    for entry in entries:
        keeper = first_by_digest.setdefault(entry["digest"], entry["path"])
        if keeper != entry["path"]:
            exact[keeper].append(entry["path"])
            drop.add(entry["path"])
    near = []
    for pair in near_pairs or []:
        if pair["first"] not in drop and pair["second"] not in drop:
            drop.add(pair["second"])
            near.append({"keep": pair["first"], "remove": pair["second"], "correlation": pair["correlation"],
                         "difference": pair["difference"]})
    return {"exact": [{"keep": keep, "remove": removed} for keep, removed in exact.items()], "near": near,
            "remove": [e["path"] for e in entries if e["path"] in drop]}
