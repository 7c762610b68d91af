"""The self-contained leaderboard page in headless Chromium: a sort and a filter change the rows; screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from test_leaderboard import make_card
from test_leaderboard_uncertainty import with_samples

from copernicus_bench import leaderboard as lbm
from copernicus_bench.reported import ReportedColumn

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-dev-shm-usage", "--virtual-time-budget=3000"]
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no Chromium found (Debian: apt-get install -y chromium; "
                                                           ".ci/run installs it)")

CARDS = [make_card("t-s1", 1), make_card("t-two", 2), make_card("t-three", 3)]


def _page(tmp_path):
    import copernicus_bench.cards as cards_mod

    cards = [cards_mod.card_from_dict({**c.to_dict(), "sensor": s}, c.slug)
             for c, s in zip(CARDS, ("s1", "s2", "s2"))]
    rs = []
    accs = {"t-s1": (0.9, 0.5), "t-two": (0.6, 0.8), "t-three": (0.7, 0.75)}
    for task, (a, b) in accs.items():
        for seed in range(2):
            rs.append(with_samples(tmp_path, "copernicus-fm", task, seed, a, n=60))
            rs.append(with_samples(tmp_path, "dofa", task, seed, b, n=60, rng_seed=7))
    for r in rs:
        r["applicable_tasks"] = list(accs)
    rep = [ReportedColumn(model="copernicus-fm", display="Copernicus-FM", source="the paper",
                          scores={"t-s1": (80.0, 0.5)})]
    lb = lbm.build_leaderboard(rs, cards, reported=rep, n_boot=100)
    paths = lbm.write_leaderboard(lb, tmp_path / "lb", html=True)
    return lb, paths["html"]


def _rows(dom: str) -> list[str]:
    tbody = dom.split('<table id="lb">', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<tr data-task="([^"]+)"', tbody)


def _dump(page, fragment: str) -> str:
    out = subprocess.run([BROWSER, *FLAGS, "--dump-dom", f"file://{page}#{fragment}"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_page_is_self_contained(tmp_path):
    _, page = _page(tmp_path)
    text = page.read_text()
    assert "data:image/png;base64," in text and '<script type="application/json" id="lb-data">' in text
    # nothing is fetched at view time: no external src/href
    assert not re.search(r'(src|href)="(https?:)?//', text)


@needs_browser  # ~40 s (six Chromium starts on 2 cores), not marked slow: CI must run the page test
def test_sort_and_filter_change_the_rows_in_chromium(tmp_path):
    lb, page = _page(tmp_path)
    base = _rows(_dump(page, ""))
    assert base == ["t-s1", "t-two", "t-three"]  # card (level) order
    fm = next(i for i, c in enumerate(lb.columns) if c.model == "copernicus-fm" and c.kind == "measured")
    # header index: 0 task, 1 metric, then the columns; sort by copernicus-fm's value, descending
    dom = _dump(page, f"sort={fm + 2}&dir=desc")
    means = {r.card.slug: r.cells[lb.columns[fm].id].mean for r in lb.rows}
    assert _rows(dom) == sorted(means, key=means.get, reverse=True) != base
    assert _rows(_dump(page, f"sort={fm + 2}&dir=asc")) == sorted(means, key=means.get)
    # filter: sensor S2 keeps two tasks; measured-only drops the reported column
    assert _rows(_dump(page, "sensor=s2")) == ["t-two", "t-three"]
    dom = _dump(page, "kind=measured")
    head = dom.split("<thead>", 1)[1].split("</thead>", 1)[0]
    assert "(reported)" not in head and "(reported)" in _dump(page, "")
    # CIs and rank intervals are in the cells, provenance in their title
    assert 'class="ci">[' in dom and 'class="rank">r' in dom and "seed" in dom


@needs_browser
def test_screenshot(tmp_path):
    _, page = _page(tmp_path)
    shot = tmp_path / "shot.png"
    out = subprocess.run([BROWSER, *FLAGS, f"--screenshot={shot}", "--window-size=1400,900", f"file://{page}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_embedded_json_is_strict_even_with_nan_aggregates(tmp_path):
    """One column: its normalised scores are NaN (no range); the page's JSON must still parse in a browser."""
    import json

    from copernicus_bench.html import render_html

    rs = [with_samples(tmp_path, "random", "t-s1", s, 0.5, n=20, source="random-init", sha=f"{s:064x}")
          for s in range(2)]
    for r in rs:
        r["applicable_tasks"] = ["t-s1"]
    lb = lbm.build_leaderboard(rs, CARDS[:1], n_boot=50)
    text = render_html(lb)
    blob = text.split('<script type="application/json" id="lb-data">', 1)[1].split("</script>", 1)[0]

    def no_constants(name):
        raise AssertionError(f"{name} in the page's JSON")

    data = json.loads(blob.replace("<\\/", "</"), parse_constant=no_constants)
    assert data["tasks"][0]["cells"]
