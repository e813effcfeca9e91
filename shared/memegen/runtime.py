"""The process-wide side of MemeGen, in one place: the TFLite runtime and Pillow's allocator.

Everything else in the library is per object. The two changes made to the whole process:

- :func:`load_interpreter` silences file descriptor 2 while the *first* interpreter of the
  process is created. The runtime's C++ logger prints "INFO: Created TensorFlow Lite XNNPACK
  delegate" there once per process and has no Python switch; the command line promises one
  line on stderr for an error. Later interpreters print nothing, so they are created with
  stderr untouched (the first is created when the models load, at start-up, not mid-request).
- :func:`tune_process`, called by the edges (the functions' factories, the command line), keeps
  two freed Pillow pixel blocks for reuse. A library user who embeds MemeGen decides for their
  own process and need not call it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # pragma: no cover - only on machines without ai-edge-litert
    from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,no-redef]

__all__ = ["Interpreter", "load_interpreter", "tune_process"]

# Pillow frees every image's pixel blocks (16 MB each) by default, so each upload's decode
# and each meme's canvas fault in fresh pages: a 12 MP photo's half-size decode took 30 ms
# instead of 22. Keeping two freed blocks for reuse (Pillow's PILLOW_BLOCKS_MAX) covers the
# decoded photo and the meme canvas, for at most 32 MB held between memes.
PILLOW_BLOCKS_KEPT = 2

_first_interpreter = threading.Lock()
_runtime_has_spoken = False


def tune_process() -> None:
    """Apply MemeGen's process-wide tuning (idempotent): Pillow keeps ``PILLOW_BLOCKS_KEPT`` freed blocks."""
    if Image.core.get_blocks_max() < PILLOW_BLOCKS_KEPT:
        Image.core.set_blocks_max(PILLOW_BLOCKS_KEPT)


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _create(model: bytes, threads: int, shape: tuple[int, ...] | None) -> Interpreter:
    interpreter = Interpreter(model_content=model, num_threads=threads)
    if shape is not None:
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], list(shape))
    interpreter.allocate_tensors()
    return interpreter


def load_interpreter(model: bytes, *, threads: int = 1, shape: tuple[int, ...] | None = None) -> Interpreter:
    """An interpreter for model bytes, tensors allocated (raises ValueError or RuntimeError if invalid).

    ``shape`` resizes the first input before the tensors are allocated.
    """
    global _runtime_has_spoken
    if _runtime_has_spoken:
        return _create(model, threads, shape)
    with _first_interpreter:
        if _runtime_has_spoken:
            return _create(model, threads, shape)
        with _native_stderr_silenced():
            interpreter = _create(model, threads, shape)
        _runtime_has_spoken = True
        return interpreter
