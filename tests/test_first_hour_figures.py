"""Paper figures (issue 16): per-task raw scores with error bars, one panel per level, PNG 300 dpi + PDF/SVG."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_leaderboard import make_result  # noqa: E402

from copernicus_bench import figures  # noqa: E402
from copernicus_bench import leaderboard as lbm  # noqa: E402
from copernicus_bench.leaderboard import Cell  # noqa: E402


def _cards():
    from copernicus_bench.tasks import list_cards

    return list_cards()


def test_error_bar_is_ci_then_std_then_none():
    assert figures.error_bar(Cell("value", values=[1.0, 3.0], ci=(0.5, 2.5))) == (1.5, 0.5)
    std = Cell("value", values=[1.0, 3.0]).std
    assert figures.error_bar(Cell("value", values=[1.0, 3.0])) == (std, std)
    assert figures.error_bar(Cell("value", values=[2.0])) is None
    assert figures.error_bar(Cell("missing")) is None


def test_single_model_leaderboard_writes_png_pdf_svg_with_every_task(tmp_path):
    from PIL import Image

    cards = _cards()
    rs = [make_result("copernicus-fm", c.slug, s, (4.0 if c.metric == "rmse" else 70.0) + s,
                      applicable=[x.slug for x in cards]) for c in cards for s in range(2)]
    lb = lbm.build_leaderboard(rs, cards)
    paths = lbm.write_leaderboard(lb, tmp_path)
    for fmt in ("png", "pdf", "svg"):
        path = paths[f"figure_{fmt}"]
        assert path == tmp_path / f"tasks.{fmt}" and path.stat().st_size > 1000
    dpi = Image.open(tmp_path / "tasks.png").info["dpi"]
    assert dpi[0] == pytest.approx(300, abs=1)
    svg = (tmp_path / "tasks.svg").read_text()
    for card in cards:  # every task is drawn, in its metric's own units and direction
        assert card.name in svg
    assert "RMSE ↓ (target units)" in svg and "OA ↑ (%)" in svg and "Level 3: Specialized applications" in svg
    assert "± std over seeds" in svg
    assert (tmp_path / "tasks.pdf").read_bytes().startswith(b"%PDF")
