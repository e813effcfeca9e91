"""The BlazeFace full-range model rewritten for an input of another shape.

The network is fully convolutional, so a pyramid level of moderate size can run whole,
as one input of its own shape, instead of as overlapping 192 px tiles that look at some
pixels twice and cut faces at their edges. Every layer follows the input shape by itself
except the three ``RESIZE_BILINEAR`` upsamplings, whose target sizes are constants in the
model: those are patched in the flatbuffer, with ai-edge-litert's schema module.
tflite-runtime has no schema module; there the detector runs tiles only (``CAN_RESIZE``).
"""

from __future__ import annotations

import numpy as np

from memegen.detect.plan import INPUT
from memegen.errors import ModelError

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
    if _schema is None:  # pragma: no cover - tflite-runtime only
        raise ModelError("resizing the detector needs ai-edge-litert's flatbuffer schema")
    data = bytearray(model)
    graph_model = _schema.Model.GetRootAs(data, 0)
    graph = graph_model.Subgraphs(0)
    resized = 0
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = graph_model.OperatorCodes(op.OpcodeIndex())
        if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) != _schema.BuiltinOperator.RESIZE_BILINEAR:
            continue
        # A writable numpy view into ``data``: the sizes are patched in place.
        size = graph_model.Buffers(graph.Tensors(op.Inputs(1)).Buffer()).DataAsNumpy().view(np.int32)
        factor = INPUT // int(size[0])
        size[:] = (height // factor, width // factor)
        resized += 1
    if resized != 3:
        raise ModelError(f"the face detector has {resized} upsampling layers where BlazeFace has 3")
    return bytes(data)
