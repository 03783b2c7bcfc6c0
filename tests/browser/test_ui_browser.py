"""The service's web page in a real browser: headless chromium on ``fusionrec serve`` of a trained demo model.

One walk through the page as a person would use it: type a read key, pick a user,
see their recent items and explained recommendations, try to record an interaction
with the read key (refused: reads only), then with the write key (the list re-ranks),
open an item, add a new item with text and a photo and find it under the similar
items of the item it resembles. A second test opens ``/docs`` and ``/redoc`` and
checks that nothing is fetched from outside the server.

Screenshots go to ``docs/images/ui-*.png`` when ``FUSIONREC_WRITE_SCREENSHOTS=1``
(how the committed ones were made), else to the test's temporary folder.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
import yaml

from tests.browser.conftest import DOCS_IMAGES
from tests.serve.live import LiveServer

READ_KEY = "ui-read-key-0123456789abcdef"
WRITE_KEY = "ui-write-key-0123456789abcdef"
ADMIN_KEY = "ui-admin-key-0123456789abcdef"


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> tuple[Path, Path]:
    """A small demo shop trained with mmgraph (text + image features): (model folder, demo data root)."""
    from fusionrec.cli import main

    tmp = tmp_path_factory.mktemp("ui-model")
    run = tmp / "run.yaml"
    run.write_text(yaml.safe_dump({
        "data": {"name": "demo", "format": "demo", "split": {"method": "predefined"},
                 "demo": {"n_users": 80, "n_items": 60, "seed": 3, "root": str(tmp / "demo_data")}},
        "train": {"epochs": 3, "num_threads": 1, "batch_size": 256, "seeds": [5], "valid_metric": "recall@10"},
        "eval": {"ks": [10], "beyond_accuracy": False},
        "output_dir": str(tmp / "runs"),
    }))
    old_cache = os.environ.get("FUSIONREC_CACHE")
    os.environ["FUSIONREC_CACHE"] = str(tmp / "cache")
    try:
        assert main(["train", "--config", str(run), "--model", "mmgraph", "-q"]) == 0
    finally:
        if old_cache is None:
            os.environ.pop("FUSIONREC_CACHE", None)
        else:
            os.environ["FUSIONREC_CACHE"] = old_cache
    model_dirs = sorted((tmp / "runs").glob("*/model"))
    assert model_dirs, f"no model folder under {tmp / 'runs'}"
    return model_dirs[-1], tmp / "demo_data"


@pytest.fixture(scope="module")
def server(demo_model, tmp_path_factory):
    model_dir, _ = demo_model
    folder = tmp_path_factory.mktemp("ui-serve")
    # the page's two keys, one role each, from a key file (LiveServer's own key is for the harness)
    key_file = folder / "keys.txt"
    key_file.write_text(f"{READ_KEY}:read\n{WRITE_KEY}:write\n")
    live = LiveServer(model_dir, folder / "serve.sqlite3", ADMIN_KEY, extra=["--api-key-file", str(key_file)])
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


@pytest.fixture
def shots(tmp_path) -> Path:
    if os.environ.get("FUSIONREC_WRITE_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES
    return tmp_path


def _rec_ids(page) -> list[str]:
    return page.eval_on_selector_all("#recs li.rec", "els => els.map(e => e.dataset.item)")


def _set_key(page, selector: str, value: str) -> None:
    """Type a key into the Keys panel (opening it when closed), as a person would; closes it after."""
    if not page.is_visible(selector):
        page.click("#keys summary")
    page.fill(selector, value)
    page.dispatch_event(selector, "change")
    page.click("#keys summary")


def _wait_images(page, scope: str) -> None:
    # every thumbnail in scope has settled: an <img> that finished loading, or the no-picture placeholder
    page.wait_for_function(
        """(scope) => [...document.querySelectorAll(scope + ' .thumb')].every(
             t => t.classList.contains('none') || (t.querySelector('img') && t.querySelector('img').complete))""",
        arg=scope)


def test_pick_a_user_interact_and_add_an_item(server, demo_model, page, watch, shots):
    _, demo_root = demo_model
    page.goto(server.url + "/ui")
    page.wait_for_selector("body[data-ready='1']")
    # reads need a key on this server: the page says so and opens the key panel
    assert page.is_visible("#keys .keys-body")
    assert "key" in page.inner_text("#toast").lower()
    watch.console_errors.clear()  # the browser logs the expected 401s of that first look
    _set_key(page, "#read-key", READ_KEY)
    page.wait_for_selector("#suggested a")

    # --- a user: recent items with images, recommendations with scores and explanations
    user = page.inner_text("#suggested li:first-child a")
    page.click("#suggested li:first-child a")
    page.wait_for_selector("#recs[data-refresh='1'] li.rec")
    _wait_images(page, "#view-user")
    assert page.inner_text("#user-id") == user
    assert page.locator("#recent .card img").count() >= 3, "recent items should show their images"
    before = _rec_ids(page)
    assert len(before) == 10
    scores = [float(s) for s in page.locator("#recs .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    shares = page.locator("#recs li.rec").first.locator(".shares .share")
    assert shares.count() >= 2, "the explanation should split the score by modality"
    widths = [float(re.search(r"width:\s*([\d.]+)%", s).group(1))
              for s in shares.evaluate_all("els => els.map(e => e.getAttribute('style'))")]
    assert abs(sum(widths) - 100) < 1.5
    assert page.locator("#recs li.rec .because a.past").count() >= 1, "no past item shown as a reason"
    page.screenshot(path=str(shots / "ui-user.png"), full_page=True)

    # --- an interaction with the read key alone is refused (reads only) and changes nothing
    target = before[2]
    page.click(f"#recs li.rec[data-item='{target}'] button.interact")
    page.wait_for_selector("#toast.bad")
    assert "role" in page.inner_text("#toast").lower() or "403" in page.inner_text("#toast")
    assert page.get_attribute("#recs", "data-refresh") == "1"
    watch.console_errors.clear()  # the expected 403 of that attempt
    # --- with the write key the event is recorded and the list re-ranks
    _set_key(page, "#write-key", WRITE_KEY)
    page.click(f"#recs li.rec[data-item='{target}'] button.interact")
    page.wait_for_function("() => Number(document.querySelector('#recs').dataset.refresh) >= 2"
                           " || document.querySelector('#toast.bad:not([hidden])')", timeout=60_000)
    assert not page.is_visible("#toast.bad"), page.inner_text("#toast")
    after = _rec_ids(page)
    assert target not in after, "the item just clicked is seen now and should leave the list"
    assert after != before
    assert page.locator("#recs .delta").count() >= 1, "moves should be marked on the cards"
    first_recent = page.locator("#recent .card").first
    assert first_recent.get_attribute("data-item") == target and "just now" in first_recent.inner_text()
    page.wait_for_timeout(250)  # mid-slide: the screenshot shows cards moving to their new places
    page.screenshot(path=str(shots / "ui-interaction.png"))

    # --- an item page: content and similar items
    top = after[0]
    page.click(f"#recs li.rec[data-item='{top}'] a.title")
    page.wait_for_selector("#similar li.card")
    _wait_images(page, "#view-item")
    assert page.inner_text("#item-id") == top
    assert page.locator("#item-image img").count() == 1
    assert page.locator("#item-attrs tr").count() >= 2
    page.screenshot(path=str(shots / "ui-item.png"), full_page=True)

    # --- a new item: text and photo like that item's, then it shows up under its similar items
    profile = httpx.get(f"{server.url}/items/{top}", headers={"X-API-Key": READ_KEY}, timeout=30).json()
    text = profile["attributes"].get("text") or profile["attributes"].get("description")
    photo = demo_root / profile["attributes"]["image_path"]
    page.click("#nav-add")
    page.wait_for_selector("#view-add:not([hidden])")
    page.fill("#add-id", "ui-new-item")
    page.fill("#add-title", "New: " + (profile["title"] or top))
    page.fill("#add-text", text)
    page.set_input_files("#add-image", str(photo))
    page.wait_for_selector("#add-preview img")
    page.screenshot(path=str(shots / "ui-add-form.png"))
    page.click("#add-submit")
    page.wait_for_selector("#view-item:not([hidden]) #item-added:not([hidden])")
    page.wait_for_selector("#appears:not([hidden]) #appears-list li.card")
    _wait_images(page, "#view-item")
    assert page.inner_text("#item-id") == "ui-new-item"
    assert page.locator("#item-image img").count() == 1, "the uploaded photo should be served back"
    hosts = page.eval_on_selector_all("#appears-list li.card", "els => els.map(e => e.dataset.item)")
    assert top in hosts, f"the new item should appear under the similar items of {top}; found under {hosts}"
    page.screenshot(path=str(shots / "ui-new-item.png"), full_page=True)
    page.click(f"#appears-list li.card[data-item='{top}'] a.title")
    page.wait_for_selector("#similar li.card[data-item='ui-new-item']")
    assert page.locator("#similar li.card.highlight[data-item='ui-new-item']").count() == 1
    assert watch.problems() == []


def test_api_docs_render_from_local_assets(server, page, watch):
    page.goto(server.url + "/docs")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/recommendations" in p for p in paths)
    page.goto(server.url + "/redoc")
    page.wait_for_selector("h1:has-text('fusionrec recommendation service')")
    page.wait_for_selector("[role=menuitem]")
    assert watch.problems() == [], "the docs pages must load everything from this server"


def test_page_files_and_helper_reads_without_a_browser(server, demo_model):
    """Runs without chromium too: the page's files name no external URL, and its helper reads need the read role."""
    read = {"X-API-Key": READ_KEY}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for path in ("/ui", "/ui/static/app.js", "/ui/static/style.css"):
            resp = client.get(path)
            assert resp.status_code == 200, path
            assert not re.search(r"https?://", resp.text), f"{path} names an external URL"
        for path in ("/docs", "/redoc"):
            html = client.get(path).text
            assert "/docs-assets/" in html and not re.search(r"(src|href)=\"https?://", html), path
        assert b"cdn.redoc.ly" not in client.get("/docs-assets/redoc.standalone.js").content

        assert client.get("/ui/api/users").status_code == 401
        users = client.get("/ui/api/users", headers=read).json()["users"]
        counts = [u["n_items"] for u in users]
        assert counts == sorted(counts, reverse=True) and counts[0] > 0
        user = users[0]["user_id"]
        recent = client.get(f"/ui/api/users/{user}/recent", params={"limit": 5}, headers=read).json()
        # at least the training history (the browser test may have added an event for this user)
        assert len(recent["items"]) == 5 and recent["n_history"] >= users[0]["n_items"]
        assert client.get("/ui/api/users/nobody-like-this/recent", headers=read).status_code == 404

        # the demo shop draws images/<id>.jpg for most items, not all
        item = next(it["item_id"] for it in recent["items"]
                    if (demo_model[1] / "images" / f"{it['item_id']}.jpg").is_file())
        image = client.get(f"/ui/api/items/{item}/image", headers=read)
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.content == (demo_model[1] / "images" / f"{item}.jpg").read_bytes()
        assert client.get("/ui/api/items/no-such-item/image", headers=read).status_code == 404
