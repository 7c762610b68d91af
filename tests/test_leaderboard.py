"""`cbench leaderboard`: aggregation over seeds, columns, marks, paper comparison, summary, bad input."""

from __future__ import annotations

import csv
import json
import statistics
import warnings

import pytest

from copernicus_bench import leaderboard as lbm
from copernicus_bench.cards import card_from_dict
from copernicus_bench.results import SCHEMA, ResultKey, atomic_write_json, override_hash


def make_card(slug: str, level: int = 1, regression: bool = False, paper: dict | None = None, name: str | None = None):
    """A small valid card (independent of the shipped ones)."""
    data = {
        "slug": slug, "version": 1, "name": name or slug.upper(), "level": level,
        "level_name": {1: "preprocessing", 2: "base applications", 3: "specialized applications"}[level],
        "sensor": "s1", "product": "GRD", "task_type": "regression" if regression else "multiclass",
        "loader": "x:y", "archive_dir": slug, "bands": [{"name": "VV", "wavelength_nm": 5e7}],
        "classes": [] if regression else ["a", "b"], "ignore_index": None,
        "metric": "rmse" if regression else "oa", "higher_is_better": not regression,
        "normalization": {"mean": [[0.0]], "std": [[1.0]]},
        "target_stats": {"mean": 0.0, "std": 1.0} if regression else None,
        "native_size": 64, "loader_size": None, "resolution": 64, "kernel_size": 16, "gsd_m": 10.0,
        "patch_area_km2": 0.0256, "metadata": [], "input_mode": "spectral", "num_dates": 1,
        "probe": {"head": "upernet" if regression else "linear", "batch_size": 8, "lr": 0.1, "epochs": 2,
                  "optimizer": "sgd", "weight_decay": 0.0},
        "split_sizes": {"train": 4, "val": 4, "test": 4}, "paper": paper or {}, "source": "test", "license": "MIT",
    }
    return card_from_dict(data, slug)


CARDS = [
    make_card("cls-a", 1, paper={"copernicus-fm": {"mean": 80.0, "std": 0.5}, "random": {"mean": 70.0, "std": 0.1}}),
    make_card("cls-b", 2, paper={"copernicus-fm": {"mean": 90.0, "std": 0.1}}),
    make_card("reg-c", 3, regression=True, paper={"copernicus-fm": {"mean": 3.0, "std": 0.0}}),
]
ALL = ["cls-a", "cls-b", "reg-c"]


def make_result(model, task, seed, value, per_batch=None, source="released", sha=None, tier="full",
                protocol="cached", sample=False, applicable=ALL, created="2025-01-01T00:00:00", paper="same",
                **extra):
    sha = sha or (f"{model}-{source}".encode().hex() + "0" * 64)[:64]
    return {"schema": SCHEMA, "created": created, "model": model,
            "weights": {"source": source, "sha256": sha, "file": None,
                        "label": f"user:{sha[:8]}" if source == "user" else source},
            "task": task, "task_version": 1, "tier": tier, "protocol": protocol, "seed": seed, "overrides": {},
            "override_hash": "", "sample_data": sample,
            "metric": {"name": "x", "higher_is_better": True, "global": value,
                       "per_batch": value if per_batch is None else per_batch,
                       "paper": (value if per_batch is None else per_batch) if paper == "same" else paper},
            "best_epoch": 1, "applicable_tasks": list(applicable), "input_adaptation": [], **extra}


def standard_results():
    rs = []
    for seed, (a, b, c) in enumerate([(80.0, 90.0, 3.0), (82.0, 91.0, 3.2), (84.0, 92.0, 3.4)]):
        rs += [make_result("copernicus-fm", "cls-a", seed, a), make_result("copernicus-fm", "cls-b", seed, b),
               make_result("copernicus-fm", "reg-c", seed, c)]
    for seed, (a, c) in enumerate([(70.0, 4.0), (72.0, 4.2)]):
        sha = f"{seed:064x}"  # random's weights hash changes per seed
        rs += [make_result("random", "cls-a", seed, a, source="random-init", sha=sha),
               make_result("random", "reg-c", seed, c, source="random-init", sha=sha)]  # cls-b missing
    rs.append(make_result("softcon", "cls-a", 0, 85.0, applicable=["cls-a", "cls-b"]))  # reg-c: not applicable
    return rs


def test_cells_aggregate_seeds_with_sample_std_and_seed_count():
    lb = lbm.build_leaderboard(standard_results(), CARDS)
    col = {c.model: c for c in lb.columns}
    a = lb.rows[0].cells[col["copernicus-fm"].id]
    assert a.mean == pytest.approx(82.0)
    assert a.std == pytest.approx(statistics.stdev([80.0, 82.0, 84.0]))  # ddof=1 -> 2.0
    assert a.std == pytest.approx(2.0)
    assert lbm.cell_text(a) == "82.00 ± 2.00 (n=3)"
    single = lb.rows[0].cells[col["softcon"].id]
    assert lbm.cell_text(single) == "**85.00** (n=1)"  # one seed: no ±; best of the row


def test_random_is_one_column_and_random_init_is_labelled():
    lb = lbm.build_leaderboard(standard_results() + [
        make_result("dofa", "cls-a", 0, 60.0, source="random-init")], CARDS)
    random_cols = [c for c in lb.columns if c.model == "random"]
    assert len(random_cols) == 1
    assert lb.rows[0].cells[random_cols[0].id].n == 2
    assert [c.label for c in lb.columns if c.model == "dofa"] == ["dofa (random init)"]


def test_user_checkpoint_is_its_own_column_labelled_by_sha8():
    sha = "ab12cd34" + "0" * 56
    lb = lbm.build_leaderboard([make_result("copernicus-fm", "cls-a", 0, 80.0),
                                make_result("copernicus-fm", "cls-a", 0, 70.0, source="user", sha=sha)], CARDS)
    assert sorted(c.label for c in lb.columns) == ["copernicus-fm", "copernicus-fm (user:ab12cd34)"]


def test_not_applicable_and_missing_cells():
    lb = lbm.build_leaderboard(standard_results(), CARDS)
    col = {c.model: c.id for c in lb.columns}
    by_task = {r.card.slug: r for r in lb.rows}
    assert lbm.cell_text(by_task["reg-c"].cells[col["softcon"]]) == "-"
    assert lbm.cell_text(by_task["cls-b"].cells[col["softcon"]]) == "…"
    assert lbm.cell_text(by_task["cls-b"].cells[col["random"]]) == "…"


def test_best_respects_direction_of_the_metric():
    lb = lbm.build_leaderboard(standard_results(), CARDS)
    by_task = {r.card.slug: r for r in lb.rows}
    best = {r: [cid for cid, c in by_task[r].cells.items() if c.best] for r in ALL}
    assert best["cls-a"] == ["softcon/released/full/cached"]
    assert best["reg-c"] == ["copernicus-fm/released/full/cached"]  # RMSE: lower wins (3.2 < 4.1)


def test_markdown_groups_rows_by_level_and_takes_labels_from_cards():
    lb = lbm.build_leaderboard(standard_results(), CARDS)
    md = lbm.markdown_table(lb)
    lines = md.splitlines()
    assert lines[0].startswith("| Task | Metric | ")
    assert "| **Level 1: preprocessing** |" in md and "| **Level 3: specialized applications** |" in md
    assert md.index("Level 1") < md.index("CLS-A") < md.index("Level 2") < md.index("CLS-B") < md.index("REG-C")
    assert "| REG-C | RMSE ↓ |" in md and "| CLS-A | OA ↑ |" in md
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_smoke_and_paper_protocol_are_separate_marked_columns_never_averaged():
    rs = [make_result("copernicus-fm", "cls-a", 0, 80.0),
          make_result("copernicus-fm", "cls-a", 1, 99.0, tier="smoke"),
          make_result("copernicus-fm", "cls-a", 0, 70.0, protocol="paper")]
    lb = lbm.build_leaderboard(rs, CARDS)
    assert [c.label for c in lb.columns] == ["copernicus-fm", "copernicus-fm‡", "copernicus-fm†"]
    assert [lb.rows[0].cells[c.id].mean for c in lb.columns] == [80.0, 70.0, 99.0]
    assert all(lb.rows[0].cells[c.id].best for c in lb.columns)  # each is best within its own group
    assert any("smoke tier" in n for n in lb.notes) and any("paper protocol" in n for n in lb.notes)


def test_sample_data_is_stated_in_the_header():
    lb = lbm.build_leaderboard([make_result("random", "cls-a", 0, 50.0, source="random-init", sample=True)], CARDS)
    md = lbm.render_markdown(lb)
    head = md.split("| Task |")[0]
    assert "GENERATED SAMPLE" in head and "mean nothing" in head
    assert lb.columns[0].label == "random§"


def test_compare_paper_uses_metric_paper_and_flags_beyond_std_plus_tolerance():
    rs = [make_result("copernicus-fm", "cls-a", 0, 95.0, per_batch=70.0, paper=80.9),  # |0.9| <= 0.5 + 1.0: ok
          make_result("copernicus-fm", "cls-b", 0, 90.0, per_batch=70.0, paper=88.0),  # |-2.0| > 0.1 + 1.0: flag
          make_result("random", "cls-a", 0, 60.0, source="random-init", sha="1" * 64)]  # |−10| flag
    lb = lbm.build_leaderboard(rs, CARDS, compare_paper=True, tolerance=1.0)
    col = {c.model: c.id for c in lb.columns}
    a, b = lb.rows[0].cells[col["copernicus-fm"]], lb.rows[1].cells[col["copernicus-fm"]]
    assert (a.paper_mean, a.paper_flag, a.paper_diff) == (80.0, False, pytest.approx(0.9))
    assert (b.paper_flag, b.paper_diff) == (True, pytest.approx(-2.0))
    assert "paper 90.00 ± 0.10 ⚠ -2.00" in lbm.cell_text(b, compare=True)
    assert lb.rows[0].cells[col["random"]].paper_flag
    lb2 = lbm.build_leaderboard(rs, CARDS, compare_paper=True, tolerance=5.0)
    assert not lb2.rows[1].cells[col["copernicus-fm"]].paper_flag


def test_compare_paper_skips_random_init_of_other_models_and_does_not_flag_smoke():
    rs = [make_result("copernicus-fm", "cls-a", 0, 10.0, source="random-init"),
          make_result("copernicus-fm", "cls-b", 0, 10.0, tier="smoke")]
    lb = lbm.build_leaderboard(rs, CARDS, compare_paper=True)
    ri = next(c for c in lb.columns if c.weights == "random-init")
    smoke = next(c for c in lb.columns if c.tier == "smoke")
    assert lb.rows[0].cells[ri.id].paper_mean is None
    assert lb.rows[1].cells[smoke.id].paper_mean == 90.0 and not lb.rows[1].cells[smoke.id].paper_flag


def test_metric_choice_global_or_per_batch():
    rs = [make_result("copernicus-fm", "cls-a", 0, 80.0, per_batch=70.0)]
    assert lbm.build_leaderboard(rs, CARDS).rows[0].cells[lbm.column_of(rs[0]).id].mean == 80.0
    assert lbm.build_leaderboard(rs, CARDS, metric="per_batch").rows[0].cells[lbm.column_of(rs[0]).id].mean == 70.0


def test_summary_ranks_and_normalised_score_over_common_tasks():
    lb = lbm.build_leaderboard(standard_results(), CARDS)
    (s,) = lb.summaries
    # softcon has only cls-a; random lacks cls-b -> only cls-a is shared by all three ranked columns
    assert s.tasks == ["cls-a"]
    ids = {c.model: c.id for c in lb.columns}
    # cls-a means: softcon 85, copernicus-fm 82, random 71 -> ranks 1, 2, 3
    assert s.mean_rank == {ids["softcon"]: 1.0, ids["copernicus-fm"]: 2.0, ids["random"]: 3.0}
    # 0 at random (71), 1 at best (85)
    assert s.norm_score[ids["copernicus-fm"]] == pytest.approx((82 - 71) / (85 - 71))
    assert s.norm_score[ids["random"]] == 0.0 and s.norm_score[ids["softcon"]] == 1.0
    assert "over the 1 task(s)" in lbm.summary_markdown(lb)


def test_normalised_score_lower_is_better_and_without_random_anchor():
    assert lbm.normalised_scores({"a": 3.0, "b": 4.0, "r": 5.0}, higher=False, anchor=5.0) == \
        {"a": 1.0, "b": 0.5, "r": 0.0}
    assert lbm.normalised_scores({"a": 10.0, "b": 20.0, "c": 15.0}, higher=True, anchor=None) == \
        {"a": 0.0, "b": 1.0, "c": 0.5}


def test_ties_share_mean_rank():
    assert lbm._ranks({"a": 1.0, "b": 1.0, "c": 0.5}, higher=True) == {"a": 1.5, "b": 1.5, "c": 3.0}


def _write_results(tmp_path, results):
    d = tmp_path / "results"
    for r in results:
        atomic_write_json(d / ResultKey.of(r).filename(), r)
    return d


@pytest.fixture
def cards_installed(monkeypatch):
    import copernicus_bench.tasks as tasks

    monkeypatch.setattr(tasks, "list_cards", lambda: list(CARDS), raising=False)


def test_cli_writes_all_outputs_and_prints_table(tmp_path, capsys, cards_installed):
    from copernicus_bench.cli import main

    d = _write_results(tmp_path, standard_results())
    out = tmp_path / "lb"
    assert main(["leaderboard", "--results", str(d), "--out", str(out), "--compare-paper"]) == 0
    stdout = capsys.readouterr().out
    assert "| Task | Metric |" in stdout and "82.00 ± 2.00 (n=3)" in stdout
    for name in ("README.md", "leaderboard.csv", "leaderboard.json", "scores.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "leaderboard.json").read_text())
    assert data["schema"] == lbm.LEADERBOARD_SCHEMA and [t["slug"] for t in data["tasks"]] == ALL
    rows = list(csv.DictReader(open(out / "leaderboard.csv")))
    assert len(rows) == len(ALL) * len(data["columns"])
    fm_a = next(r for r in rows if r["task"] == "cls-a" and r["model"] == "copernicus-fm")
    assert float(fm_a["mean"]) == 82.0 and fm_a["n"] == "3" and fm_a["seeds"] == "0 1 2"


def test_cli_skips_truncated_and_foreign_json_with_a_warning(tmp_path, capsys, cards_installed):
    from copernicus_bench.cli import main

    d = _write_results(tmp_path, standard_results())
    (d / "broken.json").write_text('{"schema": "copernicus-bench/result/v1", "model": ')
    (d / "foreign.json").write_text(json.dumps({"hello": "world"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["leaderboard", "--results", str(d), "--out", str(tmp_path / "lb")]) == 0
    text = " ".join(str(w.message) for w in caught)
    assert "broken.json" in text and "foreign.json" in text
    assert "82.00 ± 2.00 (n=3)" in capsys.readouterr().out


def test_cli_duplicate_key_newest_wins_and_warning_names_both(tmp_path, capsys, cards_installed):
    from copernicus_bench.cli import main

    old = make_result("copernicus-fm", "cls-a", 0, 50.0, created="2025-01-01T00:00:00")
    new = make_result("copernicus-fm", "cls-a", 0, 77.0, created="2025-06-01T00:00:00")
    d = tmp_path / "results"
    atomic_write_json(d / "a" / "old.json", old)
    atomic_write_json(d / "b" / "new.json", new)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["leaderboard", "--results", str(d), "--out", str(tmp_path / "lb")]) == 0
    text = " ".join(str(w.message) for w in caught)
    assert "old.json" in text and "new.json" in text
    out = capsys.readouterr().out
    assert "**77.00** (n=1)" in out and "50.00" not in out


def test_cli_missing_results_folder_is_one_line_error(tmp_path, capsys, cards_installed):
    from copernicus_bench.cli import main

    assert main(["leaderboard", "--results", str(tmp_path / "nope"), "--out", str(tmp_path / "lb")]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err


def test_shipped_cards_build_a_table_when_present():
    tasks = pytest.importorskip("copernicus_bench.tasks")
    if not hasattr(tasks, "list_cards"):
        pytest.skip("task cards not landed yet")
    cards = tasks.list_cards()
    lb = lbm.build_leaderboard([], cards)
    md = lbm.markdown_table(lb)
    for card in cards:
        assert f"| {card.name} | {lbm.metric_label(card)} |" in md
    assert sorted({c.level for c in cards}) == [1, 2, 3]


def test_overrides_mark_columns_but_not_sample_data_or_random_init():
    plain = make_result("dofa", "cls-a", 0, 50.0, source="random-init", sample=True,
                        overrides={"data": "built-in sample", "model_args": {"random_init": True}},
                        override_hash="deadbeef")
    epochs = make_result("dofa", "cls-a", 1, 60.0, source="random-init", sample=True,
                         overrides={"data": "built-in sample", "model_args": {"random_init": True}, "epochs": 5},
                         override_hash="cafebabe")
    lb = lbm.build_leaderboard([plain, epochs], CARDS)
    labels = [c.label for c in lb.columns]
    assert labels == ["dofa (random init)§", "dofa (random init)§ [epochs=5]"]
    long = make_result("dofa", "cls-a", 2, 60.0, source="random-init",
                       overrides={"model_args": {"a_rather_long_option_name": "and-a-long-value"}})
    assert lbm.column_of(long).label == f"dofa (random init) [o{override_hash({'a_rather_long_option_name': 'and-a-long-value'})}]"


def test_normalised_score_is_clipped_when_the_baseline_is_nearly_best():
    s = lbm.normalised_scores({"best": 62.1, "random": 62.0, "bad": 10.0}, higher=True, anchor=62.0)
    assert s["best"] == 1.0 and s["random"] == 0.0 and s["bad"] == lbm.NORM_FLOOR


def test_compare_paper_on_a_result_without_metric_paper_is_marked_unavailable():
    rs = [make_result("copernicus-fm", "cls-a", 0, 95.0, paper=None)]  # an older file: no metric.paper
    with pytest.warns(UserWarning, match="no metric.paper.*--overwrite"):
        lb = lbm.build_leaderboard(rs, CARDS, compare_paper=True)
    cell = lb.rows[0].cells[lb.columns[0].id]
    assert cell.mean == 95.0 and cell.paper_diff is None and not cell.paper_flag
    assert "no comparison: old result without metric.paper, rerun with --overwrite" in lbm.cell_text(cell, compare=True)
