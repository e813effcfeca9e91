"""The offline layer: the labelled datasets and the evaluation of the classifiers on them.

``datasets`` reads the labelled face sets and cuts their crops as inference does, ``metrics``
scores predictions against labels, and ``evaluate`` runs the detector and ensemble over a test set
(``python -m memegen evaluate``). Training (``models/train``) reads the datasets through it.

May import: the base modules at the package root, ``memegen.vision`` and this layer. Never ``meme``
or ``cloud``: nothing the service runs depends on it.
"""
