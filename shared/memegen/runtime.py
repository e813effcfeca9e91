"""One TFLite runtime for every model: LiteRT, or tflite-runtime where LiteRT is absent."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - only on machines without ai-edge-litert
    from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,no-redef]

__all__ = ["Interpreter", "load_interpreter"]


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Silence file descriptor 2 for a moment.

    The runtime's C++ logger prints "INFO: Created TensorFlow Lite XNNPACK
    delegate" straight to fd 2 and has no Python switch; the command line
    promises one line on stderr for an error, so it must not leak out.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_interpreter(model: bytes, *, threads: int = 1, shape: tuple[int, ...] | None = None) -> Interpreter:
    """An interpreter for model bytes, tensors allocated (raises ValueError or RuntimeError if invalid).

    ``shape`` resizes the first input before the tensors are allocated.
    """
    with _native_stderr_silenced():
        interpreter = Interpreter(model_content=model, num_threads=threads)
        if shape is not None:
            interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], list(shape))
        interpreter.allocate_tensors()
    return interpreter
