"""The results page: every number comes from the benchmark JSON files, plots are written."""

from __future__ import annotations

import json

import numpy as np

from benchmarks import report


def _ope_entry(auc: float) -> dict:
    curve = np.linspace(1, 0, 21).tolist()
    return {"mean": {"auc": auc, "precision": auc + 10, "norm_precision": auc - 5}, "median_fps": 30.0,
            "sequences": {"A": {"auc": auc, "success_curve": curve, "precision_curve": np.linspace(0, 1, 51).tolist()}}}


def test_page_reads_numbers_from_the_json_and_draws_plots(tmp_path):
    run = tmp_path / "run"
    (run / "ope").mkdir(parents=True)
    (run / "ope" / "ope.json").write_text(json.dumps({"sstrack-lite": _ope_entry(52.6), "MIL": _ope_entry(32.0), "NanoTrack": _ope_entry(68.5)}))
    (run / "ope" / "ope.md").write_text("| table from ope |")
    (run / "effort").mkdir()
    effort = {"model": "sstrack-lite", "per_sequence": {}, "mean": {"0.5": {"ours": 1.5, "interpolation": 9.0, "NanoTrack": 1.2}}}
    (run / "effort" / "effort.json").write_text(json.dumps(effort))
    page = report.build(run, tmp_path / "docs" / "results.md", None)
    text = page.read_text()
    assert "| table from ope |" in text
    assert "mean AUC 52.6: ahead of MIL (32.0); behind NanoTrack (68.5)" in text
    assert "tau 0.5: ours 1.50; fewer boxes than us: NanoTrack (1.20)" in text
    for png in ("ope_success.png", "ope_precision.png", "effort.png"):
        path = tmp_path / "docs" / "results" / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(results/{png})" in text
    assert "## Speed" not in text  # no speed.json, no section
