"""Replay the tracker's network calls as CUDA graphs, one graph per input shape.

At one to eight targets a frame, the GPU tracker was bound by launching kernels from Python, not
by running them: 76-106 fps op by op on an H200, 343-411 fps replayed, with the same boxes
(docs/results-gpu-speed-2026-12-04.md, issue 18). A CUDA graph records a call's kernels once and
replays them with a single launch. Inputs are
copied into the graph's own tensors, outputs are cloned out of it (the next replay overwrites
them). Shapes change rarely (number of targets, templates in memory, query or not), so a small
cache of graphs covers a whole video.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

Inputs = tuple[torch.Tensor | None, ...]
Outputs = tuple[torch.Tensor | None, ...]

# Graphs kept per wrapped call; the least recently used one is dropped. The graphs of one call share
# one memory pool, which is safe here because every replay's outputs are cloned before the next.
MAX_GRAPHS = 32


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: Inputs
    outputs: Outputs


class CudaGraphCall:
    """`fn(*inputs) -> tuple of tensors`, replayed from a captured graph per input signature.

    If a graph cannot be captured (a driver or an operation that does not support it), the call
    logs why once and runs `fn` op by op from then on: slower, never wrong.
    """

    def __init__(self, fn: Callable[..., Outputs], autocast_dtype: torch.dtype | None, warmup: int = 2) -> None:
        self._fn = fn
        self._dtype = autocast_dtype
        self._warmup = warmup
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self._pool: tuple[int, int] | None = None
        self.failure: str | None = None  # why graphs are off for this call, once they are

    def __call__(self, *inputs: torch.Tensor | None) -> Outputs:
        """Run `fn` on `inputs` (CUDA tensors or None) through its graph; outputs are fresh tensors."""
        if self.failure is not None:
            return tuple(self._fn(*inputs))
        key = tuple(None if t is None else (tuple(t.shape), t.dtype) for t in inputs)
        captured = self._graphs.get(key)
        if captured is None:
            try:
                captured = self._capture(inputs)
            except Exception as error:  # whatever breaks a capture must not break tracking
                self.failure = f"{type(error).__name__}: {error}".splitlines()[0]
                log.warning("CUDA graphs are off for %s (%s); it runs op by op", getattr(self._fn, "__name__", self._fn), self.failure)
                self._graphs.clear()
                return tuple(self._fn(*inputs))
            self._graphs[key] = captured
            if len(self._graphs) > MAX_GRAPHS:
                self._graphs.popitem(last=False)
        self._graphs.move_to_end(key)
        for static, given in zip(captured.inputs, inputs):
            if static is not None:
                static.copy_(given)
        captured.graph.replay()
        return tuple(None if out is None else out.clone() for out in captured.outputs)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._dtype is None:
            return contextlib.nullcontext()
        # The autocast weight cache must be off while capturing: cached casts made inside the
        # capture would live in the graph's pool and be freed under it.
        return torch.autocast("cuda", dtype=self._dtype, cache_enabled=False)

    def _capture(self, inputs: Inputs) -> _Captured:
        if any(t is not None and t.device.type != "cuda" for t in inputs):
            # A capture would record nothing for host tensors, and every replay would return the
            # first call's outputs.
            raise ValueError("CUDA graphs capture CUDA tensors only")
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        static = tuple(None if t is None else t.clone() for t in inputs)
        # Warm-up on a side stream first (lazy initialisation, cuBLAS workspaces), as PyTorch's
        # CUDA graph documentation prescribes.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), self._autocast():
            for _ in range(self._warmup):
                self._fn(*static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool), self._autocast():
            outputs = tuple(self._fn(*static))
        return _Captured(graph, static, outputs)
