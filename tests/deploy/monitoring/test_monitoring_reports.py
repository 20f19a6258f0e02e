"""Windows by row count and by time, and the summaries long text gets (length and an embedding, not a category)."""

import numpy as np

from modelyard.deploy.monitoring.reports import split_windows
from modelyard.deploy.monitoring.summaries import summarize_inputs


def test_windows_by_count_are_the_last_n_rows_and_by_time_aligned_periods():
    ts = np.concatenate([np.arange(0, 100, 1.0), np.arange(7200, 7250, 1.0)])
    columns = {"ts": ts}
    by_count = split_windows(columns, 40, 3)
    assert [w[2] for w in by_count] == [slice(30, 70), slice(70, 110), slice(110, 150)]  # oldest first
    assert by_count[-1][1] == 7249.0
    by_hour = split_windows(columns, "1h", 5)
    assert [(w[0], w[1]) for w in by_hour] == [(0.0, 99.0), (7200.0, 7249.0)]  # the empty hour is no window


def test_long_text_is_summarized_and_embedded_short_text_is_a_category():
    texts = np.array([["a fairly long review of the product " * 3], ["short"]], dtype=object)
    columns, _ = summarize_inputs({"review": texts, "city": np.array([["Paris"], ["Oslo"]], dtype=object)}, 2, 4096)
    assert columns["f.city"] == ["Paris", "Oslo"] and "f.review" not in columns
    assert columns["s.review.length"] == [float(len(texts[0, 0])), 5.0]
    embedding = np.stack(columns["e.review"])
    assert embedding.shape == (2, 32) and np.all(np.isfinite(embedding)) and not np.allclose(*embedding)
