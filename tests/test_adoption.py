"""Never worse: a fine-tuned model replaces the current one only when the keyframes say so."""

from __future__ import annotations

from projects.keyframe_eval import KeyframeScore, adoption_verdict


def test_a_worse_model_is_refused_with_both_scores():
    ok, text = adoption_verdict(KeyframeScore(0.61, 5), KeyframeScore(0.52, 5), "sstrack-lite")
    assert not ok and "worse" in text and "0.61" in text and "0.52" in text and "keeping sstrack-lite" in text


def test_a_better_or_equal_model_is_offered():
    assert adoption_verdict(KeyframeScore(0.61, 5), KeyframeScore(0.70, 5), "base")[0]
    assert adoption_verdict(KeyframeScore(0.61, 5), KeyframeScore(0.61, 5), "base")[0]


def test_without_keyframe_pairs_nothing_shows_it_is_not_worse():
    ok, text = adoption_verdict(KeyframeScore(float("nan"), 0), KeyframeScore(float("nan"), 0), "base")
    assert not ok and "no two keyframes" in text
