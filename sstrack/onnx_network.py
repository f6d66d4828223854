"""The per-frame network in ONNX Runtime, the default on the CPU.

The same weights, exported in memory (no file is written or read) from the loaded model:
template tokens + search crop + track query -> score, size and offset maps and the next query;
and, as a second graph, template crops -> template tokens (once per new template, cached by the
tracker: on 01_dog.mp4 a template is embedded every 2.6 frames, 15% of a step's time in torch).
For a model with "own" template attention, the tokens are the templates' cached keys and values
(`SSTrack.template_cache`) and the per-frame graph runs only the query and search rows.

Measured on this 2-core CPU at 2 threads (docs/results-onnx-2026-12-02.md): the lite network alone
takes 13.4 ms against eager torch's 29.6, and `Tracker.step` runs at 45.8 fps against 29.0 in the
same `benchmarks.speed` run. An export that fails, or whose maps differ from torch's by more than
`TOLERANCE` on a check input, is not used: the tracker stays on torch and the log says why.
The export holds the weights as they were when the model was first given to a Tracker; a model
whose weights change afterwards must be loaded again.
"""

from __future__ import annotations

import io
import logging
import warnings
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from sstrack.model import SSTrack

_logger = logging.getLogger(__name__)
TOLERANCE = 1e-4  # largest |difference| allowed between torch's and ONNX Runtime's maps
_EXPORTED: weakref.WeakKeyDictionary[SSTrack, tuple[bytes, bytes] | None] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class NetworkOutput:
    """What the tracker reads of one forward pass (torch tensors on the CPU)."""

    score_map: torch.Tensor
    size_map: torch.Tensor
    offset_map: torch.Tensor
    next_query: torch.Tensor | None


class _Forward(torch.nn.Module):
    """The model's forward with plain tensor outputs, as the exporter needs it."""

    def __init__(self, model: SSTrack) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, search: torch.Tensor, query: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.forward_from_cache(tokens, search, query)
        next_query = out.next_query if out.next_query is not None else query
        return out.score_map, out.size_map, out.offset_map, next_query


class _Template(torch.nn.Module):
    """The template cache alone (crops to tokens, or keys and values), as the exporter needs it."""

    def __init__(self, model: SSTrack) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.template_cache(images)


class OnnxNetwork:
    """ONNX Runtime sessions of a model's per-frame network and template embedding, with torch's calling convention."""

    def __init__(self, model: SSTrack, graphs: tuple[bytes, bytes]) -> None:
        self.config = model.config
        self._graphs = graphs
        self._sessions: tuple | None = None
        self._threads = 0
        # Intra-op threads of the sessions; None: torch's count at each call (sstrack/threads.py).
        # The tracker sets it while it runs its own glue on one torch thread.
        self.threads: int | None = None

    def __call__(self, tokens: torch.Tensor, search: torch.Tensor, query: torch.Tensor | None) -> NetworkOutput:
        """One forward pass for a batch (query None: no previous frame's query, i.e. zeros)."""
        session = self._sessions_for(self.threads or torch.get_num_threads())[0]
        if query is None:
            query = torch.zeros(tokens.shape[0], 1, self.config.embed_dim)
        feeds = {"tokens": tokens.float().numpy(), "search": search.float().numpy(), "query": query.float().numpy()}
        score, size, offset, next_query = (torch.from_numpy(np.ascontiguousarray(a)) for a in session.run(None, feeds))
        return NetworkOutput(score, size, offset, next_query if self.config.track_query else None)

    def embed_template(self, images: torch.Tensor) -> torch.Tensor:
        """Template crops (B, 3, Hz, Hz), normalised, to what the tracker caches of each, as `SSTrack.template_cache`."""
        session = self._sessions_for(self.threads or torch.get_num_threads())[1]
        (tokens,) = session.run(None, {"images": images.float().numpy()})
        return torch.from_numpy(np.ascontiguousarray(tokens))

    def _sessions_for(self, threads: int) -> tuple:
        # The app and the CLIs pick torch's threads per run (sstrack/threads.py); follow them.
        if self._sessions is None or threads != self._threads:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # No busy-waiting between frames: on a loaded machine spinning threads steal the
            # cores the decoder and the UI need.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._sessions = tuple(ort.InferenceSession(g, options, providers=["CPUExecutionProvider"]) for g in self._graphs)
            self._threads = threads
        return self._sessions


def onnx_network(model: SSTrack) -> OnnxNetwork | None:
    """The model's network in ONNX Runtime, or None (logged) where that is unavailable or not exact."""
    if model not in _EXPORTED:
        _EXPORTED[model] = _export(model)
    graphs = _EXPORTED[model]
    return OnnxNetwork(model, graphs) if graphs is not None else None


def _export(model: SSTrack) -> tuple[bytes, bytes] | None:
    try:
        import onnxruntime  # noqa: F401  (checked before the export's cost)
    except ImportError:
        _logger.info("onnxruntime is not installed; tracking with torch on the CPU")
        return None
    cfg = model.config
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        template = torch.rand(1, 3, cfg.template_size, cfg.template_size, generator=generator)
        cache = model.template_cache(template)
        tokens = cache.repeat(1, max(cfg.template_number, 1), *[1] * (cache.dim() - 2))
    template, tokens = template.clone(), tokens.clone()  # plain tensors: the exporter traces them
    search = torch.rand(1, 3, cfg.search_size, cfg.search_size, generator=generator)
    query = torch.zeros(1, 1, cfg.embed_dim)
    forward, embed = _Forward(model).eval(), _Template(model).eval()
    try:
        graphs = (
            _to_onnx(forward, (tokens, search, query), ["tokens", "search", "query"], ["score", "size", "offset", "next_query"],
                     {"tokens": {0: "batch", 1: "tokens"}, "search": {0: "batch"}, "query": {0: "batch"}}),
            _to_onnx(embed, (template,), ["images"], ["template_tokens"], {"images": {0: "batch"}}),
        )
    except Exception as error:  # any exporter failure (an op it lacks, onnx missing) means: use torch
        _logger.info("the network could not be exported to ONNX (%s: %s); tracking with torch", type(error).__name__, error)
        return None
    network = OnnxNetwork(model, graphs)
    with torch.no_grad():
        expected = forward(tokens, search, query)
        expected_tokens = embed(template)
    got = network(tokens, search, query)
    worst = max(float((a - b).abs().max()) for a, b in zip(expected[:3], (got.score_map, got.size_map, got.offset_map)))
    worst = max(worst, float((network.embed_template(template) - expected_tokens).abs().max()))
    if not worst <= TOLERANCE:
        _logger.warning("ONNX Runtime's maps differ from torch's by %.2g (> %g); tracking with torch", worst, TOLERANCE)
        return None
    return graphs


def _to_onnx(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], input_names: list[str], output_names: list[str],
             dynamic_axes: dict[str, dict[int, str]]) -> bytes:
    """`module` exported to an in-memory ONNX graph."""
    buffer = io.BytesIO()
    # torch's TorchScript-based exporter (dynamo=False: the dynamo one needs onnxscript) warns
    # that it will be removed; when it is, the export raises and the tracker stays on torch.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, buffer, input_names=input_names, output_names=output_names,
                          opset_version=18, dynamo=False, dynamic_axes=dynamic_axes)
    return buffer.getvalue()
