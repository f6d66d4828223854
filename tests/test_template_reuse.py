"""Template memory that keeps cached templates within their slot's share (ModelConfig.reuse_templates)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sstrack import Tracker, load_model
from sstrack.metrics import iou
from sstrack.sequences import load_sequence, read_image
from sstrack.tracker import keep_cached, select_memory


def test_a_slot_keeps_its_cached_template_while_it_is_in_the_slots_share():
    ids = list(range(201))
    assert select_memory(100, 101, 3) == [0, 16, 49, 82]
    assert keep_cached(100, ids[:101], set(), 3) == [0, 16, 49, 82]  # nothing cached: official
    assert keep_cached(100, ids[:101], {0, 10, 40, 70}, 3) == [0, 10, 40, 70]
    # At frame 200 the shares are [0, 66), [66, 132), [132, 198): 40 stays in the first; the other
    # two slots have nothing cached in their share and move to the official frames.
    assert keep_cached(200, ids, {0, 40, 70}, 3) == [0, 40, 70, 165]
    assert keep_cached(200, ids, {0, 60, 40}, 3) == [0, 40, 99, 165]  # nearest the official frame wins
    # Early frames take every stored template, as the official tracker does.
    assert keep_cached(3, [0, 1, 2], {0, 1}, 3) == [0, 1, 2]


def test_a_template_thinned_from_memory_is_not_kept():
    memory_ids = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 21]  # thinned: the result is memory indices
    official = keep_cached(21, memory_ids, set(), 3)
    assert [memory_ids[i] for i in official] == [0, 2, 10, 16]  # frames 0, 3, 10, 17, nearest stored
    assert keep_cached(21, memory_ids, {0, 3, 15}, 3) == official  # 3 and 15 are no longer stored
    # Shares at frame 21: [0, 7), [7, 14), [14, 21); 14 sits in the third, not the second.
    assert [memory_ids[i] for i in keep_cached(21, memory_ids, {0, 4, 14}, 3)] == [0, 4, 10, 14]


def _tracker(reuse: bool) -> Tracker:
    model = load_model("sstrack-lite")
    model.config = model.config.replace(reuse_templates=reuse)
    return Tracker(model, device="cpu")


@pytest.mark.parametrize("reuse", [False, True])
def test_reuse_embeds_far_fewer_templates_and_still_tracks(sot_dir, reuse):
    torch.set_num_threads(2)
    seq = load_sequence(sot_dir / "Crossing")
    tracker = _tracker(reuse)
    embedded = []
    embed = tracker._embed
    tracker._embed = lambda patches: (embedded.append(len(patches)), embed(patches))[1]
    state = tracker.start(read_image(seq.frames[0]), seq.ground_truth[0])
    boxes = [tracker.step([state], read_image(p))[0][0] for p in seq.frames[1:100]]
    overlap = iou(np.asarray(boxes), seq.ground_truth[1:100])
    assert overlap.mean() > 0.6
    if reuse:
        assert sum(embedded) < 40  # official: one template a frame (99); kept: a few per slot
    else:
        assert sum(embedded) > 80
