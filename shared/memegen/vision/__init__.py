"""The vision layer: from a photo's bytes to faces and their expressions.

``reader`` decodes a photo (upright, in RGB, within the size limits), ``detect`` finds its faces,
``crop`` cuts the face crop a classifier sees, ``manifest`` reads ``models/ensemble.json`` and
``ensemble`` scores each crop with the int8 members it names.

May import: the base modules at the package root (``contract``, ``errors``, ``settings``, ``logs``,
``labels``, ``runtime``) and this layer. Never ``meme``, ``cloud`` or ``offline``.
"""
