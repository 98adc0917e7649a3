"""Track ids for a clip's detections (``--track``): a box continues the live track of its class
whose last box it overlaps by IoU of at least ``iou_threshold``, so an object keeps one id over
the processed frames of a clip.

What it is: IoU continuity between consecutive processed frames, matched greedily per class
(the pair of highest IoU first; each track and each box used once per frame), a track kept alive
for ``max_unseen`` processed frames without a box. What it is not: a tracker with a motion model
or appearance features. An object that moves more than about its own size between two sampled
frames, or two objects of one class that cross, can change id; a lower ``--fps`` samples fewer
frames and so makes that likelier. Ids count from 1 in each clip (one :class:`Tracker` per clip).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import Fc2ConvError
from .boxes import box_iou

__all__ = ["IOU_THRESHOLD", "MAX_UNSEEN", "Tracker"]

#: the least IoU between a box and a track's last box at which the box continues the track
IOU_THRESHOLD = 0.3
#: processed frames a track may go unseen before it ends (seen again after more: a new id)
MAX_UNSEEN = 5


@dataclass
class _Track:
    id: int
    label: object
    box: np.ndarray  # the last box seen, x1 y1 x2 y2
    unseen: int = 0  # processed frames since that box


class Tracker:
    """Track ids for one clip's detections, frame by frame, in order."""

    def __init__(self, iou_threshold: float = IOU_THRESHOLD, max_unseen: int = MAX_UNSEEN) -> None:
        if not _real(iou_threshold) or not 0 < iou_threshold <= 1:
            raise Fc2ConvError(
                f"track IoU threshold {iou_threshold!r} is not in (0, 1]; pass a number such as "
                f"{IOU_THRESHOLD} (the least overlap at which a box continues a track)"
            )
        if not _whole(max_unseen) or max_unseen < 0:
            raise Fc2ConvError(
                f"track max unseen {max_unseen!r} is not a whole number >= 0; pass the processed "
                f"frames a track may go unseen before it ends, such as {MAX_UNSEEN}"
            )
        self.iou_threshold = float(iou_threshold)
        self.max_unseen = int(max_unseen)
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, boxes: np.ndarray, labels: np.ndarray) -> list[int]:
        """The track id of each box (N x 4, x1 y1 x2 y2) of one frame, same order; ids start at 1 per clip."""
        boxes = np.asarray(boxes, dtype=np.float64)
        labels = np.asarray(labels)
        if boxes.size == 0 and boxes.ndim < 2:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or labels.shape != (len(boxes),):
            raise Fc2ConvError(
                f"tracking needs one frame's boxes as N x 4 (x1 y1 x2 y2) and N labels; got boxes "
                f"of shape {boxes.shape} and labels of shape {labels.shape}"
            )
        ids: list[int | None] = [None] * len(boxes)
        seen: set[int] = set()  # indices into self._tracks matched this frame
        for label in np.unique(labels):
            in_frame = np.flatnonzero(labels == label)
            live = [i for i, track in enumerate(self._tracks) if track.label == label]
            if not live:
                continue
            last = np.stack([self._tracks[i].box for i in live])
            iou = box_iou(boxes[in_frame], last)
            # greedy: best pair first; ties by box order, then by the track's age in the clip
            order = np.argsort(-iou, axis=None, kind="stable")
            used_boxes: set[int] = set()
            for flat in order:
                row, col = divmod(int(flat), len(live))
                if iou[row, col] < self.iou_threshold:
                    break
                if row in used_boxes or live[col] in seen:
                    continue
                used_boxes.add(row)
                seen.add(live[col])
                track = self._tracks[live[col]]
                track.box, track.unseen = boxes[in_frame[row]].copy(), 0
                ids[int(in_frame[row])] = track.id
        for index, track in enumerate(self._tracks):
            if index not in seen:
                track.unseen += 1
        self._tracks = [track for track in self._tracks if track.unseen <= self.max_unseen]
        result: list[int] = []
        for index, track_id in enumerate(ids):
            if track_id is None:  # a box no live track of its class continues: a new track
                track_id = self._next_id
                self._next_id += 1
                self._tracks.append(_Track(track_id, labels[index].item(), boxes[index].copy()))
            result.append(track_id)
        return result


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
