"""The tests of the training tools (``models/train``): they import PyTorch, which only ``.venv-train`` holds.
``make test-train`` runs them there (``make test`` too, beside ``.venv``'s suite); ``tests/conftest.py``
leaves this folder out where PyTorch is missing."""
