"""The meme layer: from the faces a photo shows to the meme's image and record.

``captions`` chooses a caption from the bank (``captions.json``) for the faces' expressions, ``fonts``
finds the fonts that draw it, ``render`` lays the caption out and draws it, and ``engine`` runs the
whole pipeline, vision's stages included, for one photo.

May import: the base modules at the package root, ``memegen.vision`` and this layer. Never ``cloud``
or ``offline``.
"""
