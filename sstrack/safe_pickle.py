"""A pickle module for `torch.load` that can never run code from the file.

Official SSTrack/OSTrack checkpoints pickle training objects (`settings`, `stats`) beside the
weights, so `weights_only=True` refuses them. This unpickler resolves only an allow-list of
harmless globals (torch's tensor rebuild functions, dtypes, OrderedDict and a few builtin
containers); every other global, `os.system` and `builtins.eval` included, becomes an inert
placeholder class whose construction does nothing. Callers keep only the tensors they need.
"""

from __future__ import annotations

import collections
import io
import pickle
from typing import Any

import torch
import torch._utils

_TORCH_REBUILD = {
    name
    for name in (
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
    )
    if hasattr(torch._utils, name)
}
_BUILTINS = {"set": set, "frozenset": frozenset, "slice": slice, "complex": complex}


class Placeholder:
    """Stands in for a refused global: accepts any construction and state, does nothing."""

    refused: str = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        """Ignore list-style appends the pickle may apply to this object."""

    def extend(self, items: Any) -> None:
        """Ignore list-style extends the pickle may apply to this object."""

    def __repr__(self) -> str:
        return f"<refused global {self.refused}>"


def _placeholder(module: str, name: str) -> type:
    return type(f"Refused_{name}", (Placeholder,), {"refused": f"{module}.{name}"})


class Unpickler(pickle.Unpickler):
    """Unpickler whose `find_class` only resolves the allow-list."""

    def find_class(self, module: str, name: str) -> Any:
        """Resolve allowed globals; every other one becomes an inert placeholder class."""
        if module == "torch._utils" and name in _TORCH_REBUILD:
            return getattr(torch._utils, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]
        if module == "_codecs" and name == "encode":
            # Protocol-2 pickles (torch.save's default) store bytes via _codecs.encode(str, enc).
            return _codecs_encode
        return _placeholder(module, name)


def _codecs_encode(text: str, encoding: str = "latin1") -> bytes:
    """The only `_codecs.encode` use in pickles: str -> bytes."""
    return str(text).encode(encoding)


def load(file: Any, **kwargs: Any) -> Any:
    """`pickle.load` through the restricted unpickler (torch's legacy format calls this)."""
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    """`pickle.loads` through the restricted unpickler."""
    return Unpickler(io.BytesIO(data), **kwargs).load()

