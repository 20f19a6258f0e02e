"""Error rates for the self-checks and benchmarks: character and word error rate by edit distance."""

from __future__ import annotations

import re


def edit_distance(reference, hypothesis) -> int:
    """Levenshtein distance between two sequences (insertions, deletions, substitutions cost 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edits / reference words, case and punctuation ignored (0 = identical)."""
    ref = _words(reference)
    return edit_distance(ref, _words(hypothesis)) / max(1, len(ref))


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Character edits / reference characters, whitespace runs collapsed (0 = identical)."""
    ref, hyp = " ".join(reference.split()), " ".join(hypothesis.split())
    return edit_distance(ref, hyp) / max(1, len(ref))
