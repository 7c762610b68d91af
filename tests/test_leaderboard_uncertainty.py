"""Leaderboard CIs, rank intervals, IQM, facets, reported columns, cost, export, files — and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_leaderboard import make_card, make_result

from copernicus_bench import leaderboard as lbm
from copernicus_bench import per_sample as ps
from copernicus_bench.errors import CbenchError
from copernicus_bench.reported import ReportedColumn, load_reported

CARDS = [make_card("cls-a", 1), make_card("cls-b", 2)]
ALL = ["cls-a", "cls-b"]


def with_samples(tmp_path, model, task, seed, acc, n=200, source="released", sha=None, rng_seed=0):
    """A result whose stored metric is computed from per-sample outputs written beside it."""
    rng = np.random.default_rng(rng_seed + seed)
    correct = rng.random(n) < acc
    arrays = {"scores": rng.normal(size=(n, 2)).astype(np.float32), "pred": np.where(correct, 0, 1),
              "label": np.zeros(n, dtype=np.int64), "batch_sizes": np.array([n // 2, n - n // 2])}
    value = 100.0 * correct.mean()
    r = make_result(model, task, seed, value, source=source, sha=sha, applicable=ALL)
    r["metric"]["name"] = "oa"
    path = tmp_path / f"{model}__{task}__seed{seed}.json"
    r["per_sample"] = ps.write_per_sample(path, "oa", arrays)
    r["_path"] = str(path)
    r["cost"] = {"encoder_params": 1e6, "encoder_gflops_per_image": 2.0, "head_gflops_per_step": 0.5,
                 "encoder_images_per_s": 100.0, "read_s": 1.0, "encode_s": 2.0, "train_s": 3.0, "total_s": 6.5,
                 "peak_memory_mb": 500.0, "device": "cpu"}
    path.write_text(json.dumps({k: v for k, v in r.items() if k != "_path"}))
    return r


def results(tmp_path):
    rs = []
    for task in ALL:
        for seed in range(3):
            rs.append(with_samples(tmp_path, "copernicus-fm", task, seed, 0.9))
            rs.append(with_samples(tmp_path, "dofa", task, seed, 0.6, rng_seed=10))
            rs.append(with_samples(tmp_path, "softcon", task, seed, 0.605, rng_seed=20))
            rs.append(with_samples(tmp_path, "random", task, seed, 0.5, source="random-init", sha=f"{seed:064x}",
                                   rng_seed=30))
    return rs


def test_cells_get_a_bootstrap_ci_around_the_seed_mean_and_it_is_reproducible(tmp_path):
    rs = results(tmp_path)
    lb = lbm.build_leaderboard(rs, CARDS, n_boot=300, boot_seed=1)
    col = {c.model: c for c in lb.columns}
    cell = lb.rows[0].cells[col["copernicus-fm"].id]
    assert cell.ci is not None and cell.ci[0] < cell.mean < cell.ci[1]
    assert cell.ci[1] - cell.ci[0] < 10  # 600 images in 3 seeds: a few points wide
    again = lbm.build_leaderboard(rs, CARDS, n_boot=300, boot_seed=1)
    assert again.rows[0].cells[col["copernicus-fm"].id].ci == cell.ci
    other = lbm.build_leaderboard(rs, CARDS, n_boot=300, boot_seed=2)
    assert other.rows[0].cells[col["copernicus-fm"].id].ci != cell.ci
    text = lbm.cell_text(cell)
    assert f"[{lbm.fmt(cell.ci[0])}, {lbm.fmt(cell.ci[1])}]" in text


def test_rank_intervals_tie_inseparable_models_and_separate_clear_ones(tmp_path):
    lb = lbm.build_leaderboard(results(tmp_path), CARDS, n_boot=300)
    col = {c.model: c.id for c in lb.columns}
    cells = lb.rows[0].cells
    assert cells[col["copernicus-fm"]].rank_interval == (1, 1)
    # dofa (60 %) and softcon (60.5 %) on 200 images × 3 seeds are not separable: both span ranks 2-3
    assert cells[col["dofa"]].rank_interval == (2, 3) == cells[col["softcon"]].rank_interval
    assert cells[col["random"]].rank_interval[1] == 4
    md = lbm.render_markdown(lb)
    assert "r2–3" in md and "r1" in md


def test_summary_has_iqm_with_ci_and_rank_interval(tmp_path):
    lb = lbm.build_leaderboard(results(tmp_path), CARDS, n_boot=200)
    s = lb.summaries[0]
    fm = next(c.id for c in lb.columns if c.model == "copernicus-fm")
    rnd = next(c.id for c in lb.columns if c.model == "random")
    assert s.iqm[fm] == pytest.approx(1.0, abs=0.05) and abs(s.iqm[rnd]) < 0.1
    assert s.iqm_ci[fm][0] <= s.iqm[fm] <= s.iqm_ci[fm][1] + 1e-9
    assert s.rank_interval[fm] == (1, 1)
    assert "IQM [95 % CI]" in lbm.summary_markdown(lb)


def test_result_without_per_sample_outputs_shows_no_ci_and_says_why(tmp_path):
    rs = results(tmp_path)
    old = make_result("croma", "cls-a", 0, 55.0, applicable=ALL)  # an older file: no per_sample
    lb = lbm.build_leaderboard(rs + [old], CARDS, n_boot=100)
    cell = lb.rows[0].cells[next(c.id for c in lb.columns if c.model == "croma")]
    assert cell.ci is None and "no per-sample outputs" in cell.ci_note
    assert "[" not in lbm.cell_text(cell)
    # ranks over a subset would mislead: nobody in that task gets an interval
    assert all(c.rank_interval is None for c in lb.rows[0].cells.values())
    assert "no CI" in lb.summaries[0].iqm_note or not lb.summaries[0].iqm_ci


def test_tampered_per_sample_file_is_excluded_and_named(tmp_path):
    rs = results(tmp_path)
    victim = next(r for r in rs if r["model"] == "dofa" and r["task"] == "cls-a" and r["seed"] == 1)
    path = tmp_path / victim["per_sample"]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="does not match the sha256"):
        lb = lbm.build_leaderboard(rs, CARDS, n_boot=100)
    assert any(path.name in e for e in lb.excluded)
    cell = lb.rows[0].cells[next(c.id for c in lb.columns if c.model == "dofa")]
    assert cell.ci is None and "sha256" in cell.ci_note
    assert "Per-sample files refused" in lbm.render_markdown(lb)


def test_per_sample_outputs_that_do_not_reproduce_the_stored_metric_are_refused(tmp_path):
    rs = results(tmp_path)
    rs[0]["metric"]["global"] += 5.0
    with pytest.warns(UserWarning, match="not the stored global"):
        lb = lbm.build_leaderboard(rs, CARDS, n_boot=50)
    assert any("not the stored global" in e for e in lb.excluded)


def test_breakdowns_per_sensor_type_level_name_missing_tasks(tmp_path):
    rs = [r for r in results(tmp_path) if not (r["model"] == "dofa" and r["task"] == "cls-b")]
    lb = lbm.build_leaderboard(rs, CARDS, n_boot=0)
    s = lb.summaries[0]
    by = {(b.facet, b.key): b for b in s.breakdowns}
    assert by[("level", "L1")].tasks == ["cls-a"] and by[("level", "L2")].tasks == []
    assert by[("level", "L2")].missing == ["cls-b"]
    assert by[("sensor", "S1")].missing == ["cls-b"]
    assert "Left out of a facet" in lbm.render_markdown(lb)


def test_reported_columns_are_marked_separate_and_sourced(tmp_path):
    rep = [ReportedColumn(model="copernicus-fm", display="Copernicus-FM", source="Paper X, Table 2",
                          scores={"cls-a": (99.0, 0.1)}),
           ReportedColumn(model="terra", display="Terra", source="Paper Y, Table 3", scores={"cls-a": (50.0, None)})]
    lb = lbm.build_leaderboard(results(tmp_path), CARDS, reported=rep, n_boot=50)
    reported = [c for c in lb.columns if c.kind == "reported"]
    assert [c.label for c in reported] == ["Copernicus-FM (reported)", "Terra (reported)"]
    cells = lb.rows[0].cells
    measured_best = [cid for cid, c in cells.items() if c.best and not cid.startswith("reported/")]
    assert measured_best == [next(c.id for c in lb.columns if c.model == "copernicus-fm" and c.kind == "measured")]
    assert lbm.cell_text(cells[reported[1].id]) == "50.00 (no std)"
    assert cells[reported[0].id].std == 0.1 and cells[reported[0].id].ci is None
    assert all(not any(c.startswith("reported/") for c in s.columns) for s in lb.summaries if s.group[0] != "reported")
    md = lbm.render_markdown(lb)
    assert "Paper X, Table 2" in md and "Paper Y, Table 3" in md


def test_cost_table_and_costs_csv(tmp_path):
    lb = lbm.build_leaderboard(results(tmp_path), CARDS, n_boot=0)
    md = lbm.cost_markdown(lb)
    assert "compare only within one device type" in md
    row = next(r for r in lbm.cost_summary(lb) if r["column"] == "copernicus-fm")
    assert row["encoder_gflops_per_image"] == pytest.approx(2.0) and row["train_s"] == pytest.approx(6.0)
    paths = lbm.write_leaderboard(lb, tmp_path / "lb")
    assert "cls-a" in paths["costs"].read_text()


def test_export_keeps_reported_vs_measured_and_cis(tmp_path):
    rep = [ReportedColumn(model="x", display="X", source="Paper Z", scores={"cls-a": (70.0, 1.0)})]
    lb = lbm.build_leaderboard(results(tmp_path), CARDS, reported=rep, n_boot=100)
    paths = lbm.write_leaderboard(lb, tmp_path / "lb")
    doc = json.loads(paths["export"].read_text())
    kinds = {r["model_info"]["id"]: r["source_metadata"]["source_type"] for r in doc["records"]}
    assert kinds["x"] == "documentation" and kinds["copernicus-fm"] == "evaluation_run"
    fm = next(r for r in doc["records"] if r["model_info"]["id"] == "copernicus-fm")
    ci = fm["evaluation_results"][0]["score_details"]["uncertainty"]["confidence_interval"]
    assert ci["lower"] < fm["evaluation_results"][0]["score_details"]["score"] < ci["upper"]
    assert ci["confidence_level"] == 0.95
    for rec in doc["records"]:
        assert {"schema_version", "evaluation_id", "retrieved_timestamp", "source_metadata", "model_info",
                "eval_library", "evaluation_results"} <= set(rec)


def test_reported_file_bad_input_names_file_and_line(tmp_path):
    good = tmp_path / "ok.yaml"
    good.write_text("sources:\n  - model: t\n    display: T\n    source: P, Table 1\n    scores:\n"
                    "      cls-a: {mean: 80.5, std: null}\n")
    cols = load_reported(good, ALL)
    assert cols[0].scores == {"cls-a": (80.5, None)}
    bad_task = tmp_path / "bad_task.yaml"
    bad_task.write_text("sources:\n  - model: t\n    source: P\n    scores:\n      nope: {mean: 1, std: 0}\n")
    with pytest.raises(CbenchError, match=r"bad_task.yaml:5: unknown task 'nope'"):
        load_reported(bad_task, ALL)
    bad_value = tmp_path / "bad_value.yaml"
    bad_value.write_text("sources:\n  - model: t\n    source: P\n    scores:\n      cls-a: {mean: abc, std: 0}\n")
    with pytest.raises(CbenchError, match=r"bad_value.yaml:5: task cls-a: mean must be a finite number"):
        load_reported(bad_value, ALL)


def test_shipped_reported_file_and_paper_columns_load():
    from copernicus_bench.reported import reported_columns
    from copernicus_bench.tasks import list_cards

    cols = reported_columns(list_cards())
    names = [c.model for c in cols]
    assert names[:7] == ["supervised-vit-s16", "supervised-vit-b16", "random", "softcon", "croma", "dofa",
                         "copernicus-fm"]
    fm = cols[6]
    assert fm.scores["aq-o3-s5p"] == (789.4, 2.6)  # the paper's table (the card's ``paper:``)
    assert "softcon" in names and "cloud-s3" not in cols[3].scores  # SoftCon has no S3 number
