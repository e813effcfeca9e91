"""Narrow exceptions of the MemeGen library, mapped to a status only at the edge."""

from __future__ import annotations


class MemeGenError(Exception):
    """Base class of every error the library raises on purpose."""


class ModelError(MemeGenError):
    """A model file is missing, corrupt, or does not match its manifest."""


class DatasetError(MemeGenError):
    """A dataset folder is missing or not in the folder-per-class layout."""


class InputError(MemeGenError):
    """A permanent problem with what the user gave: retrying cannot help."""


class UnsupportedImage(InputError):
    """The bytes are not an image format MemeGen reads."""


class ImageTooLarge(InputError):
    """The image is over the byte or pixel limit (a decompression bomb, say)."""


class OutputError(MemeGenError):
    """A result cannot be written where it was asked to go (a full disk, a missing folder)."""
