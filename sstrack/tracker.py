"""Inference tracker: `start(image, box) -> TargetState`, `step(states, image) -> [(box, score)]`.

The Tracker holds the weights and the device, nothing about any video (SAM2-style); per-target
state lives in `TargetState`. `step` runs every given target of one frame in one batched forward.
Behaviour follows the official tracker (docs/sstrack-reference.md §3): template crop factor 2,
search crop factor 4/5, ImageNet-style normalisation, centred Hann window on the score map,
box decode at its arg-max, map-back, margin-10 clipping, a template memory with the official
selection `{0} ∪ {k·dur + dur//2}` and the track query carried from frame to frame. Six
additions of ours, all off in the official configs and set by a model's card: the size damping
(`size_lr`), the pixel refinement of each box (`refine_*`, sstrack/refine.py), the shape
calibration on the start frame (`size_calibration`, sstrack/calibration.py), the scale drift
correction of the reported boxes (`scale_bias`, `scale_carry`, `scale_own_weight`) and the
re-detection over the frame of a lost target (`redetect_*`, sstrack/redetect.py) and the
reuse of cached memory templates (`reuse_templates`, `keep_cached`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial, wraps

import numpy as np
import torch

from sstrack.calibration import calibration_views, corrected, scale_response, scale_views, size_bias
from sstrack.config import ModelConfig
from sstrack.crops import CropWindow, check_box, clip_box, crop_window
from sstrack.cuda_graphs import CudaGraphCall
from sstrack.errors import InputError
from sstrack.frame_crops import DeviceCrops, HostCrops, Resampler, resample_frame
from sstrack.model import SSTrack
from sstrack.model.head import decode_boxes
from sstrack.normalise import Normaliser
from sstrack.onnx_network import OnnxNetwork, onnx_network
from sstrack.redetect import LossWatch, frame_tiles, place_to_move_to
from sstrack.refine import Appearance, network_vouches, observe, refine
from sstrack.threads import torch_on_one_thread

Box = tuple[float, float, float, float]

# Stored templates per target before the memory is thinned. The official tracker keeps every
# frame's template; keeping all of them costs ~27 kB (lite) to 110 kB (b384) per frame, so a
# 20,000-frame video would hold gigabytes. Up to this many frames the selection is exactly the
# official one; beyond, the nearest stored template stands in for each selected frame.
DEFAULT_MEMORY_CAPACITY = 256
NOT_FINITE = "the model's output is not finite (NaN/inf) on this frame; the model is broken, use another one"


@dataclass
class TargetState:
    """Everything the tracker knows about one target; owned by the caller."""

    box: np.ndarray  # x, y, w, h in image pixels
    frame_id: int = 0  # frames tracked since `start`
    score: float = 1.0
    memory_ids: list[int] = field(default_factory=list)  # frame_id each stored template came from
    memory: list[np.ndarray | torch.Tensor] = field(default_factory=list)  # uint8 (H, W, 3) template crops, on the device with device crops
    query: torch.Tensor | None = None  # (1, C) output query of the previous frame
    token_cache: dict[int, torch.Tensor] = field(default_factory=dict)
    appearance: Appearance | None = None  # grey look of the target, for pixel refinement
    # While True the target is believed gone (out of view, fully hidden): `step` still searches
    # around the last box with the stored templates, but learns nothing from what it finds there,
    # so the background it sees cannot become the target (see sstrack/absence.py).
    hold: bool = False
    # The shape correction from the start frame (log factors of w and h, opposite; sstrack/calibration.py), or None.
    size_bias: np.ndarray | None = None
    # The tracked box's expected log scale error since the start (ModelConfig.scale_bias).
    scale_drift: float = 0.0
    # The per-frame scale bias that drift follows: the model's, or blended with this target's own
    # measured on its start frame (ModelConfig.scale_own_weight); None: the model's.
    drift_bias: float | None = None
    # Recent confident scores and sizes, for re-detection over the frame (sstrack/redetect.py);
    # None: off (the model's config has it off, or the caller handles a lost target itself).
    loss_watch: LossWatch | None = None

    def copy(self) -> TargetState:
        """An independent copy (to branch tracking, e.g. forward and backward from a keyframe)."""
        return copy.deepcopy(self)


def hann_window(side: int) -> np.ndarray:
    """The centred 2-D Hann window of the official tracker (no zeros at the ends)."""
    k = np.arange(1, side + 1)
    one_d = 0.5 * (1 - np.cos(2 * np.pi * k / (side + 1)))
    return np.outer(one_d, one_d)


def select_memory(frame_id: int, stored: int, template_number: int) -> list[int]:
    """Official memory selection: template indices (frame ids) used to track frame `frame_id`."""
    if frame_id <= template_number or template_number == 0:
        return list(range(stored)) if template_number else [0]
    dur = frame_id // template_number
    return sorted({0} | {k * dur + dur // 2 for k in range(template_number)})


def keep_cached(frame_id: int, memory_ids: list[int], cached: set[int], template_number: int) -> list[int]:
    """The official selection (as memory indices), except that a slot keeps a template whose tokens
    are cached while it is still within the slot's share of the history.

    Official slot k of frame f takes the stored frame k*d + d/2 (d = f // template_number), so as f
    grows every slot moves and needs a fresh template embedding: about one a frame, 11% of a lite
    step on the CPU (1 target) and 15% with 4. Held in its share [k*d, (k+1)*d), a slot's template
    still stands for that part of the history, and it changes about each time d doubles.
    """
    ids = np.asarray(memory_ids)
    wanted = select_memory(frame_id, len(memory_ids), template_number)
    nearest = [int(np.abs(ids - w).argmin()) for w in wanted]
    if frame_id <= template_number or template_number == 0:
        return nearest
    share = frame_id // template_number
    index_of = {frame: i for i, frame in enumerate(memory_ids)}
    chosen = [nearest[0]]
    for w, fallback in zip(wanted[1:], nearest[1:]):
        low = (w // share) * share
        held = [c for c in cached if c in index_of and c != memory_ids[0] and low <= c < low + share]
        chosen.append(index_of[min(held, key=lambda c: (abs(c - w), c))] if held else fallback)
    return chosen


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' -> CUDA when available, else CPU; a device this machine lacks is refused in one line."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise InputError(f"device {device!r} is not a device name ({error}); use auto, cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r}: this machine has no usable CUDA GPU; use auto or cpu")
    return resolved


def _glue_on_one_thread(verb: Callable) -> Callable:
    """A Tracker verb whose torch glue runs on one thread while ONNX Runtime runs the network (`Tracker.glue_on_one_thread`)."""

    @wraps(verb)
    def wrapped(self: Tracker, *args, **kwargs):
        with self.glue_on_one_thread():
            return verb(self, *args, **kwargs)

    return wrapped


class Tracker:
    """Runs an SSTrack model on frames; holds weights and device, not per-video state."""

    def __init__(
        self,
        model: SSTrack,
        device: str | torch.device = "auto",
        memory_capacity: int = DEFAULT_MEMORY_CAPACITY,
        backend: str = "auto",
        crops: str = "auto",
        cuda_graphs: bool | None = None,
    ) -> None:
        """`backend`: "auto" (ONNX Runtime on the CPU where it is exact, else torch), "torch" or "onnx".

        `crops`: "auto" (on the device on a GPU, with OpenCV on the CPU), "device" or "host"
        (sstrack/frame_crops.py). `cuda_graphs`: replay the network as CUDA graphs (default: on a
        GPU; sstrack/cuda_graphs.py).
        """
        if backend not in ("auto", "torch", "onnx"):
            raise InputError(f"backend {backend!r}: choose auto, torch or onnx")
        if crops not in ("auto", "device", "host"):
            raise InputError(f"crops {crops!r}: choose auto, device or host")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.config: ModelConfig = model.config
        self.memory_capacity = max(memory_capacity, self.config.template_number + 2)
        # CUDA: bf16 autocast where supported (fp16 otherwise); CPU stays fp32, which is both
        # exact and faster there than bf16 emulation.
        self.autocast_dtype: torch.dtype | None = None
        if self.device.type == "cuda":
            self.autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self._window = torch.from_numpy(hann_window(self.config.search_grid) ** self.config.window_power).float().to(self.device)
        self._normalise = Normaliser(self.config, self.device)
        self._onnx: OnnxNetwork | None = None
        if backend != "torch" and self.device.type == "cpu":
            self._onnx = onnx_network(self.model)
        if backend == "onnx" and self._onnx is None:
            raise InputError("the ONNX Runtime backend is unavailable for this model on this device (see the log); use backend 'torch'")
        self._device_crops = crops == "device" or (crops == "auto" and self.device.type == "cuda")
        self._resample: Resampler | None = None  # DeviceCrops' own eager resampler
        self._forward: Callable[..., tuple[torch.Tensor | None, ...]] = self._network_outputs
        self._embed: Callable[..., tuple[torch.Tensor | None, ...]] = self._embed_templates
        if cuda_graphs is None:
            cuda_graphs = self.device.type == "cuda"
        if cuda_graphs:
            if self.device.type != "cuda":
                raise InputError("CUDA graphs need a CUDA device; leave cuda_graphs unset on the CPU")
            self._forward = CudaGraphCall(self._network_outputs, self.autocast_dtype)
            self._embed = CudaGraphCall(self._embed_templates, self.autocast_dtype)
            self._resample = CudaGraphCall(partial(resample_frame, mean_padding=self.config.crop_padding == "mean"), None)

    @property
    def backend(self) -> str:
        """Which runtime runs the network: "onnxruntime" or "torch"."""
        return "onnxruntime" if self._onnx is not None else "torch"

    @property
    def weights_identity(self) -> dict[str, str | None] | None:
        """The weights' name, path and sha256 (`load_model`), for a run's record of what made its boxes."""
        return self.model.weights_identity

    @property
    def precision(self) -> str:
        """Human-readable compute precision, for status bars."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.autocast_dtype, "fp32")

    @contextmanager
    def glue_on_one_thread(self) -> Iterator[None]:
        """With ONNX Runtime running the network: torch's own ops on one thread, the sessions on
        torch's thread count (sstrack/threads.py `torch_on_one_thread` says why). Else nothing."""
        if self._onnx is None:
            yield
            return
        with torch_on_one_thread() as threads:
            self._onnx.threads = threads
            try:
                yield
            finally:
                self._onnx.threads = None

    # -- public verbs ---------------------------------------------------------------------------
    @_glue_on_one_thread
    @torch.inference_mode()
    def start(self, image: np.ndarray, box: Box | np.ndarray) -> TargetState:
        """Begin tracking the object in `box` (x, y, w, h) of `image` (RGB uint8 HxWx3)."""
        height, width = _check_image(image)
        clipped = check_box(box, width, height)
        frame = self._frame_crops(image)
        state = self._initial_state(frame, clipped)
        if self.config.refine_side:
            state.appearance = observe(image, clipped, self.config, None)
        shape_views = calibration_views(clipped) if self.config.size_calibration else []
        own_scale = self.config.scale_bias != 0.0 and self.config.scale_own_weight > 0.0
        sizes = scale_views(clipped) if own_scale else []
        if shape_views or sizes:  # one batched forward for both calibrations
            boxes = self._network_boxes(state, frame, shape_views + sizes)
            if shape_views:
                state.size_bias = size_bias(clipped, boxes[: len(shape_views)])
            if sizes:
                state.drift_bias = own_drift_bias(self.config, scale_response(clipped, boxes[len(shape_views) :])[0])
        return state

    @_glue_on_one_thread
    @torch.inference_mode()
    def view_boxes(self, image: np.ndarray, box: Box | np.ndarray, views: list[np.ndarray]) -> list[np.ndarray]:
        """The network's raw boxes on search crops of `image` around each of `views` (boxes), with
        the template of `box` on the same frame: its errors where the truth is known (calibration)."""
        height, width = _check_image(image)
        clipped = check_box(box, width, height)
        frame = self._frame_crops(image)
        return self._network_boxes(self._initial_state(frame, clipped), frame, views)

    @_glue_on_one_thread
    @torch.inference_mode()
    def step(self, states: list[TargetState], image: np.ndarray) -> list[tuple[Box, float]]:
        """Track every state one frame into `image`; states are updated in place."""
        if not states:
            return []
        _check_image(image)
        frame = self._frame_crops(image)
        for state in states:
            state.frame_id += 1
        groups: dict[int, list[int]] = {}
        selections = [self._selection(s) for s in states]
        for i, sel in enumerate(selections):
            groups.setdefault(len(sel), []).append(i)
        results: list[tuple[Box, float] | None] = [None] * len(states)
        for indices in groups.values():
            batch = [states[i] for i in indices]
            outputs = self._track_batch(batch, [selections[i] for i in indices], image, frame)
            for i, out in zip(indices, outputs):
                results[i] = out
        self._remember([s for s in states if not s.hold], frame)
        return [r for r in results if r is not None]

    # -- internals ------------------------------------------------------------------------------
    def _initial_state(self, frame: HostCrops | DeviceCrops, box: np.ndarray) -> TargetState:
        [patch] = frame.templates([crop_window(box, self.config.template_factor, self.config.template_size)])
        watch = LossWatch() if self.config.redetect_ratio > 0 else None
        return TargetState(box=box, memory_ids=[0], memory=[patch], loss_watch=watch)

    def _frame_crops(self, image: np.ndarray) -> HostCrops | DeviceCrops:
        if self._device_crops:
            return DeviceCrops(image, self.config.crop_padding, self._normalise, self.device, self._resample)
        return HostCrops(image, self.config.crop_padding, self._normalise, self.device)

    def _network_outputs(
        self, template_tokens: torch.Tensor, patches: torch.Tensor, queries: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        """Forward and decode as plain tensors (what a CUDA graph can capture): (B, 5) crop-pixel
        cx, cy, w, h and peak score at the arg-max of the windowed score map; the score map; the
        next query.

        The head's own decoder (the one training reads), on the device.
        """
        out = (self._onnx or self.model.forward_from_cache)(template_tokens, patches, queries)
        score_map = out.score_map.float()
        # float64 for the arithmetic: the tracker feeds its box back into the next crop, so float32
        # rounding (1e-6 px) grew to pixels within 20 frames.
        decoded, flat = decode_boxes(score_map * self._window, out.size_map.double(), out.offset_map.double())
        scores = score_map.flatten(1).gather(1, flat.view(-1, 1)).double()
        return torch.cat([decoded * self.config.search_size, scores], dim=1), score_map, out.next_query

    def _embed_templates(self, patches: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        embed = self._onnx.embed_template if self._onnx is not None else self.model.template_cache
        return (embed(patches),)

    def _network(
        self, template_tokens: torch.Tensor, patches: torch.Tensor, queries: torch.Tensor | None, windows: list[CropWindow]
    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None, torch.Tensor | None]:
        """Image-pixel (x, y, w, h) boxes, peak scores, the score maps where the refinement needs
        them (else None) and the next queries; one device->host copy for all of it."""
        decoded, score_map, next_query = self._forward(template_tokens, patches, queries)
        assert decoded is not None and score_map is not None
        wanted = [decoded]
        if self.config.refine_vouch > 0:
            wanted.append(score_map.flatten(1).double())
        host = torch.cat(wanted, dim=1).cpu().numpy()
        boxes = [window.to_image(np.array([cx - w / 2, cy - h / 2, w, h])) for (cx, cy, w, h), window in zip(host[:, :4], windows)]
        maps = host[:, 5:].reshape(score_map.shape[0], *score_map.shape[2:]) if len(wanted) > 1 else None
        return boxes, host[:, 4].copy(), maps, next_query

    def _network_boxes(self, state: TargetState, frame: HostCrops | DeviceCrops, centres: list[np.ndarray]) -> list[np.ndarray]:
        """The network's raw boxes (image pixels) for search crops around each of `centres`, from
        the state's initial template and no query: the calibration views of `start`."""
        cfg = self.config
        windows = [crop_window(box, cfg.search_factor, cfg.search_size) for box in centres]
        patches = frame.patches(windows)
        with self._autocast():
            tokens = self._template_tokens(state, [0])
            boxes, _scores, _map, _query = self._network(tokens.unsqueeze(0).expand(len(windows), *tokens.shape).contiguous(), patches, None, windows)
        return boxes

    def _selection(self, state: TargetState) -> list[int]:
        wanted = select_memory(state.frame_id, len(state.memory), self.config.template_number)
        if self.config.template_number == 0:
            return [0]
        if self.config.reuse_templates:
            return keep_cached(state.frame_id, state.memory_ids, set(state.token_cache), self.config.template_number)
        # Map official frame ids onto stored templates (identical while nothing was thinned).
        ids = np.asarray(state.memory_ids)
        return [int(np.abs(ids - w).argmin()) for w in wanted]

    def _track_batch(
        self,
        states: list[TargetState],
        selections: list[list[int]],
        image: np.ndarray,
        frame: HostCrops | DeviceCrops,
    ) -> list[tuple[Box, float]]:
        cfg = self.config
        windows = [crop_window(state.box, cfg.search_factor, cfg.search_size) for state in states]
        patches = frame.patches(windows)
        with self._autocast():
            template_tokens = torch.stack(
                [self._template_tokens(s, sel) for s, sel in zip(states, selections)]
            )
            queries = None
            if cfg.track_query and any(s.query is not None for s in states):
                dim = cfg.embed_dim
                queries = torch.stack(
                    [s.query if s.query is not None else torch.zeros(1, dim, device=self.device) for s in states]
                )
            boxes, scores, score_maps, next_query = self._network(template_tokens, patches, queries, windows)
        results = []
        for b, (state, window) in enumerate(zip(states, windows)):
            box, score = boxes[b], float(scores[b])
            if not (np.all(np.isfinite(box)) and math.isfinite(score)):
                # Clipping would turn NaN into a plausible-looking 10x10 box at the corner.
                raise InputError(NOT_FINITE)
            watch = state.loss_watch
            if watch is not None and state.hold:
                watch.restart_scan()  # its caller searches now; a scan from before would be stale after
            lost = watch is not None and not state.hold and watch.is_lost(score, cfg.redetect_ratio)
            scan = lost and watch.lost_in_view(image.shape[1], image.shape[0]) and watch.scan_due()
            found = self._redetect(state, selections[b], image, frame) if scan else None
            if found is not None:
                box, score = found  # already the tracker's box: the usual size at the place found
            else:
                box = self._settled_box(state, box, score, image, window, None if score_maps is None else score_maps[b])
            box = clip_box(box, image.shape[1], image.shape[0])
            if watch is not None and not lost and not state.hold:
                watch.not_lost(score, box)
            reported = box
            if cfg.scale_bias and not state.hold:
                state.scale_drift = expected_scale_drift(state.scale_drift, cfg, score, state.drift_bias)
            if state.scale_drift:
                # Only the reported box: the state keeps the network's own, so the next crop and
                # everything the tracker follows are as without the correction.
                reported = clip_box(corrected(box, np.full(2, -state.scale_drift)), image.shape[1], image.shape[0])
            results.append((tuple(float(v) for v in reported), score))
            if state.hold:
                continue  # searching: keep the window, templates and query of the last sighting
            if state.appearance is not None:
                state.appearance = observe(image, box, cfg, state.appearance)
            state.box = box
            state.score = score
            if found is not None:
                state.query = None  # the local crop's query describes the place left behind
            elif next_query is not None:
                state.query = next_query[b].float()
        return results

    def _settled_box(
        self, state: TargetState, box: np.ndarray, score: float, image: np.ndarray, window: CropWindow, score_map: np.ndarray | None
    ) -> np.ndarray:
        """The network's box after the shape correction, the size damping and the pixel refinement."""
        cfg = self.config
        if state.size_bias is not None:
            box = corrected(box, state.size_bias)
        if cfg.size_lr is not None:
            box = _damp_size(box, state.box, cfg.size_lr * score)
        if state.appearance is not None:
            refined, _match = refine(image, box, state.box, state.appearance, cfg)
            if score_map is None or network_vouches(score_map, window.to_crop(refined), cfg, score):
                box = refined
        return box

    def _redetect(
        self, state: TargetState, selection: list[int], image: np.ndarray, frame: HostCrops | DeviceCrops
    ) -> tuple[np.ndarray, float] | None:
        """The lost target's box and score at the best place of a scan of the frame's tiles, when
        the scan ends on this frame and that place beats the local crop there; else None.

        Every crop is scored alike (the same templates, no query), the local one first. On the
        scan's last frame the best place of its earlier frames is scored again with its tiles.
        """
        cfg, watch = self.config, state.loss_watch
        assert watch is not None
        level = watch.level()
        assert level is not None
        size = watch.usual_size()
        tiles, scan_ends = watch.take_tiles(frame_tiles(image.shape[1], image.shape[0], size, cfg.search_factor), cfg.redetect_crops)
        if scan_ends and watch.earlier_best is not None:
            tiles = [*tiles, np.concatenate([watch.earlier_best[0] - size / 2, size])]
        windows = [crop_window(b, cfg.search_factor, cfg.search_size) for b in [state.box, *tiles]]
        with self._autocast():
            tokens = self._template_tokens(state, selection)
            batch = tokens.unsqueeze(0).expand(len(windows), *tokens.shape).contiguous()
            boxes, scores, _maps, _query = self._network(batch, frame.patches(windows), None, windows)
        if not (np.isfinite(scores).all() and all(np.isfinite(b).all() for b in boxes)):
            raise InputError(NOT_FINITE)
        if not scan_ends:
            watch.offer(boxes[1:], scores[1:])
            return None
        best = place_to_move_to(scores, level, cfg.redetect_ratio, cfg.redetect_margin)
        watch.end_scan(moved=best is not None)
        if best is None:
            return None
        centre = boxes[best][:2] + boxes[best][2:] / 2
        return np.concatenate([centre - size / 2, size]), float(scores[best])

    def _template_tokens(self, state: TargetState, selection: list[int]) -> torch.Tensor:
        """(T*Nz, C) tokens of the selected templates, embedding the ones not cached."""
        missing = [i for i in dict.fromkeys(selection) if state.memory_ids[i] not in state.token_cache]
        if missing:
            (tokens,) = self._embed(self._to_tensor([state.memory[i] for i in missing]))
            assert tokens is not None
            for i, tok in zip(missing, tokens):
                state.token_cache[state.memory_ids[i]] = tok
        keep = {state.memory_ids[i] for i in selection}
        for key in [k for k in state.token_cache if k not in keep]:
            del state.token_cache[key]
        return torch.cat([state.token_cache[state.memory_ids[i]] for i in selection], dim=0)

    def _remember(self, states: list[TargetState], frame: HostCrops | DeviceCrops) -> None:
        """Store each state's template cropped around its new box (official memory update), all in one batch."""
        if self.config.template_number == 0 or not states:
            return
        windows = [crop_window(s.box, self.config.template_factor, self.config.template_size) for s in states]
        for state, patch in zip(states, frame.templates(windows)):
            state.memory.append(patch)
            state.memory_ids.append(state.frame_id)
            if len(state.memory) > self.memory_capacity:
                # Thin the middle (every other one), keeping the initial and the newest templates,
                # so the memory still spans the whole history evenly.
                keep = [0, *range(1, len(state.memory) - 1, 2), len(state.memory) - 1]
                keep = sorted(set(keep))
                state.memory = [state.memory[i] for i in keep]
                state.memory_ids = [state.memory_ids[i] for i in keep]

    def _to_tensor(self, patches: list[np.ndarray | torch.Tensor]) -> torch.Tensor:
        """Normalised network input from uint8 (H, W, 3) crops, host arrays or device tensors."""
        if all(isinstance(p, torch.Tensor) for p in patches):
            return self._normalise(torch.stack(patches).to(self.device))  # type: ignore[arg-type]
        host = [p.cpu().numpy() if isinstance(p, torch.Tensor) else p for p in patches]
        return self._normalise(torch.from_numpy(np.stack(host)).to(self.device))

    def _autocast(self) -> torch.autocast:
        if self.autocast_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=self.autocast_dtype)


def expected_scale_drift(drift: float, config: ModelConfig, score: float, bias: float | None = None) -> float:
    """One frame of the expected scale error: the damped size moves toward the network's answer on
    a crop off by `drift`, which is off by bias (default the model's scale_bias) + scale_carry * drift."""
    rate = 1.0 if config.size_lr is None else config.size_lr * score
    bias = config.scale_bias if bias is None else bias
    return drift + rate * (bias + (config.scale_carry - 1.0) * drift)


# A guard, not a tuned value: one start frame's measured scale bias is trusted up to this (log);
# the largest on the training clips' first frames is about 0.4.
MAX_OWN_SCALE_BIAS = 0.5


def own_drift_bias(config: ModelConfig, measured: float) -> float:
    """The scale bias a target's drift follows: the model's, moved toward the target's own
    (`measured` on its start frame) by `scale_own_weight`."""
    own = float(np.clip(measured, -MAX_OWN_SCALE_BIAS, MAX_OWN_SCALE_BIAS))
    return (1.0 - config.scale_own_weight) * config.scale_bias + config.scale_own_weight * own


def _damp_size(box: np.ndarray, previous: np.ndarray, rate: float) -> np.ndarray:
    """Keep the predicted centre; move the size from the previous one toward the prediction."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    w = previous[2] * (1 - rate) + box[2] * rate
    h = previous[3] * (1 - rate) + box[3] * rate
    return np.array([cx - w / 2, cy - h / 2, w, h])


def _check_image(image: np.ndarray) -> tuple[int, int]:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        raise InputError(f"expected an RGB uint8 HxWx3 image, got {type(image).__name__} {shape}")
    return image.shape[0], image.shape[1]


