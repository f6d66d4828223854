"""The absence watch: when a track's object is judged gone, out of view or hidden, and back."""

from __future__ import annotations

import numpy as np

from sstrack.absence import AbsenceRule, AbsenceWatch

MIDDLE = (300.0, 200.0, 60.0, 60.0)
AT_RIGHT_EDGE = (590.0, 200.0, 50.0, 60.0)  # touches x = 640


def feed(watch: AbsenceWatch, scores: list[float], box=MIDDLE) -> list[str]:
    """The verdicts for a run of frames with these scores."""
    return [watch.update(box, s) for s in scores]


def test_a_short_dip_is_not_absence_and_a_lasting_fall_is():
    watch = AbsenceWatch(640, 360)
    assert feed(watch, [0.5] * 10 + [0.1, 0.1, 0.5]) == ["visible"] * 13  # two low frames: blur, not gone
    verdicts = feed(watch, [0.1, 0.1, 0.1])
    assert verdicts == ["visible", "visible", "occluded"]  # last seen mid-frame: hidden
    assert watch.backdate == 2  # the two frames before were already gone: the engine rewrites them


def test_low_is_relative_to_the_tracks_own_level():
    """A track that always scores 0.15 is not gone at 0.15; one at 0.5 is gone at 0.15."""
    steady = AbsenceWatch(640, 360)
    assert set(feed(steady, [0.15] * 20)) == {"visible"}
    falling = AbsenceWatch(640, 360)
    assert feed(falling, [0.5] * 10 + [0.15] * 3)[-1] == "occluded"


def test_last_seen_at_a_border_is_out_of_view_and_it_comes_back():
    watch = AbsenceWatch(640, 360)
    feed(watch, [0.5] * 10, AT_RIGHT_EDGE)
    assert feed(watch, [0.05] * 3, AT_RIGHT_EDGE)[-1] == "out_of_view"
    assert set(feed(watch, [0.3] * 20)) == {"out_of_view"}  # the background's score: not the object
    assert feed(watch, [0.45, 0.45, 0.45]) == ["out_of_view", "out_of_view", "visible"]
    assert watch.backdate == 2


def test_a_sliver_near_a_border_is_out_of_view_by_the_object_s_usual_size():
    """01_dog.mp4's exit: the last sighting is a 27 px sliver 8 px from the border of a 110 px dog."""
    watch = AbsenceWatch(1280, 720)
    feed(watch, [0.5] * 10, (900.0, 400.0, 110.0, 100.0))
    feed(watch, [0.5] * 2, (1245.0, 330.0, 27.0, 82.0))  # 8 px from x = 1280: more than a quarter of 27 px; not moving
    assert feed(watch, [0.05] * 3, (1245.0, 330.0, 27.0, 82.0))[-1] == "out_of_view"
    inside = AbsenceWatch(1280, 720)
    feed(inside, [0.5] * 10, (900.0, 400.0, 110.0, 100.0))
    feed(inside, [0.5] * 2, (1200.0, 330.0, 27.0, 82.0))  # 53 px from the border: hidden, not left
    assert feed(inside, [0.05] * 3, (1200.0, 330.0, 27.0, 82.0))[-1] == "occluded"


def test_the_search_box_has_the_usual_size_inside_the_frame():
    """At a border the box shrinks to a sliver; the search looks around the object's usual size."""
    watch = AbsenceWatch(640, 360)
    feed(watch, [0.5] * 8, (500.0, 100.0, 80.0, 40.0))
    feed(watch, [0.5] * 2, (630.0, 100.0, 10.0, 40.0))
    box = watch.search_box()
    assert box is not None
    np.testing.assert_allclose(box[2:], (80.0, 40.0))
    assert box[0] + box[2] <= 640 and box[0] > 500


def test_the_rule_is_settable():
    watch = AbsenceWatch(640, 360, AbsenceRule(patience=5))
    assert feed(watch, [0.5] * 10 + [0.1] * 4)[-1] == "visible"
    assert watch.update(MIDDLE, 0.1) == "occluded"


def test_heading_fast_out_of_the_frame_is_out_of_view():
    """A box lagging behind a fast object that leaves is not at the border yet; its motion says where it goes."""
    watch = AbsenceWatch(640, 360)
    for i in range(10):
        watch.update((100.0 + 45 * i, 200.0, 60.0, 60.0), 0.5)  # last seen at x 505..565, 75 px from the border, 45 px a frame
    still = AbsenceWatch(640, 360)
    for _ in range(10):
        still.update((300.0, 200.0, 60.0, 60.0), 0.5)
    for _ in range(3):
        verdict, resting = watch.update(MIDDLE, 0.05), still.update(MIDDLE, 0.05)
    assert (verdict, resting) == ("out_of_view", "occluded")
    slow = AbsenceWatch(640, 360)
    for i in range(10):
        slow.update((100.0 + 10 * i, 200.0, 60.0, 60.0), 0.5)  # moving right, far from the border
    assert feed(slow, [0.05] * 3)[-1] == "occluded"


def test_a_box_unlike_its_object_argues_gone_even_at_the_usual_score():
    """On background that fills the search crop the score can stay at the object's level; the look cannot."""
    watch = AbsenceWatch(640, 360)
    for _ in range(10):
        watch.update(MIDDLE, 0.4, look=0.6)
    assert watch.update(MIDDLE, 0.4, look=-0.2) == "visible"  # one odd frame: a blur, a turn
    assert watch.update(MIDDLE, 0.4, look=0.5) == "visible"
    assert [watch.update(MIDDLE, 0.4, look=-0.2) for _ in range(3)] == ["visible", "visible", "occluded"]
    # Back at the usual score, but still unlike the object: not back.
    assert {watch.update(MIDDLE, 0.45, look=-0.1) for _ in range(5)} == {"occluded"}
    assert [watch.update(MIDDLE, 0.45, look=0.4) for _ in range(3)][-1] == "visible"


def test_without_the_look_rule_only_scores_count():
    watch = AbsenceWatch(640, 360, AbsenceRule(unlike=None))
    assert {watch.update(MIDDLE, 0.4, look=-0.5) for _ in range(15)} == {"visible"}
    unknown = AbsenceWatch(640, 360)
    assert {unknown.update(MIDDLE, 0.4, look=None) for _ in range(15)} == {"visible"}


def test_what_has_not_changed_since_the_object_left_is_not_the_object_back():
    """01_dog.mp4: the held search at the exit point scores the bushes there at the dog's level."""
    watch = AbsenceWatch(640, 360)
    feed(watch, [0.5] * 10, AT_RIGHT_EDGE)
    assert feed(watch, [0.05] * 3, AT_RIGHT_EDGE)[-1] == "out_of_view"
    # The background where the dog left: its box's content is the same as when it was judged gone.
    assert {watch.update(AT_RIGHT_EDGE, 0.5, 0.3, since_gone=1.0) for _ in range(10)} == {"out_of_view"}
    # The dog coming back changes it (0.68 as it enters, then below 0.1).
    assert [watch.update(AT_RIGHT_EDGE, 0.5, 0.3, since_gone=v) for v in (0.68, 0.07, -0.29)][-1] == "visible"
    unchecked = AbsenceWatch(640, 360, AbsenceRule(unchanged=None))
    feed(unchecked, [0.5] * 10, AT_RIGHT_EDGE)
    feed(unchecked, [0.05] * 3, AT_RIGHT_EDGE)
    assert [unchecked.update(AT_RIGHT_EDGE, 0.5, 0.3, since_gone=1.0) for _ in range(3)][-1] == "visible"
