/* The embeddable "Related articles" box of recommender: no framework, no dependencies.

   Paste under an article:
     <script src="http://HOST/box.js" data-article-id="a-1001" async></script>
   (async: the page never waits for it to run; but a browser holds the page's load event until
   an async script has come, so a site that must never have its load event held by a hung
   service adds the script from a load listener instead: see docs/http.md).

   Attributes: data-article-id (required), data-k (how many, default 5), data-title (the
   heading, default "Related articles"), data-api (the service's address, default where this
   script came from), data-link-template (for articles without a url, e.g. "/news/{id}"),
   data-same-category ("true": only the article's section), data-styles ("none": no default
   look, style it all yourself), data-timeout (milliseconds to wait for the answer, default 3000:
   then the request is aborted and the box stays hidden), data-lang (the language of its dates;
   default the page's lang attribute: <html lang="az">), data-sections (the site's names for its
   sections, JSON: {"world": "Dünya"}; or window.recommenderSections; a section not named there
   is shown as its slug, capitalized by the default look), data-dir ("rtl" or "ltr"; by default
   the page's direction: <html dir="rtl"> lays the box out right to left).

   What readers saw and chose (docs/events.md): once the box is at least half visible (or fills
   half the window, for a box taller than twice the window) it sends a
   view (the article, the ids shown in order, the ranking in force, a random view id made with
   crypto.getRandomValues for this view only), and a click on an item sends a click (the view id,
   the item and its 0-based position), to POST /events on the service with navigator.sendBeacon
   (else fetch with keepalive). No cookie, nothing about the reader. Attributes: data-events
   ("off": nothing is sent, and nothing below happens), data-ranking (the name of the ranking in
   force, default "default"; over 64 characters, nothing is sent), data-section (the page's
   section, sent with the view when 64 characters at most; else the service takes the
   article's). Nothing is sent when the browser asks not to be tracked
   (navigator.doNotTrack "1", or navigator.globalPrivacyControl).
   Exploration: data-explore="0.05": in that share of views two adjacent places, a random pair,
   are swapped, and the view says which (swapped: the first of the two, 0-based).
   Interleaving: data-compare="half_life_days=3&recency_weight=0.8" (ranking b: the query
   parameters added to the box's own, ranking a) with data-compare-share="0.1": in that share of
   views the box asks for both lists and merges them by team-draft interleaving (Radlinski et al.
   2008): each round the team with fewer picks so far picks next, a coin flip when equal; a team
   picks its highest-ranked article not already shown (when it has none left, the other picks);
   it stops at data-k places or when both lists are spent. The view then says, for each place,
   which ranking put it there (teams: "a" or "b"). A view is explored or interleaved, not both.

   Markup, with class names to style (the default look uses :where(), so any rule of yours wins):
     <section class="recommender-box" aria-labelledby="...">
       <h2 class="recommender-box__title">Related articles</h2>
       <ol class="recommender-box__list">
         <li class="recommender-box__item">
           <a class="recommender-box__link" href="..." dir="auto">Title</a>
           <span class="recommender-box__meta"><time datetime="...">12 Sep 2026</time><span
             class="recommender-box__sep" aria-hidden="true"> · </span><span
             class="recommender-box__category" data-section="world">Dünya</span></span>
     The section is hidden while it loads (recommender-box--loading, the hidden attribute, and
     no heading yet: the heading comes with the list), and stays hidden with
     recommender-box--empty when there is nothing to show, the service cannot be reached or it
     does not answer within data-timeout. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var STYLE_ID = "recommender-box-style";
  var CSS =
    // Logical properties only (inline-start, not left): the box follows the page's direction.
    ":where(.recommender-box){font:inherit;line-height:1.45;margin:1.5em 0;padding:1em 1.2em;border-top:3px solid #1f4e79;background:#f6f8fa;color:#1b1f23;text-align:start}" +
    ":where(.recommender-box__title){font-size:1.1em;line-height:1.3;margin:0 0 .7em}" +
    ":where(.recommender-box__list){margin:0;padding:0;padding-inline-start:1.6em}" +
    ":where(.recommender-box__item){margin:0 0 .75em}" +
    ":where(.recommender-box__item:last-child){margin-bottom:0}" +
    ":where(.recommender-box__link){color:#0b4f8a;text-decoration:none;font-weight:600}" +
    ":where(.recommender-box__link:hover,.recommender-box__link:focus){text-decoration:underline}" +
    ":where(.recommender-box__meta){display:block;margin-top:.15em;font-size:.85em;color:#57606a}" +
    ":where(.recommender-box__category--slug){text-transform:capitalize}" +
    ":where(.recommender-box--loading,.recommender-box--empty){display:none}";
  var DEFAULT_TIMEOUT = 3000;
  var MAX_NAME = 64; // events.MAX_NAME: a ranking or a section the service takes
  var DATE_OPTIONS = { year: "numeric", month: "short", day: "numeric" };
  // Month names for the sites' languages, where the browser lacks them (see browserDate).
  var MONTHS = {
    az: {
      dayFirst: true, // 3 noyabr 2026
      months: "yanvar fevral mart aprel may iyun iyul avqust sentyabr oktyabr noyabr dekabr",
    },
    ru: {
      dayFirst: true, // 3 ноября 2026
      months:
        "января февраля марта апреля мая июня июля августа сентября октября ноября декабря",
    },
    en: { dayFirst: false, months: "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec" },
  };
  Object.keys(MONTHS).forEach(function (code) {
    MONTHS[code].months = MONTHS[code].months.split(" ");
  });
  var counter = (window.__recommenderBoxes = (window.__recommenderBoxes || 0) + 1);

  var articleId = script.getAttribute("data-article-id");
  var k = parseInt(script.getAttribute("data-k") || "5", 10);
  var heading = script.getAttribute("data-title") || "Related articles";
  var template = script.getAttribute("data-link-template");
  // The page's language: data-lang, else the nearest lang attribute (<html lang="az">).
  var langHolder = script.closest ? script.closest("[lang]") : null;
  var lang = (
    script.getAttribute("data-lang") ||
    (langHolder && langHolder.getAttribute("lang")) ||
    ""
  ).trim();
  var baseLang = lang.toLowerCase().split(/[-_]/)[0];
  var timeout = parseInt(script.getAttribute("data-timeout") || "", 10);
  if (!(timeout > 0)) timeout = DEFAULT_TIMEOUT;
  var api = (script.getAttribute("data-api") || new URL(script.src, document.baseURI).origin)
    .replace(/\/+$/, "");
  var nav = window.navigator || {};
  var tracked =
    script.getAttribute("data-events") !== "off" &&
    nav.doNotTrack !== "1" &&
    window.doNotTrack !== "1" &&
    !nav.globalPrivacyControl &&
    !!(window.crypto && window.crypto.getRandomValues);
  // Names as the service takes them (events.py): any run of spaces (a no-break one too) as one
  // space, at most 64 characters. A view with a longer section would be refused whole: the
  // section is left out (the service fills in the article's); a longer ranking, no events.
  function named(value) {
    return (value || "").replace(/\s+/g, " ").trim();
  }
  var ranking = named(script.getAttribute("data-ranking")) || "default";
  if (tracked && ranking.length > MAX_NAME) {
    tracked = false;
    if (window.console) console.warn("recommender box: data-ranking is over 64 characters");
  }
  function share(name) {
    var value = parseFloat(script.getAttribute(name) || "0");
    return value > 0 ? Math.min(value, 1) : 0;
  }
  var explore = tracked ? share("data-explore") : 0;
  var compare = (script.getAttribute("data-compare") || "").replace(/^[?&]+/, "");
  var compareShare = tracked && compare ? share("data-compare-share") : 0;

  if (script.getAttribute("data-styles") !== "none" && !document.getElementById(STYLE_ID)) {
    var style = document.createElement("style");
    style.id = STYLE_ID;
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
  }

  var box = document.createElement("section");
  box.className = "recommender-box recommender-box--loading";
  var titleId = "recommender-box-title-" + counter;
  box.setAttribute("aria-labelledby", titleId);
  box.setAttribute("aria-busy", "true");
  var dir = script.getAttribute("data-dir");
  if (dir === "rtl" || dir === "ltr" || dir === "auto") box.dir = dir; // else the page's
  box.hidden = true; // hidden even with data-styles="none": never an empty heading on the page
  script.parentNode.insertBefore(box, script.nextSibling);

  var settled = false;
  var timer = null;
  function settle() {
    // The first of answer, error and timeout wins; what comes later is ignored.
    if (settled) return false;
    settled = true;
    if (timer !== null) clearTimeout(timer);
    box.classList.remove("recommender-box--loading");
    box.removeAttribute("aria-busy");
    return true;
  }

  function readSections() {
    // data-sections (JSON) or window.recommenderSections: {"world": "Dünya", ...}.
    var raw = script.getAttribute("data-sections");
    var map = window.recommenderSections;
    if (raw) {
      try {
        map = JSON.parse(raw);
      } catch (e) {
        if (window.console) console.warn("recommender box: data-sections is not JSON: " + e);
      }
    }
    return map && typeof map === "object" ? map : {};
  }
  var sections = readSections();

  function sectionName(slug) {
    // The site's name for a section, or null: the slug is then shown as is.
    var own = Object.prototype.hasOwnProperty.call(sections, slug) ? sections[slug] : null;
    return typeof own === "string" && own ? own : null;
  }

  function safeLink(item) {
    // Only http(s) links: an article's url never becomes a javascript: link.
    var candidates = [item.url];
    if (template) candidates.push(template.replace("{id}", encodeURIComponent(item.id)));
    for (var i = 0; i < candidates.length; i++) {
      if (!candidates[i]) continue;
      try {
        var url = new URL(candidates[i], document.baseURI);
        if (url.protocol === "http:" || url.protocol === "https:") return url.href;
      } catch (e) {
        /* not a URL: try the next */
      }
    }
    return null;
  }

  function browserDate(d) {
    // The browser's own date in the page's language, or null where it lacks that language's
    // data: Chromium's builds carry month names for some languages only, and give
    // "2026 M11 3" for Azerbaijani; a language it does not know at all resolves to another.
    try {
      var format = new Intl.DateTimeFormat(lang || undefined, DATE_OPTIONS);
      if (!lang) return format.format(d);
      var resolved = format.resolvedOptions().locale.toLowerCase().split("-")[0];
      var parts = format.formatToParts ? format.formatToParts(d) : [];
      for (var i = 0; i < parts.length; i++) {
        if (parts[i].type === "month" && /^M?\d+$/.test(parts[i].value)) return null;
      }
      return resolved === baseLang ? format.format(d) : null;
    } catch (e) {
      return null; // a lang that is not a language tag
    }
  }

  function dateText(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    var text = browserDate(d);
    if (text !== null) return text;
    var own = MONTHS[baseLang];
    if (own) {
      var month = own.months[d.getMonth()];
      return own.dayFirst
        ? d.getDate() + " " + month + " " + d.getFullYear()
        : month + " " + d.getDate() + ", " + d.getFullYear();
    }
    return d.toLocaleDateString(undefined, DATE_OPTIONS); // the browser's own language
  }

  // -- what readers saw and chose ------------------------------------------------------------
  function random() {
    // In [0, 1), from the browser's cryptographic source.
    var word = new Uint32Array(1);
    window.crypto.getRandomValues(word);
    return word[0] / 4294967296;
  }

  function newViewId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    var id = "";
    for (var i = 0; i < bytes.length; i++) id += (bytes[i] + 256).toString(16).slice(1);
    return id;
  }

  function send(events) {
    // POST /events: a beacon (text/plain, no CORS preflight; the browser sends it even as the
    // page unloads), else fetch with keepalive. Whatever happens, the page never hears of it.
    var body = JSON.stringify({ events: events });
    var url = api + "/events";
    try {
      if (nav.sendBeacon && nav.sendBeacon(url, body)) return;
    } catch (e) {
      /* refused: try fetch */
    }
    try {
      fetch(url, {
        method: "POST",
        body: body,
        keepalive: true,
        credentials: "omit",
        headers: { "Content-Type": "text/plain" },
      }).catch(function () {});
    } catch (e) {
      /* no way to send: the event is lost, the page goes on */
    }
  }

  function teamDraft(a, b, size) {
    // Team-draft interleaving (see the header): {ids, teams}.
    var lists = { a: a, b: b };
    var cursor = { a: 0, b: 0 };
    var picks = { a: 0, b: 0 };
    var taken = {};
    var ids = [];
    var teams = [];
    function nextOf(team) {
      var items = lists[team];
      while (cursor[team] < items.length && taken["#" + items[cursor[team]]]) cursor[team]++;
      return cursor[team] < items.length ? items[cursor[team]] : null;
    }
    while (ids.length < size) {
      var team =
        picks.a !== picks.b ? (picks.a < picks.b ? "a" : "b") : random() < 0.5 ? "a" : "b";
      var id = nextOf(team);
      if (id === null) {
        team = team === "a" ? "b" : "a";
        id = nextOf(team);
        if (id === null) break;
      }
      ids.push(id);
      teams.push(team);
      taken["#" + id] = true;
      picks[team]++;
    }
    return { ids: ids, teams: teams };
  }

  function watch(view, list) {
    // The view once the box is at least half visible (once); a click with its position. A
    // click before the view was sent (no IntersectionObserver) sends the view with it.
    var sent = false;
    function viewOnce() {
      if (sent) return [];
      sent = true;
      view.time = Date.now();
      return [view];
    }
    if (typeof IntersectionObserver === "function") {
      var observer = new IntersectionObserver(
        function (entries) {
          for (var i = 0; i < entries.length; i++) {
            var entry = entries[i];
            // Half of it in sight, or (a box taller than twice the window) half the window.
            var seen =
              entry.intersectionRatio >= 0.5 ||
              entry.intersectionRect.height >= (window.innerHeight || 0) / 2;
            if (entry.isIntersecting && seen) {
              observer.disconnect();
              var events = viewOnce();
              if (events.length) send(events);
              return;
            }
          }
        },
        { threshold: [0, 0.1, 0.25, 0.5] }
      );
      observer.observe(box);
    }
    function clicked(event) {
      if (event.type === "auxclick" && event.button !== 1) return; // the middle button only
      var item = event.target && event.target.closest ? event.target.closest("li") : null;
      if (!item || item.parentNode !== list || !event.target.closest(".recommender-box__link"))
        return;
      var position = Array.prototype.indexOf.call(list.children, item);
      send(
        viewOnce().concat([
          {
            type: "click",
            view: view.view,
            article: item.getAttribute("data-article-id"),
            position: position,
            time: Date.now(),
          },
        ])
      );
    }
    list.addEventListener("click", clicked);
    list.addEventListener("auxclick", clicked);
  }

  function render(items, how) {
    if (!Array.isArray(items) || !items.length) return fail();
    var list = document.createElement("ol");
    list.className = "recommender-box__list";
    items.forEach(function (item) {
      var li = document.createElement("li");
      li.className = "recommender-box__item";
      li.setAttribute("data-article-id", item.id);
      var href = safeLink(item);
      var label = document.createElement(href ? "a" : "span");
      label.className = "recommender-box__link";
      if (href) label.href = href;
      label.textContent = item.title;
      label.dir = "auto"; // a title in another script than the page's keeps its own direction
      li.appendChild(label);
      if (item.published_at || item.category) {
        var meta = document.createElement("span");
        meta.className = "recommender-box__meta";
        if (item.published_at) {
          var time = document.createElement("time");
          time.setAttribute("datetime", item.published_at);
          time.textContent = dateText(item.published_at);
          meta.appendChild(time);
        }
        if (item.category) {
          if (item.published_at) {
            var sep = document.createElement("span");
            sep.className = "recommender-box__sep";
            sep.setAttribute("aria-hidden", "true");
            sep.textContent = " \u00b7 "; // a middle dot: "Sep 2, 2026 · world"
            meta.appendChild(sep);
          }
          var category = document.createElement("span");
          var name = sectionName(item.category);
          category.className =
            "recommender-box__category" + (name === null ? " recommender-box__category--slug" : "");
          category.setAttribute("data-section", item.category);
          category.textContent = name === null ? item.category : name;
          meta.appendChild(category);
        }
        li.appendChild(meta);
      }
      list.appendChild(li);
    });
    // Built whole before it is shown: an item the box cannot read leaves it hidden (and the
    // timeout then marks it empty), never half a list.
    if (!settle()) return;
    var h2 = document.createElement("h2");
    h2.className = "recommender-box__title";
    h2.id = titleId;
    h2.textContent = heading;
    box.appendChild(h2);
    box.appendChild(list);
    box.hidden = false;
    if (!tracked) return;
    var view = {
      type: "view",
      view: newViewId(),
      article: articleId,
      shown: items.map(function (item) { return item.id; }),
      ranking: ranking,
    };
    var section = named(script.getAttribute("data-section"));
    if (section && section.length <= MAX_NAME) view.section = section;
    if (baseLang) view.language = baseLang;
    if (how && how.swapped !== undefined) view.swapped = how.swapped;
    if (how && how.teams) view.teams = how.teams;
    watch(view, list);
  }

  function explored(items) {
    // In data-explore's share of views, two adjacent places swapped: {items, swapped}.
    if (!(explore > 0) || items.length < 2 || random() >= explore) return { items: items };
    var at = Math.floor(random() * (items.length - 1));
    var swapped = items.slice();
    swapped[at] = items[at + 1];
    swapped[at + 1] = items[at];
    return { items: swapped, swapped: at };
  }

  function interleaved(a, b) {
    // The lists a and b merged by team draft: {items, teams}.
    var byId = {};
    a.concat(b).forEach(function (item) {
      if (!byId["#" + item.id]) byId["#" + item.id] = item;
    });
    function ids(items) { return items.map(function (item) { return item.id; }); }
    var merged = teamDraft(ids(a), ids(b), isNaN(k) ? 5 : k);
    return {
      items: merged.ids.map(function (id) { return byId["#" + id]; }),
      teams: merged.teams,
    };
  }

  function fail() {
    if (!settle()) return;
    box.classList.add("recommender-box--empty");
  }

  if (!articleId) return fail();
  var query = "?k=" + (isNaN(k) ? 5 : k);
  if (script.getAttribute("data-same-category") === "true") query += "&same_category=true";
  if (script.getAttribute("data-same-language") === "true") query += "&same_language=true";
  // A fetch never holds the page's load event; the timeout covers the answer and its body.
  var controller = typeof AbortController === "function" ? new AbortController() : null;
  timer = setTimeout(function () {
    fail();
    if (controller) controller.abort();
  }, timeout);
  function related(extra) {
    return fetch(api + "/articles/" + encodeURIComponent(articleId) + "/similar" + query + extra, {
      headers: { Accept: "application/json" },
      signal: controller ? controller.signal : undefined,
    }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json().then(function (data) {
        if (!Array.isArray(data.related)) throw new Error("no list");
        return data.related;
      });
    });
  }
  if (compareShare > 0 && random() < compareShare) {
    // Interleaving: both lists; without b's (a refused parameter), a's alone, not interleaved.
    var compared = related("&" + compare).catch(function () { return null; });
    Promise.all([related(""), compared]).then(function (lists) {
      if (!lists[1] || !lists[0].length) return render(lists[0]);
      var merged = interleaved(lists[0], lists[1]);
      render(merged.items, { teams: merged.teams });
    }, fail);
  } else {
    related("").then(function (items) {
      var shown = Array.isArray(items) ? explored(items) : { items: items };
      render(shown.items, shown);
    }, fail);
  }
})();
