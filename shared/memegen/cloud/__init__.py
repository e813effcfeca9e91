"""The cloud layer: the service around the engine, in Cloud Functions and Cloud Storage.

``storage`` reads and writes the buckets, ``uploads`` names an upload and the objects it becomes,
``signing`` signs the URLs the browser uses, and ``worker`` turns an upload's event into a meme.
``api`` answers the api function's JSON requests, ``pages`` serves its HTML (the upload page in
``static/``, a meme's share page), ``responses`` what every answer carries; ``openapi`` describes
that api and ``records`` the meme records it reads.

May import: the base modules at the package root, ``memegen.vision``, ``memegen.meme`` and this
layer. Never ``offline``.
"""
