"""Cloud Function ``on_upload``: a photo lands in the input bucket, its meme and record land in the output bucket."""

from __future__ import annotations

import functools

import functions_framework
from cloudevents.http import CloudEvent
from google.cloud import storage

from memegen.cloud.storage import Store
from memegen.cloud.worker import handle_upload
from memegen.meme.engine import Engine
from memegen.runtime import tune_process
from memegen.settings import Settings


@functools.cache
def services() -> tuple[Settings, Store, Engine]:
    """Settings, the storage client and the models: built by an instance's first event, kept for the rest."""
    settings = Settings.from_env()
    tune_process()
    # No signing credentials: this function signs no URL.
    return settings, Store(storage.Client(), settings), Engine.from_settings(settings)


@functions_framework.cloud_event
def on_upload(cloud_event: CloudEvent) -> None:
    """Eventarc ``google.cloud.storage.object.v1.finalized``; raises only for errors worth a retry."""
    settings, store, engine = services()
    handle_upload(cloud_event, store=store, engine=engine, settings=settings)
