"""One training sample (docs/sstrack-reference.md §4), built on CPU in a loader worker.

A sample holds:
- `template`: the initial reference crop around the initial box (factor 2, template size);
- `global_search` / `global_frames`: S later frames, whole (zero-padded bottom/right to a square,
  here with the frame's mean colour), at search size for the network and at twice that size for
  cropping the online templates from the forward predictions;
- `views`: V augmented search crops of the initial frame (backward tracking) and their exact
  target boxes; `static_templates`: augmented crops of the initial box (templates while the
  global stage is off);
- CTP samples: a patch from another clip pasted into the initial frame and into every search
  frame; the paste boxes are known exactly (`global_boxes`, `known_boxes` true);
- keyframe-pair samples (`TrainConfig.pair_ratio`): the initial frame is one user keyframe of an
  object and the search frames are its other keyframes, whose user boxes are known too.
Sample i is a pure function of (seed, i), so a resumed run sees the same data.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from torch.utils.data import Dataset

from sstrack.config import ModelConfig
from sstrack.crops import crop_around, crop_window, extract, padding_value
from trainer.augment import hflip, motion_blur, occlude, paste_patch, shear, view_of
from trainer.clips import MIN_BOX_SIDE, Clip
from trainer.config import TrainConfig, check_share


class SampleError(Exception):
    """No valid sample could be built from the clips (their boxes are too small or off the frame)."""


def clip_weights(clips: list[Clip], user_box_share: float | None = None) -> np.ndarray:
    """Each clip's chance of being drawn: by its number of initial frames, so long videos are seen
    more often; with `user_box_share`, the clips with user boxes share that much of it."""
    weights = np.array([max(1, len(c.initial_boxes)) for c in clips], dtype=np.float64)
    user = np.array([c.user_boxes for c in clips], dtype=bool)
    check_share("user_box_share", user_box_share)
    if user_box_share is not None and user.any() and not user.all():
        weights[user] *= user_box_share / weights[user].sum()
        weights[~user] *= (1.0 - user_box_share) / weights[~user].sum()
    return weights / weights.sum()


class SampleMaker:
    """Builds samples from decoded clips for one model config and training config."""

    def __init__(self, clips: list[Clip], model: ModelConfig, train: TrainConfig) -> None:
        self.clips = clips
        self.model = model
        self.train = train
        self.frame_size = 2 * model.search_size
        self.clip_weights = clip_weights(clips, train.user_box_share)

    def make(self, seed: int, index: int) -> dict[str, np.ndarray]:
        """Sample `index` of the run seeded with `seed`."""
        rng = np.random.default_rng([seed, index])
        for _ in range(20):
            sample = self._try_make(rng)
            if sample is not None:
                return sample
        raise SampleError(f"could not build a valid training sample in 20 tries (sample {index} of seed {seed})")

    # -- composition ------------------------------------------------------------------------------
    def _try_make(self, rng: np.random.Generator) -> dict[str, np.ndarray] | None:
        clip_index = int(rng.choice(len(self.clips), p=self.clip_weights))
        clip = self.clips[clip_index]
        is_ctp = rng.uniform() < self.train.ctp_ratio
        # Drawn only when pairs exist, so runs without them see exactly the samples they always did.
        paired = [t for t in clip.tracks if len(t) >= 2] if self.train.pair_ratio > 0 else []
        pair = paired[rng.integers(len(paired))] if not is_ctp and paired and rng.uniform() < self.train.pair_ratio else None
        keys = sorted(clip.initial_boxes)
        if is_ctp:
            start = int(rng.integers(0, len(clip)))
        elif pair is not None:
            start = int(sorted(pair)[rng.integers(len(pair))])
        else:
            start = int(keys[rng.integers(len(keys))])
        search_ids = self._search_ids(len(clip), start, rng) if pair is None else self._pair_ids(pair, start, rng)
        image0 = clip.frame(start)
        searches = [clip.frame(i) for i in search_ids]
        search_boxes = np.zeros((len(searches), 4))
        if pair is not None:
            box0 = np.asarray(pair[start], dtype=np.float64)
            search_boxes = np.array([pair[i] for i in search_ids], dtype=np.float64)
        elif is_ctp:
            patch = self._patch(rng)
            if patch is None:
                return None
            image0, box0 = paste_patch(image0, patch, rng, scale=0.1)
            if rng.uniform() < 0.1:
                image0, box0 = shear(image0, box0, rng)
            for k, frame in enumerate(searches):
                frame, box = paste_patch(frame, patch, rng, scale=0.25)
                if rng.uniform() < 0.5:
                    frame, box = shear(frame, box, rng)
                roll = rng.uniform()
                if roll < 0.18:
                    frame = motion_blur(frame, rng)
                elif roll < 0.28:
                    frame = occlude(frame, box, rng)
                if rng.uniform() < 0.3:
                    frame, box = hflip(frame, box)
                searches[k], search_boxes[k] = frame, box
        else:
            boxes = clip.initial_boxes[start]
            box0 = np.asarray(boxes[rng.integers(len(boxes))], dtype=np.float64)
        known = is_ctp or pair is not None
        if box0[2] < MIN_BOX_SIDE or box0[3] < MIN_BOX_SIDE:
            return None
        # Joint transform over all frames of the sample (§4.3 step 1).
        gray = rng.uniform() < 0.05
        flip = rng.uniform() < 0.5
        if gray:
            image0 = _gray(image0)
            searches = [_gray(f) for f in searches]
        if flip:
            image0, box0 = hflip(image0, box0)
            flipped = [hflip(f, b) for f, b in zip(searches, search_boxes)]
            searches = [f for f, _ in flipped]
            search_boxes = np.array([b for _, b in flipped]) if known else search_boxes
        sample = self._assemble(image0, box0, searches, search_boxes, known, rng)
        sample["clip"] = np.asarray(clip_index, dtype=np.int64)  # absent-object views pair other clips only
        return sample

    def _assemble(
        self,
        image0: np.ndarray,
        box0: np.ndarray,
        searches: list[np.ndarray],
        search_boxes: np.ndarray,
        known: bool,
        rng: np.random.Generator,
    ) -> dict[str, np.ndarray]:
        cfg, tr = self.model, self.train
        border = padding_value(image0, cfg.crop_padding)
        template, _ = crop_around(image0, box0, cfg.template_factor, cfg.template_size, cfg.crop_padding)
        statics = np.stack([self._static_template(image0, box0, rng, border) for _ in range(tr.search_frames)])
        views, view_boxes = [], []
        for _ in range(tr.views):
            view, target = self._view(image0, box0, rng, border)
            views.append(view)
            view_boxes.append(target / cfg.search_size)
        g_search, g_frames, g_valid, g_boxes, g_means = [], [], [], [], []
        for frame, box in zip(searches, search_boxes):
            square, scale, mean = self._square(frame)
            g_frames.append(square)
            g_search.append(cv2.resize(square, (cfg.search_size, cfg.search_size), interpolation=cv2.INTER_AREA))
            g_valid.append([frame.shape[1] * scale, frame.shape[0] * scale])
            g_boxes.append(box * scale / self.frame_size)
            g_means.append(mean)
        return {
            "template": template,
            "static_templates": statics,
            "views": np.stack(views),
            "view_boxes": np.asarray(view_boxes, dtype=np.float32),
            "global_search": np.stack(g_search),
            "global_frames": np.stack(g_frames),
            "global_valid": np.asarray(g_valid, dtype=np.float32),
            "global_boxes": np.asarray(g_boxes, dtype=np.float32),
            "global_means": np.asarray(g_means, dtype=np.float32),
            "known_boxes": np.asarray(known),
            # Brightness factors: initial template, S templates, V views (§4.3 step 6).
            "brightness": rng.uniform(0.8, 1.2, 1 + tr.search_frames + tr.views).astype(np.float32),
        }

    # -- pieces ------------------------------------------------------------------------------------
    def _search_ids(self, length: int, start: int, rng: np.random.Generator) -> list[int]:
        lo = max(0, start - self.train.max_interval)
        hi = min(length - 1, start + self.train.max_interval)
        pool = [i for i in range(lo, hi + 1) if i != start] or [start]
        picks = rng.choice(pool, size=self.train.search_frames, replace=True)
        # Nearest first, so the carried track query moves away from the initial frame step by step.
        return sorted((int(p) for p in picks), key=lambda i: abs(i - start))

    def _pair_ids(self, track: dict[int, np.ndarray], start: int, rng: np.random.Generator) -> list[int]:
        """Search frames of a keyframe-pair sample: the object's other keyframes, nearest first."""
        others = [k for k in track if k != start]
        picks = rng.choice(others, size=self.train.search_frames, replace=True)
        return sorted((int(p) for p in picks), key=lambda i: abs(i - start))

    def _patch(self, rng: np.random.Generator) -> np.ndarray | None:
        """A target patch from another clip's initial box (official CTP source)."""
        clip = self.clips[rng.choice(len(self.clips), p=self.clip_weights)]
        keys = sorted(clip.initial_boxes)
        index = int(keys[rng.integers(len(keys))])
        boxes = clip.initial_boxes[index]
        x, y, w, h = boxes[rng.integers(len(boxes))]
        frame = clip.frame(index)
        x1, y1 = int(max(0, x)), int(max(0, y))
        x2, y2 = int(min(frame.shape[1], x + max(w, 10))), int(min(frame.shape[0], y + max(h, 10)))
        if x2 - x1 < 16 or y2 - y1 < 16:
            return None
        return frame[y1:y2, x1:x2].copy()

    def _static_template(
        self, image: np.ndarray, box: np.ndarray, rng: np.random.Generator, border: tuple[float, float, float]
    ) -> np.ndarray:
        """A slightly jittered crop of the initial box: a stand-in for an online template."""
        cfg = self.model
        x, y, w, h = box
        s = math.exp(rng.normal() * 0.05)
        dx, dy = rng.normal(size=2) * 0.05 * math.sqrt(w * h)
        jittered = np.array([x + dx + w * (1 - s) / 2, y + dy + h * (1 - s) / 2, w * s, h * s])
        window = crop_window(jittered, cfg.template_factor, cfg.template_size)
        return extract(image, window, border)

    def _view(
        self, image: np.ndarray, box: np.ndarray, rng: np.random.Generator, border: tuple[float, float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """An augmented local view of the initial frame with its exact target box (crop px)."""
        cfg, tr = self.model, self.train
        sigma = tr.view_scale_sigma * (2.0 if rng.uniform() < tr.lsj_prob else 1.0)  # large-scale jitter
        view, target = view_of(image, box, cfg.search_factor, cfg.search_size, rng, sigma, tr.view_center_jitter, border)
        if rng.uniform() < tr.shear_prob:
            view, target = shear(view, target, rng, border=border)
        if rng.uniform() < tr.blur_prob:
            view = motion_blur(view, rng) if rng.uniform() < 0.5 else cv2.GaussianBlur(view, (0, 0), rng.uniform(0.5, 2.0))
        if rng.uniform() < 0.5:
            view, target = hflip(view, target)
        return view, target

    def _square(self, frame: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        """The whole frame padded bottom/right to a square with its mean colour, at frame_size."""
        height, width = frame.shape[:2]
        side = max(height, width)
        mean = np.asarray(cv2.mean(frame)[:3], dtype=np.float32)
        pad_value = mean if self.model.crop_padding == "mean" else np.zeros(3, np.float32)
        square = cv2.copyMakeBorder(frame, 0, side - height, 0, side - width, cv2.BORDER_CONSTANT, value=pad_value.tolist())
        scale = self.frame_size / side
        return cv2.resize(square, (self.frame_size, self.frame_size), interpolation=cv2.INTER_AREA), scale, pad_value


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


class SampleDataset(Dataset):
    """Map-style dataset: item i is sample `offset + i` of the run (deterministic, resumable)."""

    def __init__(self, maker: SampleMaker, seed: int, length: int, offset: int = 0) -> None:
        self.maker = maker
        self.seed = seed
        self.length = length
        self.offset = offset

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.maker.make(self.seed, self.offset + index)
