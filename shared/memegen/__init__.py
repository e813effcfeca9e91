"""MemeGen: photos in, memes out.

One call makes a meme::

    import memegen

    meme = memegen.make_meme(open("photo.jpg", "rb").read())
    open("meme.jpg", "wb").write(meme.image)
    print(meme.caption.top, "/", meme.caption.bottom, [face.label for face in meme.faces])

For many photos, or your own settings, build the engine once and call it:
``memegen.meme.engine.Engine.from_settings(Settings(...)).make(data)``. The stages are there too, each
a pure function of its input: ``memegen.vision.reader``, ``memegen.vision.detect``, ``memegen.vision.ensemble``,
``memegen.meme.captions`` and ``memegen.meme.render``. Errors are ``memegen.errors.MemeGenError``;
what the user gave wrong is an ``InputError``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from memegen.meme.engine import Engine, Meme
    from memegen.settings import Settings

__all__ = ["make_meme"]


def make_meme(
    data: bytes,
    *,
    top: str | None = None,
    bottom: str | None = None,
    format: str = "jpeg",
    settings: Settings | None = None,
) -> Meme:
    """Make a meme of a photo's bytes (JPEG, PNG, WebP, GIF, BMP or TIFF).

    ``top`` and ``bottom`` are your own caption lines; without them a caption that fits the faces'
    expressions is chosen. ``format`` is the meme's: ``jpeg``, ``png`` or ``webp``. The models load
    on the first call (about a tenth of a second) and are kept for the next ones, per ``settings``
    (by default ``Settings()``, the models shipped beside the library).

    Returns a :class:`memegen.meme.engine.Meme`: ``image`` (the encoded bytes), ``content_type``,
    ``faces`` (boxes and expression scores), ``caption`` and ``metadata()``. Raises
    :class:`memegen.errors.InputError` for a photo or caption it cannot use.
    """
    return _engine(settings).make(data, top=top, bottom=bottom, format=format)


@functools.cache
def _engine(settings: Settings | None) -> Engine:
    # Imported here: `import memegen.contract` (the infrastructure's) must not load the models' stack.
    from memegen.meme.engine import Engine
    from memegen.settings import Settings

    return Engine.from_settings(settings or Settings())
