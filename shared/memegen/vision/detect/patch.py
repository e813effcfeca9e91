"""The BlazeFace full-range model rewritten for an input of another shape.

The network is fully convolutional, so a pyramid level of moderate size can run whole,
as one input of its own shape, instead of as overlapping 192 px tiles that look at some
pixels twice and cut faces at their edges. Every layer follows the input shape by itself
except the three ``RESIZE_BILINEAR`` upsamplings, whose target sizes are constants in the
model: those are patched in the flatbuffer, with ai-edge-litert's schema module.
tflite-runtime has no schema module; there the detector runs tiles only (``CAN_RESIZE``).
"""

from __future__ import annotations

import functools

import numpy as np

from memegen.errors import ModelError
from memegen.vision.detect.plan import INPUT

try:
    from ai_edge_litert import schema_py_generated as _schema
except ImportError:  # pragma: no cover - tflite-runtime has no schema module: tiles only
    _schema = None

CAN_RESIZE = _schema is not None


def resized_model(model: bytes, *, height: int, width: int) -> bytes:
    """The full-range model with its three upsampling sizes set for a ``height`` x ``width`` input.

    Every other layer follows the input shape by itself; the ``RESIZE_BILINEAR`` targets are
    constants written for 192 x 192 (12, 24 and 48, that is the input over 16, 8 and 4).
    """
    data = bytearray(model)
    for position, factor in _upsampling_sizes(model):
        data[position : position + 8] = np.array([height // factor, width // factor], dtype="<i4").tobytes()
    return bytes(data)


def upsampling_sizes(model: bytes) -> list[np.ndarray]:
    """The three ``RESIZE_BILINEAR`` target sizes, (height, width) each, as int32 views into the model's bytes."""
    if _schema is None:  # pragma: no cover - tflite-runtime only
        raise ModelError("resizing the detector needs ai-edge-litert's flatbuffer schema")
    graph_model = _schema.Model.GetRootAs(model, 0)
    graph = graph_model.Subgraphs(0)
    sizes = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = graph_model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == _schema.BuiltinOperator.RESIZE_BILINEAR:
            sizes.append(graph_model.Buffers(graph.Tensors(op.Inputs(1)).Buffer()).DataAsNumpy().view("<i4"))
    if len(sizes) != 3:
        raise ModelError(f"the face detector has {len(sizes)} upsampling layers where BlazeFace has 3")
    return sizes


@functools.lru_cache(maxsize=2)
def _upsampling_sizes(model: bytes) -> tuple[tuple[int, int], ...]:
    """Where the three upsampling sizes lie in the model's bytes, and the factor each divides the input by.

    Found once per model: walking the flatbuffer in Python takes far longer than the interpreter
    for a new shape takes to build.
    """
    start = np.frombuffer(model, dtype=np.uint8).ctypes.data
    # Each size is a view into the model's bytes: its address gives its position.
    return tuple((size.ctypes.data - start, INPUT // int(size[0])) for size in upsampling_sizes(model))
