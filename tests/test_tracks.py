"""Track ids over frames whose truth is known: boxes drawn to move, vanish and return, with the
exact ids each frame must get."""

from __future__ import annotations

import numpy as np
import pytest

from fc2conv.errors import Fc2ConvError
from fc2conv.run.tracks import IOU_THRESHOLD, MAX_UNSEEN, Tracker

EMPTY = np.zeros((0, 4))
NO_LABELS = np.zeros(0, dtype=np.int64)


def square(x: float, y: float, size: float = 20) -> list[float]:
    return [x, y, x + size, y + size]


def frame(*boxes: list[float]) -> np.ndarray:
    return np.array(boxes, dtype=np.float32).reshape(-1, 4)


def test_defaults_are_the_documented_ones() -> None:
    tracker = Tracker()
    assert (tracker.iou_threshold, tracker.max_unseen) == (IOU_THRESHOLD, MAX_UNSEEN) == (0.3, 5)


def test_a_box_moving_5_px_a_frame_keeps_one_id() -> None:
    tracker = Tracker()  # a 20 px square moved 5 px: IoU 15/25 = 0.6
    ids = [tracker.update(frame(square(5 * t, 10)), np.array([0])) for t in range(20)]
    assert ids == [[1]] * 20


def test_overlapping_objects_of_two_classes_keep_separate_ids() -> None:
    tracker = Tracker()
    ids = [
        tracker.update(frame(square(5 * t, 10), square(5 * t + 2, 12)), np.array([0, 1]))
        for t in range(10)
    ]
    assert ids == [[1, 2]] * 10


def test_two_objects_of_one_class_far_apart_get_two_ids() -> None:
    tracker = Tracker()
    ids = [
        tracker.update(frame(square(5 * t, 10), square(300 - 5 * t, 200)), np.array([3, 3]))
        for t in range(10)
    ]
    assert ids == [[1, 2]] * 10


def test_the_order_of_boxes_in_a_frame_does_not_swap_ids() -> None:
    tracker = Tracker()
    assert tracker.update(frame(square(0, 0), square(100, 0)), np.array([0, 0])) == [1, 2]
    assert tracker.update(frame(square(104, 0), square(4, 0)), np.array([0, 0])) == [2, 1]


def gap_ids(frames_unseen: int, max_unseen: int = 5) -> list[list[int]]:
    """Ids of an object seen for 3 frames, gone for ``frames_unseen``, then seen for 2."""
    tracker = Tracker(max_unseen=max_unseen)
    labels = np.array([7])
    ids = [tracker.update(frame(square(50, 50)), labels) for _ in range(3)]
    ids += [tracker.update(EMPTY, NO_LABELS) for _ in range(frames_unseen)]
    ids += [tracker.update(frame(square(52, 50)), labels) for _ in range(2)]
    return ids


def test_an_object_gone_for_3_frames_keeps_its_id() -> None:
    assert gap_ids(3) == [[1], [1], [1], [], [], [], [1], [1]]


def test_an_object_gone_for_7_frames_gets_a_new_id() -> None:
    assert gap_ids(7) == [[1], [1], [1]] + [[]] * 7 + [[2], [2]]


@pytest.mark.parametrize(
    ("frames_unseen", "max_unseen", "returning_id"), [(5, 5, 1), (6, 5, 2), (0, 0, 1), (1, 0, 2)]
)
def test_a_track_ends_after_more_than_max_unseen_frames(
    frames_unseen: int, max_unseen: int, returning_id: int
) -> None:
    ids = gap_ids(frames_unseen, max_unseen)
    assert ids[-2:] == [[returning_id], [returning_id]]


def test_a_jump_larger_than_its_size_starts_a_new_track() -> None:
    tracker = Tracker()
    labels = np.array([0])
    assert tracker.update(frame(square(0, 0)), labels) == [1]
    assert tracker.update(frame(square(4, 0)), labels) == [1]
    assert tracker.update(frame(square(30, 0)), labels) == [2]  # 26 px for a 20 px square
    assert tracker.update(frame(square(34, 0)), labels) == [2]


def test_the_threshold_is_inclusive() -> None:
    # a 20 px square moved 10 px: IoU 200 / 600 = 1/3
    for threshold, second in ((1 / 3, 1), (0.34, 2)):
        tracker = Tracker(iou_threshold=threshold)
        assert tracker.update(frame(square(0, 0)), np.array([0])) == [1]
        assert tracker.update(frame(square(10, 0)), np.array([0])) == [second]


def test_a_track_continues_one_box_only() -> None:
    tracker = Tracker()
    assert tracker.update(frame(square(0, 0)), np.array([0])) == [1]
    # both overlap track 1; the better one (IoU 0.6 against 0.33) continues it
    assert tracker.update(frame(square(10, 0), square(5, 0)), np.array([0, 0])) == [2, 1]


def test_greedy_takes_the_best_pair_first() -> None:
    tracker = Tracker(iou_threshold=0.1)
    assert tracker.update(frame(square(0, 0), square(30, 0)), np.array([0, 0])) == [1, 2]
    # the box at 14 overlaps track 1 by IoU 0.18 and track 2 by 0.11; the box at 4 overlaps
    # track 1 by 0.67, so it takes track 1 first and the box at 14 continues track 2 (matching
    # box by box in frame order would give the box at 14 track 1 and the box at 4 a new id)
    assert tracker.update(frame(square(14, 0), square(4, 0)), np.array([0, 0])) == [2, 1]


def test_empty_frames() -> None:
    tracker = Tracker()
    assert tracker.update(EMPTY, NO_LABELS) == []
    assert tracker.update(np.zeros((0, 4), dtype=np.float32), np.array([], dtype=np.int64)) == []
    assert tracker.update(frame(square(0, 0)), np.array([0])) == [1]
    assert tracker.update(EMPTY, NO_LABELS) == []
    assert tracker.update(frame(square(0, 0)), np.array([0])) == [1]


def test_string_labels() -> None:
    tracker = Tracker()
    labels = np.array(["circle", "square"])
    assert tracker.update(frame(square(0, 0), square(0, 0)), labels) == [1, 2]
    assert tracker.update(frame(square(3, 0), square(3, 0)), labels[::-1]) == [2, 1]


def test_ids_count_from_1_in_each_clip() -> None:
    for _ in range(2):
        tracker = Tracker()
        assert tracker.update(frame(square(0, 0), square(100, 0)), np.array([0, 1])) == [1, 2]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"iou_threshold": 0},
            r"track IoU threshold 0 is not in \(0, 1\]; pass a number such as 0.3",
        ),
        ({"iou_threshold": 1.5}, r"track IoU threshold 1.5 is not in \(0, 1\]"),
        ({"iou_threshold": float("nan")}, r"track IoU threshold nan is not in \(0, 1\]"),
        ({"iou_threshold": True}, r"track IoU threshold True is not in \(0, 1\]"),
        (
            {"max_unseen": -1},
            r"track max unseen -1 is not a whole number >= 0; pass the processed frames a track "
            r"may go unseen before it ends, such as 5",
        ),
        ({"max_unseen": 2.5}, r"track max unseen 2.5 is not a whole number >= 0"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, float], message: str) -> None:
    with pytest.raises(Fc2ConvError, match=message):
        Tracker(**arguments)  # type: ignore[arg-type]


def test_the_edges_of_the_arguments_are_accepted() -> None:
    tracker = Tracker(iou_threshold=1, max_unseen=0)
    assert (tracker.iou_threshold, tracker.max_unseen) == (1.0, 0)
    assert tracker.update(frame(square(0, 0)), np.array([0])) == [1]
    assert tracker.update(frame(square(0, 0)), np.array([0])) == [1]  # IoU exactly 1
    assert tracker.update(frame(square(1, 0)), np.array([0])) == [2]


@pytest.mark.parametrize(
    ("boxes", "labels"),
    [(np.zeros((2, 3)), np.zeros(2)), (np.zeros((2, 4)), np.zeros(3)), (np.zeros(4), np.zeros(1))],
)
def test_malformed_frames_are_refused(boxes: np.ndarray, labels: np.ndarray) -> None:
    with pytest.raises(Fc2ConvError, match=r"tracking needs one frame's boxes as N x 4"):
        Tracker().update(boxes, labels)
