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
        rows = wait_for(
            browser,
            lambda d: d.find_elements(By.CSS_SELECTOR, "#related tbody tr") or False,
        )
        assert browser.find_element(By.ID, "article-title").text.startswith(
            "Strong earthquake jolts northern Valdoria"
        )
        assert len(rows) == 10
        first = rows[0].find_elements(By.TAG_NAME, "td")
        assert first[0].text == "1" and first[1].text  # rank, title
        assert float(first[2].text) > 0  # score
        ids = [row.get_attribute("data-article-id") for row in rows]
        assert "a-1001" not in ids
        assert "?id=a-1001" in browser.current_url

        # A ranking option, live: k and the recency switch re-query the list.
        k = browser.find_element(By.ID, "opt-k")
        k.clear()
        k.send_keys("3")
        browser.find_element(By.ID, "opt-no_recency").click()
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#related tbody tr")) == 3)
        wait_for(
            browser,
            lambda d: all(
                row.find_element(By.CSS_SELECTOR, "td.rec").text == "1.000"
                for row in d.find_elements(By.CSS_SELECTOR, "#related tbody tr")
            ),
        )
        screenshot(browser, "page.png")


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
        browser.get(f"{url}/")
        browser.find_element(By.ID, "search").send_keys("Valdoria earthquake")
        browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
        wait_for(
            browser,
            lambda d: d.find_element(By.CSS_SELECTOR, '#search-results [data-article-id="a-1001"]'),
        ).click()
        return wait_for(
            browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#related tbody tr") or False
        )

    try:
        with live_server(create_app(sample_index, encoder=FakeEncoder())) as url:
            browser.set_window_size(390, 844)
            rows = search_and_pick()
            scroll, client = width()
            assert client <= 390 and scroll <= client, (scroll, client)
            title = rows[0].find_element(By.CSS_SELECTOR, "td.title a")
            rect = title.rect
            assert title.is_displayed() and title.text, rect
            assert rect["x"] >= 0 and rect["x"] + rect["width"] <= client, rect
            browser.find_element(By.CSS_SELECTOR, "#advanced summary").click()
            assert browser.find_element(By.ID, "opt-mmr_lambda").is_displayed()
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
