"""Report cosmetics: legends below the plots, captions that fit, saliency thumbnails large and clearly red, and an
AutoML stop reason that says "time budget" only when the budget ran out."""

import io
import re

import numpy as np
import pytest
from PIL import Image

from modelyard.train import report_html as h
from modelyard.train.saliency import overlay_png, thumbnail_scale


def _pr_curves():
    recall = list(np.linspace(0, 1, 40))
    return [{"name": f"class{c} (AP 0.9{c})", "x": recall, "y": [1 - r ** (6 + c) for r in recall]} for c in range(3)]


def test_the_legend_sits_below_the_plot_not_on_the_curves():
    svg = h.line_chart_svg(_pr_curves(), "Precision-recall", "recall", "precision", height=300)
    frame = re.search(r'<rect x="45" y="24" width="\d+" height="(\d+)"', svg)
    plot_bottom = 24 + int(frame.group(1))
    legend = [float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" fill="#', svg)]
    assert len(legend) == 3 and min(legend) > plot_bottom + 30  # below the tick labels and the axis label
    assert int(re.search(r'<svg [^>]*height="(\d+)"', svg).group(1)) >= max(legend) + 4


def test_the_confusion_matrix_caption_fits():
    title = "rows: true class, columns: predicted"
    svg = h.heatmap_svg([[50, 3], [4, 43]], ["Adelie", "Chinstrap"], title)
    width = int(re.search(r'<svg [^>]*width="(\d+)"', svg).group(1))
    x = float(re.search(r'<text x="([\d.]+)" y="14" font-weight="bold">', svg).group(1))
    assert x + 6.0 * len(title) <= width  # 11 px text is at most ~6 px a character
    labels_reach = 110 + 44 * 2 + 0.71 * 6.0 * len("Chinstrap")
    assert width >= labels_reach


def test_saliency_thumbnails_are_large_and_the_evidence_is_strongly_red():
    digit = np.zeros((1, 28, 28), dtype=np.uint8)
    heat = np.zeros((28, 28))
    heat[10:14, 10:14] = 1.0
    scale = thumbnail_scale((28, 28))
    picture = np.asarray(Image.open(io.BytesIO(overlay_png(digit, heat, scale))).convert("RGB"))
    assert picture.shape[0] >= 160 and picture.shape[1] >= 160
    red, green = picture[12 * scale, 12 * scale, 0], picture[12 * scale, 12 * scale, 1]
    assert red >= 190 and green <= 60
    assert tuple(picture[0, 0]) == (0, 0, 0)  # no evidence: the image itself, untinted


@pytest.mark.slow
def test_automl_does_not_claim_the_time_budget_when_it_stopped_early(monkeypatch):
    from modelyard.train import automl_image

    def instant_train(model, x, y, lr, augment, seconds, seed, x_val=None, y_val=None, cancelled=None,
                      on_epoch=None, steps=None):
        model.eval()
        return model, 1.0, 0.5

    monkeypatch.setattr(automl_image, "_train", instant_train)
    monkeypatch.setattr(automl_image, "_fastest_threads", lambda *a: 1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 1, 8, 8), dtype=np.uint8)
    y = np.arange(40) % 2
    result = automl_image.search_image_arrays(x, y, x[:10], y[:10], ("a", "b"), time_budget_s=30)
    assert result.seconds < 26
    assert result.stop_reason.startswith("the winner's training schedule finished (1.0 epochs)")
    assert "before the time budget" in result.stop_reason
