"""mod/webclient.py and mod/web/: how the client's files are served, and what they may contain."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mod.webclient import WEB, load
from tests.support import ServerProcess

LIMIT = 150 * 1024
SCRIPTS = sorted(WEB.glob("*.js"))


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client of a real server (the files as server.py routes them)."""
    directory = tmp_path_factory.mktemp("web")
    with ServerProcess(directory, env={"MORELIA_DATABASE_URI": f"sqlite:{directory / 'db'}"}
                       ) as server, httpx.Client(base_url=server.http, timeout=10) as client:
        yield client


def test_the_client_is_at_the_root_with_its_security_headers(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/web/app.js">' in page.text
    csp = page.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["img-src"] == "'self' blob: data:"
    assert directives["frame-ancestors"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"


def test_every_file_has_a_type_an_etag_and_revalidates(http: httpx.Client) -> None:
    assets = load()
    assert {"/", "/web/app.js", "/web/style.css", "/web/i18n/en.json",
            "/web/i18n/ru.json", "/favicon.ico"} <= set(assets)
    assert assets["/favicon.ico"] == assets["/web/icon.svg"]  # no 404 on pages without one
    for path, asset in assets.items():
        reply = http.get(path)
        assert reply.status_code == 200, path
        assert reply.content == asset.body
        assert reply.headers["content-type"].startswith(asset.media_type.split(";")[0])
        assert reply.headers["etag"] == asset.etag
        assert reply.headers["cache-control"] == "no-cache"
        assert "content-security-policy" in reply.headers
        again = http.get(path, headers={"If-None-Match": asset.etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == asset.etag
    assert http.get("/web/app.js").headers["content-type"].startswith("text/javascript")
    assert http.get("/", headers={"If-None-Match": '"stale"'}).status_code == 200


def test_unknown_files_are_404_and_paths_cannot_climb_out(http: httpx.Client) -> None:
    for path in ("/web/nothing.js", "/web/", "/web/../webclient.py", "/web/%2e%2e/lib.py",
                 "/web/index.html", "/index.html"):
        assert http.get(path).status_code == 404, path
    assert http.get("/web/nothing.js").headers["x-content-type-options"] == "nosniff"
    assert http.post("/").status_code == 405


def test_the_client_is_small_and_loads_nothing_from_elsewhere() -> None:
    files = [path for path in WEB.rglob("*") if path.is_file()]
    total = sum(path.stat().st_size for path in files)
    assert total < LIMIT, f"the web client is {total} bytes, over {LIMIT}"
    for path in files:
        text = path.read_text()
        # No other origin: no absolute URLs (SVG's namespace is a name, not a load).
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"')]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (path.name, urls)


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.name for path in SCRIPTS])
def test_no_script_turns_text_into_markup_or_code(script: Path) -> None:
    text = script.read_text()
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                      "eval(", "new Function", "setAttribute(\"on", "javascript:"):
        assert forbidden not in text, (script.name, forbidden)


def test_the_html_has_no_inline_code_or_style() -> None:
    page = (WEB / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert not re.search(r"\son\w+=", page)
    assert "style=" not in page and "<style" not in page


def test_every_control_has_a_label() -> None:
    page = (WEB / "index.html").read_text()
    for tag in re.findall(r"<button[^>]*>.*?</button>", page, re.S):
        assert "data-i18n" in tag, tag  # its text or its aria-label comes from the strings
    for tag in re.findall(r"<(?:input|textarea|select)\b[^>]*>", page):
        if 'type="file"' in tag:
            continue  # opened by the labelled attach button
        labelled = "data-i18n-label" in tag or re.search(r'id="([\w-]+)"', tag)
        assert labelled, tag
    # Inputs without their own aria-label sit inside a <label> with its text.
    bare = re.findall(r"<label[^>]*>(?:(?!</label>).)*<(?:input|select)", page, re.S)
    assert len(bare) >= 8


def test_the_translations_cover_every_string() -> None:
    english = json.loads((WEB / "i18n" / "en.json").read_text())
    russian = json.loads((WEB / "i18n" / "ru.json").read_text())
    assert set(english) == set(russian)
    used = set(re.findall(r'data-i18n(?:-label|-placeholder)?="(\w+)"',
                          (WEB / "index.html").read_text()))
    for script in SCRIPTS:
        used |= set(re.findall(r'\bt\("(\w+)"', script.read_text()))
    assert used - set(english) == set()
    for key, value in english.items():
        assert re.findall(r"\{\d\}", value) == re.findall(r"\{\d\}", russian[key]), key
