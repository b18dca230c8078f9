"""The editor's page and the embeddable box in headless Chromium (Debian's chromium, driven by
Selenium through /usr/bin/chromedriver; scripts/setup installs both).

Set RECOMMENDER_SCREENSHOTS=DIR to save a screenshot of each (benchmarks/serve.py does, into
benchmarks/screenshots/).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from html import escape as html_escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import FakeEncoder
from live_server import hung_server, live_server, static_site

from recommender.http.app import create_app
from recommender.http.options import ServeOptions

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.browser,
    # In CI (CI set) the browser is installed by scripts/setup: a missing one fails, not skips.
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()) and not os.environ.get("CI"),
        reason="needs Debian's chromium and chromium-driver (scripts/setup installs them as root)",
    ),
]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1100",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="recommender-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Any, seconds: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


#: The items of the editor's page's box.
ITEMS = "#related li.item"


def screenshot(driver: Any, name: str) -> None:
    folder = os.environ.get("RECOMMENDER_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def test_page_shows_an_article_and_its_related_list(browser: Any, sample_index: Path) -> None:
    from selenium.webdriver.common.by import By

    with live_server(create_app(sample_index, encoder=FakeEncoder())) as url:
        browser.get(f"{url}/")
        search = browser.find_element(By.ID, "search")
        search.send_keys("Valdoria earthquake")
        browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
        button = wait_for(
            browser,
            lambda d: d.find_element(By.CSS_SELECTOR, '#search-results [data-article-id="a-1001"]'),
        )
        button.click()
        rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ITEMS) or False)
        assert browser.find_element(By.ID, "article-title").text.startswith(
            "Strong earthquake jolts northern Valdoria"
        )
        assert len(rows) == 10
        first = rows[0]
        assert first.find_element(By.CSS_SELECTOR, "a.title").text  # the title, as the box
        assert first.find_element(By.CSS_SELECTOR, ".meta").text  # date · section
        # The reason in plain words, the parts folded until "show scores".
        reason = first.find_element(By.CSS_SELECTOR, ".reason").text
        assert "in content" in reason and "published" in reason, reason
        score = first.find_element(By.CSS_SELECTOR, ".part-score")
        assert not score.is_displayed() and float(score.get_attribute("textContent")) > 0
        browser.find_element(By.ID, "show-scores").click()
        assert score.is_displayed() and float(score.text) > 0
        assert browser.find_element(By.CSS_SELECTOR, ".scores-hint").is_displayed()
        ids = [row.get_attribute("data-article-id") for row in rows]
        assert "a-1001" not in ids
        assert "?id=a-1001" in browser.current_url
        # The index's sections and languages, with their counts, fill the pickers.
        summary = browser.find_element(By.ID, "index-summary").text
        assert summary.startswith("338 articles · 9 sections · 4 languages"), summary
        assert "editors' changes: 0 pins, 0 blocks, 0 hidden" in summary
        sections = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#opt-category option")]
        assert sections[:2] == ["(any section)", "sport · 43"] and len(sections) == 10

        # A ranking option, live: k and the recency switch re-query the list.
        k = browser.find_element(By.ID, "opt-k")
        k.clear()
        k.send_keys("3")
        browser.find_element(By.ID, "opt-no_recency").click()
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ITEMS)) == 3)
        wait_for(
            browser,
            lambda d: all(
                row.find_element(By.CSS_SELECTOR, ".part-recency").text == "1.000"
                for row in d.find_elements(By.CSS_SELECTOR, ITEMS)
            ),
        )
        browser.find_element(By.CSS_SELECTOR, "#options-form button[type=reset]").click()
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ITEMS)) == 10)
        browser.find_element(By.ID, "show-scores").click()
        browser.set_window_size(1280, 800)
        try:
            browser.execute_script("window.scrollTo(0, 0)")
            screenshot(browser, "page.png")
        finally:
            browser.set_window_size(1280, 1100)


def pick_article(browser: Any, url: str, query: str, article_id: str) -> list[Any]:
    """Search ``query`` on the page at ``url``, pick ``article_id``; its box's items."""
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/")
    browser.find_element(By.ID, "search").send_keys(query)
    browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
    wait_for(
        browser,
        lambda d: d.find_element(
            By.CSS_SELECTOR, f'#search-results [data-article-id="{article_id}"]'
        ),
    ).click()
    return list(wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ITEMS) or False))


def item_ids(browser: Any) -> list[str]:
    """The ids in the page's box, read at once (the box is rebuilt on each answer)."""
    return list(
        browser.execute_script(
            "return Array.prototype.map.call(document.querySelectorAll(arguments[0]),"
            " function (li) { return li.getAttribute('data-article-id'); })",
            ITEMS,
        )
    )


def texts(browser: Any, selector: str) -> list[str]:
    """The text of each element ``selector`` finds, read at once."""
    return list(
        browser.execute_script(
            "return Array.prototype.map.call(document.querySelectorAll(arguments[0]),"
            " function (e) { return e.textContent; })",
            selector,
        )
    )


def test_page_lists_a_drafts_related_articles(browser: Any, sample_index: Path) -> None:
    """A draft pasted with its section and language: POST /similar, its box and reasons."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with live_server(create_app(sample_index, encoder=FakeEncoder())) as url:
        browser.get(f"{url}/")
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#draft-lang option")) > 1)
        browser.find_element(By.CSS_SELECTOR, "#draft-box summary").click()
        text = browser.find_element(By.ID, "draft-text")
        text.send_keys(
            "Earthquake shakes northern Valdoria again\n"
            "A strong earthquake struck the Ardesse province of northern Valdoria, shaking "
            "buildings in Corvena; the National Seismic Institute measured aftershocks."
        )
        Select(browser.find_element(By.ID, "draft-section")).select_by_value("world")
        Select(browser.find_element(By.ID, "draft-lang")).select_by_value("en")
        browser.find_element(By.CSS_SELECTOR, "#draft-form button[type=submit]").click()
        rows = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ITEMS) or False)
        assert len(rows) == 10
        assert "a-1001" in item_ids(browser)[:5]
        status = browser.find_element(By.ID, "status").text
        assert status.startswith("10 related articles for the draft “Earthquake shakes"), status
        reasons = [r.text for r in browser.find_elements(By.CSS_SELECTOR, f"{ITEMS} .reason")]
        assert all(reasons) and any("same section" in r for r in reasons), reasons
        # Pins and blocks belong to an indexed article's box: a draft's offers hide only.
        assert not browser.find_elements(By.CSS_SELECTOR, f"{ITEMS} button.pin")
        assert browser.find_elements(By.CSS_SELECTOR, f"{ITEMS} button.hide")
        assert "?id=" not in browser.current_url
        # The section picker filters a draft's box too (POST /similar's categories).
        Select(browser.find_element(By.ID, "opt-category")).select_by_value("science")
        wait_for(
            browser,
            lambda d: (
                (metas := texts(d, f"{ITEMS} .meta"))
                and all(m.split(" · ")[-1] == "science" for m in metas)
            ),
        )
        Select(browser.find_element(By.ID, "opt-category")).select_by_value("")
        wait_for(browser, lambda d: "a-1001" in item_ids(d))
        screenshot(browser, "page-draft.png")

        # A draft of 300,000 characters: the page sends the part the engine reads.
        browser.execute_script(
            "document.getElementById('draft-text').value ="
            " 'Earthquake in Valdoria\\n' + 'quake rubble aftershock '.repeat(12500);"
        )
        browser.find_element(By.CSS_SELECTOR, "#draft-form button[type=submit]").click()
        wait_for(
            browser,
            lambda d: "characters are used" in d.find_element(By.ID, "message").text,
        )
        wait_for(browser, lambda d: d.find_element(By.ID, "status").text.startswith("10 related"))


def test_section_picker_filters_an_articles_box(browser: Any, sample_index: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    with live_server(create_app(sample_index, encoder=FakeEncoder())) as url:
        rows = pick_article(browser, url, "Valdoria earthquake", "a-1001")
        before = item_ids(browser)
        assert any(
            not r.find_element(By.CSS_SELECTOR, ".meta").text.endswith("· politics") for r in rows
        )
        Select(browser.find_element(By.ID, "opt-category")).select_by_value("politics")

        def all_politics(d: Any) -> bool:
            metas = texts(d, f"{ITEMS} .meta")
            return bool(metas) and all(m.split(" · ")[-1] == "politics" for m in metas)

        wait_for(browser, all_politics)
        assert item_ids(browser) != before


def test_page_fits_a_phone_and_shows_the_list_on_a_laptop(browser: Any, sample_index: Path) -> None:
    """At 390 px nothing is wider than the window and each related article shows its title;
    at 1280x800 the first related article is on screen once one is picked, the advanced
    ranking options folded away."""
    from selenium.webdriver.common.by import By

    def width() -> tuple[int, int]:
        return tuple(
            browser.execute_script(
                "return [document.documentElement.scrollWidth,"
                " document.documentElement.clientWidth]"
            )
        )

    def search_and_pick() -> list[Any]:
        return pick_article(browser, url, "Valdoria earthquake", "a-1001")

    try:
        with live_server(create_app(sample_index, encoder=FakeEncoder())) as url:
            browser.set_window_size(390, 844)
            rows = search_and_pick()
            scroll, client = width()
            assert client <= 390 and scroll <= client, (scroll, client)
            title = rows[0].find_element(By.CSS_SELECTOR, "a.title")
            rect = title.rect
            assert title.is_displayed() and title.text, rect
            assert rect["x"] >= 0 and rect["x"] + rect["width"] <= client, rect
            browser.find_element(By.CSS_SELECTOR, "#advanced summary").click()
            assert browser.find_element(By.ID, "opt-mmr_lambda").is_displayed()
            # Every new part open: the draft box, the scores, the editors' changes.
            browser.find_element(By.CSS_SELECTOR, "#draft-box summary").click()
            browser.find_element(By.ID, "draft-text").send_keys("A draft\n" + "word " * 200)
            browser.find_element(By.ID, "show-scores").click()
            assert browser.find_element(By.ID, "token").is_displayed()
            for part in (".scores", ".actions", ".reason"):
                node = rows[0].find_element(By.CSS_SELECTOR, part)
                assert node.is_displayed(), part
                right = node.rect["x"] + node.rect["width"]
                assert right <= client, (part, node.rect)
            scroll, client = width()
            assert scroll <= client, (scroll, client)
            browser.execute_script("document.getElementById('related-title').scrollIntoView()")
            screenshot(browser, "page-phone.png")

            browser.set_window_size(1280, 800)
            rows = search_and_pick()
            advanced = browser.find_element(By.ID, "advanced")
            assert advanced.get_attribute("open") is None
            assert not browser.find_element(By.ID, "opt-mmr_lambda").is_displayed()
            label = browser.find_element(By.CSS_SELECTOR, 'label[for="opt-mmr_lambda"]')
            assert label.get_attribute("title").startswith("mmr_lambda: ")
            height = browser.execute_script("return window.innerHeight")
            rect = rows[0].rect
            assert rect["y"] >= 0 and rect["y"] + rect["height"] <= height, (rect, height)
            scroll, client = width()
            assert scroll <= client, (scroll, client)
    finally:
        browser.set_window_size(1280, 1100)


TOKEN = "s3cret-token"
#: An article whose id and title a hostile writer chose: markup, quotes, slashes, a dot path.
HOSTILE_ID = "x/../<b>1</b>?&id=a-1001"
#: Entities survive the title's cleaning as markup: '... <img src=x onerror=...> </li><script>'.
HOSTILE_TITLE = (
    "Valdoria quake &lt;img src=x onerror=window.pwned=1&gt; &lt;/li&gt;"
    "&lt;script&gt;window.pwned=2&lt;/script&gt; \\u0041 %2F"
)


def test_pin_block_and_hide_from_the_page(browser: Any, sample_index: Path) -> None:
    """The token from sessionStorage (never the URL): refused without it or with a wrong
    one, in plain words; a pin puts the article at its place, a block takes it out, each
    listed with its undo; markup in a title or an id stays text."""
    import httpx
    from selenium.webdriver.common.by import By

    def message() -> str:
        return str(browser.find_element(By.ID, "message").text)

    def item(article_id: str) -> Any:
        return browser.find_element(By.CSS_SELECTOR, f'{ITEMS}[data-article-id="{article_id}"]')

    app = create_app(sample_index, encoder=FakeEncoder(), options=ServeOptions(token=TOKEN))
    with live_server(app) as url:
        hostile = {"id": HOSTILE_ID, "title": HOSTILE_TITLE, "category": "world"}
        hostile["body"] = "Earthquake aftershocks in northern Valdoria, Ardesse province, Corvena."
        hostile["published_at"] = "2026-09-02T09:00:00Z"
        answer = httpx.put(
            f"{url}/articles", json=[hostile], headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == 200, answer.text
        stored = httpx.get(f"{url}/articles/{quote(HOSTILE_ID, safe='')}").json()["title"]
        assert "<img src=x" in stored and "<script>" in stored, stored
        pick_article(browser, url, "Valdoria earthquake", "a-1001")
        assert HOSTILE_ID in item_ids(browser)
        assert stored in texts(browser, f"{ITEMS} a.title")
        assert not browser.find_elements(By.CSS_SELECTOR, "#related img, #related script")
        assert browser.execute_script("return window.pwned") is None

        ids = item_ids(browser)
        fifth, second = ids[4], ids[1]
        assert HOSTILE_ID not in (second, fifth), ids
        # No token: told where to give it; a wrong one: the service's reason.
        item(fifth).find_element(By.CSS_SELECTOR, "button.pin").click()
        wait_for(browser, lambda d: "Enter the editor token" in message())
        token = browser.find_element(By.ID, "token")
        token.send_keys("wrong")
        item(fifth).find_element(By.CSS_SELECTOR, "button.pin").click()
        wait_for(browser, lambda d: message().startswith("Refused: the bearer token is wrong"))
        token.clear()
        token.send_keys("tökén")  # no header can carry it: said before any request
        item(fifth).find_element(By.CSS_SELECTOR, "button.pin").click()
        wait_for(browser, lambda d: "cannot carry" in message())
        token.clear()
        token.send_keys(TOKEN)
        assert TOKEN not in browser.current_url
        kept = browser.execute_script(
            "return sessionStorage.getItem(arguments[0])", "recommender-editor-token"
        )
        assert kept == TOKEN

        place = item(fifth).find_element(By.CSS_SELECTOR, "input.place")
        place.clear()
        place.send_keys("2")
        item(fifth).find_element(By.CSS_SELECTOR, "button.pin").click()
        wait_for(browser, lambda d: item_ids(d)[1] == fifth)
        wait_for(browser, lambda d: "pinned by an editor at place 2" in item(fifth).text)
        assert "Pinned" in message()
        listed = browser.find_element(By.ID, "overrides")
        wait_for(browser, lambda d: "pinned at place 2:" in listed.text)

        item(second).find_element(By.CSS_SELECTOR, "button.block").click()
        wait_for(browser, lambda d: second not in item_ids(d))
        assert item_ids(browser)[1] == fifth  # the pin holds its place
        wait_for(browser, lambda d: "blocked:" in listed.text and second in listed.text)
        summary = browser.find_element(By.ID, "index-summary")
        wait_for(browser, lambda d: "editors' changes: 1 pin, 1 block, 0 hidden" in summary.text)

        item(HOSTILE_ID).find_element(By.CSS_SELECTOR, "button.hide").click()
        wait_for(browser, lambda d: HOSTILE_ID not in item_ids(d))
        hidden = browser.find_element(By.ID, "hidden-list")
        wait_for(browser, lambda d: HOSTILE_ID in hidden.text)
        assert not browser.find_elements(By.CSS_SELECTOR, "#editing img, #editing script")
        browser.execute_script("document.getElementById('editing').scrollIntoView()")
        screenshot(browser, "page-overrides.png")

        # Undo, from the list: the block, then the hide.
        for button in listed.find_elements(By.CSS_SELECTOR, "button.undo"):
            if button.find_element(By.XPATH, "..").get_attribute("data-article-id") == second:
                button.click()
        wait_for(browser, lambda d: second in item_ids(d))
        hidden.find_element(By.CSS_SELECTOR, "button.undo").click()
        wait_for(browser, lambda d: HOSTILE_ID in item_ids(d))
        overrides = httpx.get(f"{url}/overrides").json()["overrides"]
        assert [(o["kind"], o["related_id"]) for o in overrides] == [("pin", fifth)]

        # The hostile article's own box: its id, slashes and all, through ?id=.
        browser.get(f"{url}/?id={quote(HOSTILE_ID, safe='')}")
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ITEMS) or False)
        assert browser.find_element(By.ID, "article-title").text == stored
        assert browser.execute_script("return window.pwned") is None


def box_page(api: str, *, html: str = 'lang="en"', attrs: str = "", head: str = "") -> str:
    """A news site's article page with the box's script tag under the article (``html``: the
    attributes of <html>, ``attrs``: more of the script tag, ``head``: more of <head>)."""
    return f"""<!doctype html>
<html {html}><head><meta charset="utf-8"><title>A news site</title>
<style>body {{ font-family: Georgia, serif; max-width: 40em; margin: 2em auto; }}</style>{head}
</head>
<body><article><h1>Strong earthquake jolts northern Valdoria before dawn</h1>
<p>A magnitude 6.8 earthquake struck the Ardesse province of northern Valdoria.</p></article>
<script src="{api}/box.js" data-article-id="a-1001" data-k="4"
        data-title="More on this story" {attrs} async></script>
</body></html>"""


def test_box_renders_on_another_origin_through_cors(browser: Any, sample_index: Path) -> None:
    from selenium.webdriver.common.by import By

    pages: dict[str, str] = {}
    with static_site(pages) as site:  # the site's own origin: another port
        app = create_app(
            sample_index, encoder=FakeEncoder(), options=ServeOptions(cors_origins=(site,))
        )
        with live_server(app) as api:
            assert api != site
            pages["/article.html"] = box_page(api)
            browser.get(f"{site}/article.html")
            items = wait_for(
                browser,
                lambda d: d.find_elements(By.CSS_SELECTOR, ".recommender-box__item") or False,
            )
            box = browser.find_element(By.CSS_SELECTOR, "section.recommender-box")
            heading = box.find_element(By.CSS_SELECTOR, "h2.recommender-box__title")
            assert heading.text == "More on this story"
            assert box.get_attribute("aria-labelledby") == heading.get_attribute("id")
            assert len(items) == 4
            assert len(box.find_elements(By.CSS_SELECTOR, "ol.recommender-box__list > li")) == 4
            link = items[0].find_element(By.CSS_SELECTOR, "a.recommender-box__link")
            assert link.get_attribute("href").startswith("https://")
            assert link.text
            assert "a-1001" not in [i.get_attribute("data-article-id") for i in items]
            screenshot(browser, "box.png")

        # The same page against a service that does not allow the site's origin: no box.
        with live_server(create_app(sample_index, encoder=FakeEncoder())) as api:
            pages["/article.html"] = box_page(api)
            browser.get(f"{site}/article.html")
            wait_for(
                browser,
                lambda d: d.find_elements(By.CSS_SELECTOR, ".recommender-box--empty") or False,
            )
            assert not browser.find_elements(By.CSS_SELECTOR, ".recommender-box__item")


#: Notes, at the page's load event, whether the box was still waiting then.
AT_LOAD = """<script>addEventListener("load", function () {
  var box = document.querySelector(".recommender-box");
  window.boxAtLoad = box ? box.className : "no box";
});</script>"""


def test_box_hides_after_its_timeout_and_never_holds_the_load_event(
    browser: Any, sample_index: Path
) -> None:
    from selenium.webdriver.common.by import By

    pages: dict[str, str] = {}
    with static_site(pages) as site, hung_server() as hung:
        app = create_app(
            sample_index, encoder=FakeEncoder(), options=ServeOptions(cors_origins=(site,))
        )
        with live_server(app) as api:
            # box.js from the service, its request to one that accepts and never answers.
            pages["/article.html"] = box_page(
                api, attrs=f'data-api="{hung}" data-timeout="1500"', head=AT_LOAD
            )
            browser.get(f"{site}/article.html")  # returns at the page's load event
            # The load event came while the request was pending: a fetch never holds it.
            assert "recommender-box--loading" in browser.execute_script("return window.boxAtLoad")
            box = browser.find_element(By.CSS_SELECTOR, "section.recommender-box")
            assert not box.is_displayed()  # hidden while waiting: never an empty heading
            assert not box.find_elements(By.TAG_NAME, "h2")
            started = time.monotonic()
            wait_for(browser, lambda d: "recommender-box--empty" in box.get_attribute("class"))
            assert time.monotonic() - started < 10
            assert not box.is_displayed()
            assert not box.find_elements(By.TAG_NAME, "h2")
            assert box.get_attribute("aria-busy") is None

            # box.js itself from the hung service, added from a load listener as docs/http.md
            # shows: the page loads all the same (<script async> would hold its load event).
            pages["/late.html"] = late_box_page(hung)
            browser.set_page_load_timeout(15)
            try:
                browser.get(f"{site}/late.html")
            finally:
                browser.set_page_load_timeout(60)
            assert browser.execute_script("return document.readyState") == "complete"
            assert not browser.find_elements(By.CSS_SELECTOR, ".recommender-box")

            # The same loader, the service answering: the box comes, inside the placeholder.
            pages["/late.html"] = late_box_page(api)
            browser.get(f"{site}/late.html")
            wait_for(
                browser,
                lambda d: d.find_elements(By.CSS_SELECTOR, "#similar-news .recommender-box__item"),
            )


def late_box_page(api: str) -> str:
    """A page that adds box.js from its load listener: the snippet of docs/http.md."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>A news site</title></head><body><article><h1>A story</h1></article>
<div id="similar-news"></div>
<script>
  addEventListener("load", function () {{
    var s = document.createElement("script");
    s.src = "{api}/box.js";
    s.setAttribute("data-article-id", "a-1001");
    document.getElementById("similar-news").appendChild(s);
  }});
</script></body></html>"""


AZ_MONTHS = [
    "yanvar",
    "fevral",
    "mart",
    "aprel",
    "may",
    "iyun",
    "iyul",
    "avqust",
    "sentyabr",
    "oktyabr",
    "noyabr",
    "dekabr",
]


#: The site's names for its sections (all but sport, shown as its slug).
AZ_SECTIONS = {
    "world": "Dünya",
    "politics": "Siyasət",
    "business": "İqtisadiyyat",
    "science": "Elm",
    "environment": "Ətraf mühit",
    "health": "Səhiyyə",
    "culture": "Mədəniyyət",
    "technology": "Texnologiya",
}


def test_box_on_an_azerbaijani_page(browser: Any, sample_index: Path) -> None:
    """Dates in the page's language, from the box's own month names where Chromium lacks them
    (Debian's gives "2026 M11 3" for az); sections by the site's names, apart from the date."""
    from selenium.webdriver.common.by import By

    pages: dict[str, str] = {}
    with static_site(pages) as site:
        app = create_app(
            sample_index, encoder=FakeEncoder(), options=ServeOptions(cors_origins=(site,))
        )
        with live_server(app) as api:
            sections = html_escape(json.dumps(AZ_SECTIONS, ensure_ascii=False))
            pages["/article.html"] = box_page(
                api, html='lang="az"', attrs=f'data-sections="{sections}"'
            )
            browser.get(f"{site}/article.html")
            times = wait_for(
                browser,
                lambda d: d.find_elements(By.CSS_SELECTOR, ".recommender-box__item time") or False,
            )
            chromium_knows_az = "M11" not in browser.execute_script(
                "return new Date(2026, 10, 3).toLocaleDateString('az',"
                " {year: 'numeric', month: 'short', day: 'numeric'})"
            )
            for time_ in times:
                text = time_.text
                assert text and not re.search(r"\bM\d", text), text
                if not chromium_knows_az:
                    day, month, year = browser.execute_script(
                        "var d = new Date(arguments[0]);"
                        " return [d.getDate(), d.getMonth(), d.getFullYear()]",
                        time_.get_attribute("datetime"),
                    )
                    assert text == f"{day} {AZ_MONTHS[month]} {year}"
            metas = browser.find_elements(By.CSS_SELECTOR, ".recommender-box__meta")
            assert len(metas) == 4
            for meta in metas:
                category = meta.find_element(By.CSS_SELECTOR, ".recommender-box__category")
                slug = category.get_attribute("data-section")
                name = AZ_SECTIONS.get(slug, slug)
                assert category.get_attribute("textContent") == name
                assert ("recommender-box__category--slug" in category.get_attribute("class")) == (
                    slug not in AZ_SECTIONS
                )
                date = meta.find_element(By.TAG_NAME, "time").get_attribute("textContent")
                assert meta.get_attribute("textContent") == f"{date} · {name}"
            screenshot(browser, "box-az.png")


def test_box_on_a_right_to_left_page(browser: Any, sample_index: Path) -> None:
    """<html dir="rtl"> (or data-dir="rtl" on the tag) lays the box out right to left."""
    from selenium.webdriver.common.by import By

    pages: dict[str, str] = {}
    with static_site(pages) as site:
        app = create_app(
            sample_index, encoder=FakeEncoder(), options=ServeOptions(cors_origins=(site,))
        )
        with live_server(app) as api:
            for name, html, attrs in (
                ("box-rtl.png", 'lang="ar" dir="rtl"', ""),
                ("", 'lang="ar"', 'data-dir="rtl"'),
            ):
                pages["/article.html"] = box_page(api, html=html, attrs=attrs)
                browser.get(f"{site}/article.html")
                links = wait_for(
                    browser,
                    lambda d: d.find_elements(By.CSS_SELECTOR, ".recommender-box__link") or False,
                )
                box = browser.find_element(By.CSS_SELECTOR, "section.recommender-box")
                geometry = browser.execute_script(
                    """var box = arguments[0], list = box.querySelector("ol");
                    var style = getComputedStyle(list), rect = list.getBoundingClientRect();
                    return {direction: getComputedStyle(box).direction,
                            textAlign: getComputedStyle(box).textAlign,
                            paddingLeft: parseFloat(style.paddingLeft),
                            paddingRight: parseFloat(style.paddingRight),
                            left: rect.left, right: rect.right};""",
                    box,
                )
                assert geometry["direction"] == "rtl", geometry
                assert geometry["textAlign"] in ("start", "right"), geometry
                # The numbers' room on the right, none on the left.
                assert geometry["paddingRight"] > 0 and geometry["paddingLeft"] == 0, geometry
                content_right = geometry["right"] - geometry["paddingRight"]
                for link in links:
                    rect = link.rect  # each title flush with the right edge of the list
                    assert abs(rect["x"] + rect["width"] - content_right) < 2, (rect, geometry)
                    assert link.get_attribute("dir") == "auto"
                for time_ in box.find_elements(By.TAG_NAME, "time"):
                    assert time_.text and not re.search(r"\bM\d", time_.text)
                if name:
                    screenshot(browser, name)


# -- what readers saw and chose: the box's events (docs/events.md) -----------------------------

#: Counts what the page sends to /events, however it is sent (sendBeacon or fetch).
COUNT_SENT = """<script>window.eventsSent = 0;
(function () {
  var beacon = navigator.sendBeacon && navigator.sendBeacon.bind(navigator);
  if (beacon) navigator.sendBeacon = function (url, body) {
    if (/\\/events$/.test(url)) window.eventsSent++;
    return beacon(url, body);
  };
  var fetched = window.fetch;
  window.fetch = function (url, init) {
    if (/\\/events$/.test(String(url))) window.eventsSent++;
    return fetched.apply(this, arguments);
  };
  document.addEventListener("click", function (e) { e.preventDefault(); });
})();</script>"""
#: Pushes the box under the fold: it is rendered, not seen, until the page is scrolled.
FOLD = '<div style="height: 3000px">Above the box</div>'


def report_of(index: Path) -> dict[str, Any]:
    """``recommend report --index INDEX --json``, run as a reader would."""
    from typer.testing import CliRunner

    from recommender.cli import app

    result = CliRunner().invoke(app, ["report", "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def related_ids(api: str, query: str) -> list[str]:
    from urllib.request import urlopen

    with urlopen(f"{api}/articles/a-1001/similar?{query}", timeout=30) as answer:
        return [item["id"] for item in json.loads(answer.read())["related"]]


def scroll_and_click(browser: Any, position: int) -> None:
    from selenium.webdriver.common.by import By

    items = wait_for(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".recommender-box__item") or False
    )
    browser.execute_script(
        "arguments[0].scrollIntoView({block: 'center'})",
        browser.find_element(By.CSS_SELECTOR, "section.recommender-box"),
    )
    items[position].find_element(By.CSS_SELECTOR, "a.recommender-box__link").click()


def test_a_click_on_the_box_reaches_events_and_the_report(browser: Any, sample_index: Path) -> None:
    from selenium.webdriver.common.by import By

    pages: dict[str, str] = {}
    with static_site(pages) as site:
        app = create_app(
            sample_index, encoder=FakeEncoder(), options=ServeOptions(cors_origins=(site,))
        )
        with live_server(app) as api:
            pages["/article.html"] = box_page(
                api, head=COUNT_SENT, attrs='data-ranking="fresh"'
            ).replace("<article>", FOLD + "<article>")
            browser.get(f"{site}/article.html")
            wait_for(
                browser,
                lambda d: d.find_elements(By.CSS_SELECTOR, ".recommender-box__item") or False,
            )
            time.sleep(1)  # rendered, under the fold: not seen, so no view yet
            assert browser.execute_script("return window.eventsSent") == 0
            assert report_of(sample_index)["views"] == 0
            shown = [
                item.get_attribute("data-article-id")
                for item in browser.find_elements(By.CSS_SELECTOR, ".recommender-box__item")
            ]
            scroll_and_click(browser, 2)
            wait_for(browser, lambda d: report_of(sample_index)["clicks"] == 1)
            time.sleep(0.5)  # nothing more comes: one view per view
            report = report_of(sample_index)
            sent = browser.execute_script("return window.eventsSent")
            # the editor's page draws it: a bar per place, the third one clicked
            browser.get(f"{api}/")
            bars = wait_for(
                browser,
                lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-position rect.bar") or False,
            )
            heights = [float(bar.get_attribute("height")) for bar in bars]
            assert [bar.get_attribute("data-key") for bar in bars] == ["#1", "#2", "#3", "#4"]
            assert heights[2] > 100 and max(heights[:2] + heights[3:]) < 1
            assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-day rect.bar")) == 1
            status = browser.find_element(By.ID, "report-status").text
            assert status.startswith("1 view, 1 click, click-through 100.0%")
            browser.execute_script("document.getElementById('readers').scrollIntoView()")
            screenshot(browser, "report.png")
    assert sent == 2  # the view as the box came into sight, then the click
    assert (report["views"], report["clicks"]) == (1, 1)
    assert report["by_position"][2] == {
        "position": 2,
        "views": 1,
        "clicks": 1,
        "click_through": 1.0,
    }
    assert [row["clicks"] for row in report["by_position"]] == [0, 0, 1, 0]
    assert report["by_ranking"][0]["ranking"] == "fresh"
    assert report["by_language"][0]["language"] == "en"  # the page's
    from recommender.storage.events import read_events

    view, click = list(read_events(sample_index))
    assert list(view.shown) == shown and len(view.view) == 32  # type: ignore[union-attr]
    assert click.view == view.view and click.article == shown[2]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("attrs", "head"),
    [
        ('data-events="off"', ""),
        ("", "<script>Object.defineProperty(navigator, 'doNotTrack', {value: '1'})</script>"),
        (
            "",
            "<script>Object.defineProperty(navigator, 'globalPrivacyControl', {value: true})"
            "</script>",
        ),
    ],
    ids=["data-events off", "do not track", "global privacy control"],
)
def test_nothing_is_sent_when_events_are_off_or_the_reader_asks(
    browser: Any, sample_index: Path, attrs: str, head: str
) -> None:
    pages: dict[str, str] = {}
    with static_site(pages) as site:
        app = create_app(
            sample_index, encoder=FakeEncoder(), options=ServeOptions(cors_origins=(site,))
        )
        with live_server(app) as api:
            page = box_page(api, head=head + COUNT_SENT, attrs=attrs + ' data-explore="1"')
            pages["/article.html"] = page.replace("<article>", FOLD + "<article>")
            browser.get(f"{site}/article.html")
            scroll_and_click(browser, 0)
            time.sleep(1.5)
            sent = browser.execute_script("return window.eventsSent")
            order = browser.execute_script(
                "return Array.prototype.map.call(document.querySelectorAll("
                "'.recommender-box__item'), function (li) { return li.dataset.articleId; })"
            )
            plain = related_ids(api, "k=4")
    assert sent == 0
    assert report_of(sample_index)["views"] == 0 and report_of(sample_index)["clicks"] == 0
    assert order == plain  # no exploration without events either


def test_explored_and_interleaved_views(browser: Any, sample_index: Path) -> None:
    """data-explore="1" swaps two adjacent places in every view; data-compare with share 1
    interleaves the two lists in every view: each view says how it was made."""
    from selenium.webdriver.common.by import By

    from recommender.storage.events import read_events

    pages: dict[str, str] = {}
    with static_site(pages) as site:
        app = create_app(
            sample_index, encoder=FakeEncoder(), options=ServeOptions(cors_origins=(site,))
        )
        with live_server(app) as api:
            a = related_ids(api, "k=4")
            b = related_ids(api, "k=4&lexical_weight=1&no_recency=true")
            assert a != b  # two rankings that differ: the teams tell them apart
            for attrs in (
                'data-explore="1"',
                'data-compare="lexical_weight=1&amp;no_recency=true" data-compare-share="1"',
            ):
                pages["/article.html"] = box_page(api, attrs=attrs)
                count = len(list(read_events(sample_index)))
                browser.get(f"{site}/article.html")
                wait_for(
                    browser,
                    lambda d: d.find_elements(By.CSS_SELECTOR, ".recommender-box__item") or False,
                )
                wait_for(browser, lambda d, c=count: len(list(read_events(sample_index))) > c)
    explored, interleaved = list(read_events(sample_index))
    assert explored.swapped is not None  # type: ignore[union-attr]
    at = explored.swapped  # type: ignore[union-attr]
    swapped = [*a[:at], a[at + 1], a[at], *a[at + 2 :]]
    assert list(explored.shown) == swapped  # type: ignore[union-attr]
    teams = interleaved.teams  # type: ignore[union-attr]
    assert teams is not None and len(teams) == len(interleaved.shown) == 4  # type: ignore[union-attr]
    # team draft: each place is the best of its team's list not shown above it
    shown = list(interleaved.shown)  # type: ignore[union-attr]
    for place, team in enumerate(teams):
        own = a if team == "a" else b
        assert shown[place] == next(i for i in own if i not in shown[:place])
    report = report_of(sample_index)
    assert (report["explored"], report["interleaved"]) == (1, 1)


#: No sendBeacon (an older browser, or one a privacy tool stripped): the box falls back to
#: fetch; and every URL the page fetched is kept, to check none leaves the two hosts.
NO_BEACON = """<script>delete Navigator.prototype.sendBeacon;
window.fetched = [];
(function () {
  var fetched = window.fetch;
  window.fetch = function (url, init) {
    window.fetched.push(String(url));
    return fetched.apply(this, arguments);
  };
})();</script>"""


def test_the_box_with_hostile_or_odd_attributes(browser: Any, sample_index: Path) -> None:
    """Attributes a site might get wrong, or a stranger might slip into a page: a section
    with a no-break space (refused whole by the service before: no views at all), one of 70
    characters (left out: the article's own is filled in), markup in it (sent as text),
    share values that are no numbers, and a data-compare that tries to reach another host.
    Without sendBeacon the events go by fetch; nothing is fetched from a third host."""
    from selenium.webdriver.common.by import By

    from recommender.storage.events import read_events

    pages: dict[str, str] = {}
    with static_site(pages) as site:
        app = create_app(
            sample_index, encoder=FakeEncoder(), options=ServeOptions(cors_origins=(site,))
        )
        with live_server(app) as api:
            plain = related_ids(api, "k=4")
            pages_attrs = [
                'data-section="World&nbsp;News &quot;&gt;&lt;img src=x onerror=window.pwned=1&gt;"'
                ' data-ranking="fresh&nbsp;one" data-explore="abc"'
                ' data-compare="@evil.invalid/x#" data-compare-share="NaN"',
                f'data-section="{"s" * 70}" data-explore="-1"'
                ' data-compare="//evil.invalid/?" data-compare-share="2"',
            ]
            for number, attrs in enumerate(pages_attrs):
                pages["/article.html"] = box_page(api, head=NO_BEACON, attrs=attrs)
                browser.get(f"{site}/article.html")
                wait_for(
                    browser,
                    lambda d: d.find_elements(By.CSS_SELECTOR, ".recommender-box__item") or False,
                )
                wait_for(browser, lambda d, n=number: len(list(read_events(sample_index))) > n)
                fetched = browser.execute_script("return window.fetched")
                assert fetched and all(url.startswith(api) for url in fetched), fetched
                assert browser.execute_script("return window.pwned") is None
                order = browser.execute_script(
                    "return Array.prototype.map.call(document.querySelectorAll("
                    "'.recommender-box__item'), function (li) { return li.dataset.articleId; })"
                )
                if number == 0:
                    assert order == plain  # "abc" and "NaN" are no share: plain views
    from recommender import Recommender

    first, second = list(read_events(sample_index))
    with Recommender.open(sample_index) as rec:
        own = rec.get("a-1001").category
    assert first.section == 'World News "><img src=x onerror=window.pwned=1>'  # type: ignore[union-attr]
    assert first.ranking == "fresh one"  # type: ignore[union-attr]
    assert first.swapped is None and first.teams is None  # type: ignore[union-attr]
    assert second.section == own  # type: ignore[union-attr]
    assert second.swapped is None  # type: ignore[union-attr]
