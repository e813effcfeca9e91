"""Cloud Function ``on_upload``: a photo lands in the input bucket, its meme and record land in the output bucket."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent
from google.cloud import storage

from memegen.engine import Engine
from memegen.settings import Settings
from memegen.storage import Store
from memegen.worker import handle_upload

# Once per instance (cold start): settings, the storage client and the models serve every event.
settings = Settings.from_env()
# No signing credentials: this function signs no URL.
store = Store(storage.Client(), settings)
engine = Engine.from_settings(settings)


@functions_framework.cloud_event
def on_upload(cloud_event: CloudEvent) -> None:
    """Eventarc ``google.cloud.storage.object.v1.finalized``; raises only for errors worth a retry."""
    handle_upload(cloud_event, store=store, engine=engine, settings=settings)
