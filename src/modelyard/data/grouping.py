"""Auto grouping: cluster unlabeled images into K groups (2-200, ModelArts' range) so a labeler can label a whole
group at once.

k-means (k-means++ seeding, Lloyd iterations, the best of a few restarts by inertia) on embeddings from
``modelyard.data.image_features``, in numpy; the same embeddings and seed always give the same groups. Groups are
numbered by size (0 the largest); each names its members nearest its centre first, so the first few thumbnails a
labeler sees are the group's most typical images.

Example::

    grouping = group_items(item_ids, embed(image_features(pixels)), k=10, seed=0)
    grouping.groups[0].items[:5]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelyard.core.errors import InvalidInput

MIN_GROUPS, MAX_GROUPS = 2, 200
RESTARTS = 4
MAX_ITERATIONS = 100


@dataclass(frozen=True)
class Group:
    """One cluster: its number, members (nearest the centre first) and their distances to the centre."""

    number: int
    items: tuple[str, ...]
    distances: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"group": self.number, "size": len(self.items), "items": list(self.items),
                "distances": [round(d, 5) for d in self.distances]}


@dataclass(frozen=True)
class Grouping:
    """The result of :func:`group_items`: groups largest first, and the k-means inertia (sum of squared distances
    to the centres) that picked the restart."""

    k: int
    seed: int
    inertia: float
    groups: tuple[Group, ...]

    def group_of(self) -> dict[str, int]:
        return {item: group.number for group in self.groups for item in group.items}

    def to_dict(self) -> dict:
        return {"schema": "modelyard.label-groups/1", "k": self.k, "seed": self.seed,
                "inertia": round(self.inertia, 4), "groups": [g.to_dict() for g in self.groups]}

    def __str__(self) -> str:
        sizes = ", ".join(str(len(g.items)) for g in self.groups[:10])
        return f"{self.k} groups of {sum(len(g.items) for g in self.groups)} items (sizes {sizes}" + (
            ", ...)" if self.k > 10 else ")")


def kmeans(embeddings: np.ndarray, k: int, seed: int = 0, restarts: int = RESTARTS
           ) -> tuple[np.ndarray, np.ndarray, float]:
    """``(assignment, centres, inertia)`` of the best of ``restarts`` k-means runs (k-means++ seeding)."""
    x = np.asarray(embeddings, dtype=np.float64)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(restarts):
        centres = _kmeans_plus_plus(x, k, rng)
        assignment = np.full(len(x), -1)
        for _ in range(MAX_ITERATIONS):
            distances = _squared_distances(x, centres)
            new = distances.argmin(axis=1)
            if np.array_equal(new, assignment):
                break
            assignment = new
            for cluster in range(k):
                members = x[assignment == cluster]
                if len(members):
                    centres[cluster] = members.mean(axis=0)
                else:  # an emptied cluster takes the point farthest from its centre
                    far = int(distances[np.arange(len(x)), assignment].argmax())
                    centres[cluster] = x[far]
                    assignment[far] = cluster
        _fill_empty_groups(x, assignment, centres, k)
        inertia = float(_squared_distances(x, centres)[np.arange(len(x)), assignment].sum())
        if best is None or inertia < best[2] - 1e-9:
            best = (assignment.copy(), centres.copy(), inertia)
    return best


def _fill_empty_groups(x: np.ndarray, assignment: np.ndarray, centres: np.ndarray, k: int) -> None:
    """Give each empty group (duplicate images can leave one) the member of the largest group farthest from that
    group's centre, so K groups always come back (in place)."""
    for cluster in range(k):
        if (assignment == cluster).any():
            continue
        largest = int(np.bincount(assignment, minlength=k).argmax())
        members = np.flatnonzero(assignment == largest)
        far = members[int(((x[members] - centres[largest]) ** 2).sum(axis=1).argmax())]
        assignment[far] = cluster
        centres[cluster] = x[far]
        centres[largest] = x[assignment == largest].mean(axis=0)


def _kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [x[rng.integers(len(x))]]
    nearest = ((x - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = nearest.sum()
        index = int(rng.choice(len(x), p=nearest / total)) if total > 0 else int(rng.integers(len(x)))
        centres.append(x[index])
        nearest = np.minimum(nearest, ((x - x[index]) ** 2).sum(axis=1))
    return np.array(centres)


def _squared_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.maximum((x ** 2).sum(1)[:, None] + (centres ** 2).sum(1)[None, :] - 2 * x @ centres.T, 0.0)


def group_items(item_ids: Sequence[str], embeddings: np.ndarray, k: int, seed: int = 0) -> Grouping:
    """Cluster ``item_ids`` (rows of ``embeddings``) into ``k`` groups.

    Args:
        item_ids: one id per row, unique.
        embeddings: ``(N, D)`` finite floats.
        k: number of groups, 2-200 and at most the number of items.
        seed: seeds k-means++; same inputs, same groups.

    Raises:
        InvalidInput: k out of range, more groups than items, duplicate ids, rows that do not match.
    """
    ids = list(item_ids)
    x = np.asarray(embeddings, dtype=np.float64)
    if not MIN_GROUPS <= k <= MAX_GROUPS:
        raise InvalidInput(f"k {k}: the number of groups must be between {MIN_GROUPS} and {MAX_GROUPS}")
    if x.ndim != 2 or len(x) != len(ids):
        raise InvalidInput(f"{len(ids)} items but embeddings of shape {x.shape}")
    if len(ids) < k:
        raise InvalidInput(f"k {k}: only {len(ids)} item(s) to group")
    if len(set(ids)) != len(ids):
        raise InvalidInput("an item appears twice")
    if not np.isfinite(x).all():
        raise InvalidInput("embeddings must be finite numbers")
    assignment, centres, inertia = kmeans(x, k, seed)
    distance = np.sqrt(_squared_distances(x, centres)[np.arange(len(x)), assignment])
    clusters = []
    for cluster in range(k):
        members = np.flatnonzero(assignment == cluster)
        members = members[np.lexsort((members, distance[members]))]  # nearest first; ties by position
        clusters.append(members)
    clusters.sort(key=lambda m: (-len(m), int(m[0]) if len(m) else 0))
    groups = tuple(Group(number, tuple(ids[i] for i in members), tuple(float(distance[i]) for i in members))
                   for number, members in enumerate(clusters))
    return Grouping(k, seed, inertia, groups)
