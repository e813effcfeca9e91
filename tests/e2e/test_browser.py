"""The upload page in a real browser: headless Chromium picks a real photo, uploads it, and shows the meme.

Chromium comes from Debian (``make test`` installs it); Playwright drives it.
The screenshot lands in ``build/screenshots/`` for a person to look at.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from PIL import Image
from playwright.sync_api import Browser, Page, sync_playwright

from local.stack import ROOT, running_stack
from memegen.contract import MEME_FORMATS, SHARE_PATH
from memegen.settings import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "build" / "screenshots"
# A phone's screen, which the page is meant for, and a desktop's.
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "has_touch": True}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make test installs it: apt-get install chromium)"
    ),
]


@contextmanager
def stack_and_browser(tmp_path: Path) -> Iterator[tuple[Any, Browser]]:
    """The whole local stack (``make run``'s) and a headless Chromium, the browser closed first."""
    with running_stack(tmp_path / "key.json") as stack, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield stack, browser
        finally:
            browser.close()


def page_errors(page: Page) -> list[str]:
    """The page's uncaught errors and console errors, collected as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return errors


def storage_client(stack: Any) -> storage.Client:
    """The real storage client on the stack's storage server."""
    return storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{stack.storage_port}"},
    )


def upload_ids(stack: Any, settings: Settings) -> set[str]:
    return {b.name.split("/")[1] for b in storage_client(stack).list_blobs(settings.output_bucket, prefix="records/")}


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_a_person_uploads_a_photo_on_a_phone_and_gets_the_meme(
    settings: Settings, photos_dir: Path, tmp_path: Path
) -> None:
    with stack_and_browser(tmp_path) as (stack, browser):
        page = browser.new_page(**PHONE)
        errors = page_errors(page)
        page.goto(stack.page)
        assert page.is_disabled("#make")  # nothing picked yet
        page.set_input_files("#library", photos_dir / "obama-480p.jpg")
        page.fill("#top", "when the browser test")
        page.fill("#bottom", "passes first time")
        page.click("#make")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        page.wait_for_function(
            "() => { const m = document.getElementById('meme'); return m.complete && m.naturalWidth > 0; }",
            timeout=20_000,
        )
        shown = page.evaluate(
            "() => { const m = document.getElementById('meme'); return [m.naturalWidth, m.naturalHeight]; }"
        )
        screenshot(page, "upload-page.png")
        assert page.is_visible("#download") and page.is_visible("#share")
        # Fetched through the output bucket's CORS rule, not the fallback <img src> that a
        # bucket without one leaves (Download and Share would then lose the bytes).
        assert page.evaluate("() => document.getElementById('meme').src").startswith("blob:")
        assert not errors, errors

        client = storage_client(stack)
        # The record of the upload itself (the api's issued record, 0.json, says only "pending").
        records = [
            b for b in client.list_blobs(settings.output_bucket, prefix="records/") if not b.name.endswith("/0.json")
        ]
        assert len(records) == 1, [b.name for b in records]
        record = json.loads(records[0].download_as_bytes())
        assert record["status"] == "done"
        assert (record["caption"]["top"], record["caption"]["bottom"]) == ("when the browser test", "passes first time")
        meme = Image.open(io.BytesIO(client.bucket(settings.output_bucket).blob(record["meme"]).download_as_bytes()))
        assert list(shown) == list(meme.size)  # the page showed this meme, whole
    assert stack.status == 0, "".join(stack.output)


def test_the_page_refuses_a_file_that_is_not_a_photo(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    with stack_and_browser(tmp_path) as (stack, browser):
        page = browser.new_page()
        page.goto(stack.page)
        page.set_input_files("#library", text)
        page.wait_for_selector("#error:not([hidden])", timeout=5_000)
        assert page.is_disabled("#make")
        assert "photo" in page.inner_text("#error").lower()


def test_another_caption_then_delete_it_on_a_desktop(settings: Settings, photos_dir: Path, tmp_path: Path) -> None:
    with stack_and_browser(tmp_path) as (stack, browser):
        page = browser.new_page(**DESKTOP)
        errors = page_errors(page)
        page.goto(stack.page)
        page.set_input_files("#library", photos_dir / "two_people.jpg")
        page.fill("#top", "my own words first")  # a new meme after the delete must not keep them
        page.click("#make")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        assert f"kept {settings.meme_retention_days} days" in page.inner_text("#kept")
        first = page.get_attribute("#meme", "alt")
        (original,) = upload_ids(stack, settings)

        page.click("#another")
        page.wait_for_function(
            "(first) => !document.getElementById('result').hidden && document.getElementById('meme').alt !== first",
            arg=first,
            timeout=60_000,
        )
        screenshot(page, "desktop-another-caption.png")
        (version,) = upload_ids(stack, settings) - {original}

        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#delete")
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Deleted')")
        # The form is back, clean: no photo, no caption of the deleted meme.
        assert page.is_visible("#form") and page.is_hidden("#result") and page.is_disabled("#make")
        assert page.input_value("#top") == "" and page.is_hidden("#preview")
        assert not errors, errors

        client = storage_client(stack)
        left = {
            bucket: [b.name for b in client.list_blobs(bucket)]
            for bucket in (settings.input_bucket, settings.output_bucket)
        }
        # Nothing of the version is left; the first meme (its own link) stays.
        assert [n for names in left.values() for n in names if version in n] == []
        assert any(n.startswith(f"memes/{original}/") for n in left[settings.output_bucket])
    assert stack.status == 0, "".join(stack.output)


def test_a_cyrillic_caption_is_drawn_and_an_emoji_one_is_refused_with_a_message(
    settings: Settings, photos_dir: Path, tmp_path: Path
) -> None:
    with stack_and_browser(tmp_path) as (stack, browser):
        page = browser.new_page(**PHONE)
        page.goto(stack.page)
        page.set_input_files("#library", photos_dir / "obama-480p.jpg")
        page.fill("#top", "party 🎉")
        page.click("#make")
        page.wait_for_selector("#error:not([hidden])", timeout=10_000)
        assert "cannot draw" in page.inner_text("#error") and "Cyrillic" in page.inner_text("#error")
        assert page.is_visible("#form")  # the photo and the form are kept, to fix the caption
        page.fill("#top", "Когда тесты прошли")
        page.click("#make")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        screenshot(page, "cyrillic-caption.png")
        assert "Когда тесты прошли" in (page.get_attribute("#meme", "alt") or "")
    assert stack.status == 0, "".join(stack.output)


def test_a_zoom_meme_is_made_through_the_page_and_its_share_page_previews_it(
    settings: Settings, photos_dir: Path, tmp_path: Path
) -> None:
    with stack_and_browser(tmp_path) as (stack, browser):
        page = browser.new_page(**PHONE)
        errors = page_errors(page)
        page.goto(stack.page)
        offered = page.eval_on_selector_all("#format option", "options => options.map(o => o.value)")
        assert set(offered) == set(MEME_FORMATS) - {"jpg"}  # every format, "jpg" being "jpeg" by another name
        page.set_input_files("#library", photos_dir / "obama-480p.jpg")
        page.select_option("#format", "gif")
        page.click("#make")
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        page.wait_for_function(
            "() => { const m = document.getElementById('meme'); return m.complete && m.naturalWidth > 0; }",
            timeout=20_000,
        )
        screenshot(page, "zoom-page.png")
        assert not errors, errors
        client = storage_client(stack)
        (name,) = [
            b.name
            for b in client.list_blobs(settings.output_bucket, prefix="records/")
            if not b.name.endswith("/0.json")
        ]
        record = json.loads(client.bucket(settings.output_bucket).blob(name).download_as_bytes())
        assert record["status"] == "done" and record["content_type"] == "image/gif", record
        gif = Image.open(io.BytesIO(client.bucket(settings.output_bucket).blob(record["meme"]).download_as_bytes()))
        assert gif.format == "GIF" and getattr(gif, "n_frames", 1) == record["zoom"]["frames"] >= 10
        # The share page shows the animation itself: an <img> of the meme plays a GIF.
        share = browser.new_page()
        share.goto(stack.page.rstrip("/") + f"{SHARE_PATH}{record['id']}")
        share.wait_for_function("() => { const m = document.querySelector('img'); return m && m.naturalWidth > 0; }")
        assert share.evaluate("() => document.querySelector('img').naturalWidth") == gif.width
        screenshot(share, "zoom-share-page.png")
    assert stack.status == 0, "".join(stack.output)
