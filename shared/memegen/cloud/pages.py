"""The HTML the api function serves: the upload page (``static/index.html``) and a meme's share page.

Each page is allowed exactly its own script and style by hash in its Content-Security-Policy, and
the storage origin its signed URLs point at; a share link shows a finished meme or nothing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import flask

from memegen.cloud.responses import security_headers
from memegen.cloud.storage import Store
from memegen.contract import SHARE_IMAGE, SHARE_PATH, UPLOAD_TYPES, UPLOADS_PATH
from memegen.errors import MemeNotFound
from memegen.meme.captions import MAX_CAPTION
from memegen.settings import Settings

_TEMPLATE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_TEMPLATE_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)
_CONFIG_MARK = "{{CONFIG}}"


def page_response(request: flask.Request, *, store: Store, settings: Settings) -> flask.Response:
    """The upload page with its security headers; revalidated cheaply through its ETag."""
    page = _page(settings.max_bytes, settings.meme_retention_days)
    response = flask.Response(page.html, status=200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = page.csp(store.origin)
    # Short-lived: a new deployment (new limits, new script) should reach people within minutes.
    response.headers["Cache-Control"] = "public, max-age=300"
    response.set_etag(page.etag)
    security_headers(response)
    # make_conditional answers 304 when If-None-Match matches, and returns the response it was given.
    response.make_conditional(request)
    return response


def _done_record(upload_id: str, store: Store) -> dict[str, Any]:
    record = store.latest_record(upload_id)
    if record is None or record.get("status") != "done":
        # Pending, failed or unknown: a share link shows a finished meme or nothing.
        raise MemeNotFound("no such meme")
    return record


def shared_image(upload_id: str, *, store: Store) -> flask.Response:
    """A redirect to a freshly signed, short-lived URL of the meme: the bucket stays private."""
    record = _done_record(upload_id, store)
    response = flask.Response(status=302)
    response.headers["Location"] = store.signed_meme_url(record["meme"])
    # Each answer carries a new signature: never cached, so that no one is sent an expired one.
    response.headers["Cache-Control"] = "no-store"
    security_headers(response)
    return response


_SHARE_STYLE = (
    "body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;justify-content:center;"
    "gap:1rem;background:#111;color:#eee;font:16px/1.4 system-ui,sans-serif;text-align:center}"
    "img{max-width:min(100vw,900px);max-height:80vh}a{color:#9cf}p{margin:0 1rem}"
)


def share_page(request: flask.Request, upload_id: str, *, store: Store, settings: Settings) -> flask.Response:
    """A meme's share page: the meme, and the Open Graph and Twitter card tags that make a pasted link preview."""
    record = _done_record(upload_id, store)
    caption = record.get("caption") or {}
    words = " / ".join(part for part in (caption.get("top", ""), caption.get("bottom", "")) if part)
    title = html.escape(words or "A meme", quote=True)
    page_url = html.escape(request.url_root.rstrip("/") + SHARE_PATH + upload_id, quote=True)
    image_url = page_url + SHARE_IMAGE
    lines = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No icon: the browser would ask for /favicon.ico, which is not a route (a console error).
        '<link rel="icon" href="data:,">',
        f"<title>{title}</title>",
        '<meta property="og:type" content="website">',
        f'<meta property="og:title" content="{title}">',
        '<meta property="og:site_name" content="MemeGen">',
        f'<meta property="og:url" content="{page_url}">',
        f'<meta property="og:image" content="{image_url}">',
        '<meta name="twitter:card" content="summary_large_image">',
        f'<meta name="twitter:title" content="{title}">',
        f'<meta name="twitter:image" content="{image_url}">',
        f"<style>{_SHARE_STYLE}</style>",
        "</head><body>",
        f'<img src="{SHARE_PATH}{upload_id}{SHARE_IMAGE}" alt="{title}">',
        f"<p>Made with MemeGen. A meme is kept {settings.meme_retention_days} days after it is made,"
        " then deleted; this link works until then.</p>",
        '<p><a href="/">Make your own</a></p>',
        "</body></html>",
    ]
    response = flask.Response("\n".join(lines), status=200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "; ".join(
        (
            "default-src 'none'",
            # The image address redirects to the storage origin: both must be allowed.
            f"img-src 'self' {store.origin} data:",
            f"style-src '{_SHARE_STYLE_HASH}'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    # The meme never changes, but it may be deleted: revalidate after a few minutes.
    response.headers["Cache-Control"] = "public, max-age=300"
    security_headers(response)
    return response


@dataclass(frozen=True)
class _Page:
    html: bytes
    etag: str
    script_hashes: tuple[str, ...]
    style_hashes: tuple[str, ...]

    def csp(self, storage_origin: str) -> str:
        scripts = " ".join(f"'{h}'" for h in self.script_hashes)
        styles = " ".join(f"'{h}'" for h in self.style_hashes)
        return "; ".join(
            (
                "default-src 'none'",
                f"script-src {scripts}",
                f"style-src {styles}",
                # blob: for the photo preview and the fetched meme; data: for the inline icon.
                f"img-src blob: data: {storage_origin}",
                f"connect-src 'self' {storage_origin}",
                "base-uri 'none'",
                "form-action 'none'",
                "frame-ancestors 'none'",
            )
        )


@functools.cache
def _page(max_bytes: int, retention_days: int) -> _Page:
    # Built once per settings: the page is the same for everyone, so its script and style
    # are allowed by hash (no per-response nonce) and the response can be cached and revalidated.
    template = resources.files("memegen.cloud").joinpath("static/index.html").read_text(encoding="utf-8")
    config = {
        "maxBytes": max_bytes,
        "contentTypes": list(UPLOAD_TYPES),
        "maxCaption": MAX_CAPTION,
        "uploadsUrl": UPLOADS_PATH,
        "retentionDays": retention_days,
    }
    # A JSON data block is never executed, so it needs no hash; "<" is escaped so it cannot end the block.
    html = template.replace(_CONFIG_MARK, json.dumps(config).replace("<", "\\u003c"))
    scripts = tuple(_csp_hash(body) for body in _TEMPLATE_SCRIPT.findall(html))
    styles = tuple(_csp_hash(body) for body in _TEMPLATE_STYLE.findall(html))
    encoded = html.encode("utf-8")
    return _Page(encoded, hashlib.sha256(encoded).hexdigest()[:32], scripts, styles)


def _csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


# Hashed once: the share page's one style block is the same for every meme.
_SHARE_STYLE_HASH = _csp_hash(_SHARE_STYLE)
