"""The cloud layer: the service around the engine, in Cloud Functions and Cloud Storage.

``storage`` holds the buckets and the signed URLs, ``worker`` turns an upload's event into a meme,
``api`` serves the page (``static/``), the upload URLs and the memes' status, ``openapi`` describes
that api and ``records`` the meme records it reads.

May import: the base modules at the package root, ``memegen.vision``, ``memegen.meme`` and this
layer. Never ``offline``.
"""
