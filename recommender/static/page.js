/* The editor's page of recommender serve: pick an article (title search) or paste a draft, see
   its box as readers will with a reason in plain words for each article, pin, block and hide
   from there. Everything the service sends is written with textContent, never as markup. */
(function () {
  "use strict";
  var options = JSON.parse(document.getElementById("ranking-options-data").textContent);
  var form = document.getElementById("options-form");
  var holder = document.getElementById("ranking-options");
  var statusLine = document.getElementById("status");
  var messageLine = document.getElementById("message");
  var box = document.getElementById("box");
  var list = document.getElementById("related");
  var editing = document.getElementById("editing");
  var tokenInput = document.getElementById("token");
  var showScores = document.getElementById("show-scores");
  var TOKEN_KEY = "recommender-editor-token";
  var WRITE_WAIT = "10"; // seconds a write waits for another writer before it is refused
  var DAY = 86400000;

  var info = { settings: {} };
  // What the box is of: an indexed article (mode "article": id and its stored fields) or a
  // draft (mode "draft": the fields sent to POST /similar).
  var query = { mode: null, id: null, article: null, draft: null };
  var overrides = [];
  var titles = {}; // id -> title, for the overrides listed by id
  var pending = 0;

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  // Editors' words for the engine's options; the engine's name (as in the API, the CLI and
  // docs/settings) is in each label's tooltip, with its help.
  var plain = {
    half_life_days: "recency halves in (days)",
    recency_weight: "how much recency counts",
    recency_from: "age counted from",
    category_boost: "boost for the same section",
    calibration: "similarity scale",
    lexical_weight: "share of shared words",
    lexical_weight_short: "share of shared words, headlines",
    short_terms: "a headline has fewer words than",
    neighbours: "closest stories consulted",
    neighbour_weight: "weight of the closest stories",
    duplicate_threshold: "copies from similarity",
    mmr_lambda: "relevance over variety (1: all relevance)",
    candidates: "candidates looked at"
  };
  var optionType = {};

  options.forEach(function (option) {
    optionType[option.name] = option.type;
    var row = el("div", null, "row");
    var label = el("label", plain[option.name] || option.name.replace(/_/g, " "));
    label.htmlFor = "opt-" + option.name;
    label.title = option.name + ": " + option.help;
    var input;
    if (option.type === "choice") {
      input = el("select");
      input.appendChild(el("option", "(index setting)")).value = "";
      option.choices.forEach(function (choice) {
        input.appendChild(el("option", choice)).value = choice;
      });
    } else {
      input = el("input");
      input.type = "number";
      input.step = option.type === "integer" ? "1" : "any";
      input.min = "0";
    }
    input.id = "opt-" + option.name;
    input.name = option.name;
    input.title = option.help;
    row.appendChild(label);
    row.appendChild(input);
    holder.appendChild(row);
  });

  // --- talking to the service -------------------------------------------------------------

  function problem(response) {
    // An error answer (RFC 9457 problem details): an Error with its detail and status.
    return response.json().catch(function () { return {}; }).then(function (data) {
      var error = new Error(data.detail || data.error || response.statusText || "HTTP " + response.status);
      error.status = response.status;
      throw error;
    });
  }

  function getJSON(url) {
    // no-cache: the browser asks again (a 304 when nothing changed), so that an editor's
    // change shows at once, not after the answers' max-age.
    return fetch(url, { cache: "no-cache", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : problem(r); });
  }

  function languageName(code) {
    try {
      var names = new Intl.DisplayNames(["en"], { type: "language" });
      var name = names.of(code);
      return name && name !== code ? name + " (" + code + ")" : code;
    } catch (e) {
      return code; // an old browser, or a code that is no language tag
    }
  }

  function fillPicker(select, counts, name) {
    var chosen = select.value;
    while (select.options.length > 1) select.remove(1);
    Object.keys(counts || {}).forEach(function (key) {
      var option = el("option", (name ? name(key) : key) + " · " + counts[key]);
      option.value = key;
      select.appendChild(option);
    });
    select.value = chosen;
    if (select.value !== chosen) select.value = "";
  }

  function loadInfo() {
    return getJSON("/info").then(function (data) {
      info = data;
      options.forEach(function (option) {
        var input = document.getElementById("opt-" + option.name);
        var value = data.settings ? data.settings[option.name] : undefined;
        if (value === null) value = "off";
        if (value !== undefined && input.tagName === "INPUT") input.placeholder = String(value);
      });
      fillPicker(document.getElementById("opt-category"), data.category_counts);
      fillPicker(document.getElementById("draft-section"), data.category_counts);
      fillPicker(document.getElementById("draft-lang"), data.languages, languageName);
      var held = data.overrides || {};
      document.getElementById("index-summary").textContent = [
        plural(data.articles, "article", "articles"),
        plural(data.categories, "section", "sections"),
        plural(Object.keys(data.languages || {}).length, "language", "languages"),
        "editors' changes: " + plural(held.pins || 0, "pin", "pins") + ", " +
          plural(held.blocks || 0, "block", "blocks") + ", " + (held.hidden || 0) + " hidden"
      ].join(" · ");
    }).catch(function (error) {
      document.getElementById("index-summary").textContent = "index info: " + error.message;
    });
  }

  function formValues() {
    // The options as the API names them: {name: value}, the empty ones left out.
    var values = {};
    Array.prototype.forEach.call(form.elements, function (input) {
      if (!input.name) return;
      if (input.type === "checkbox") {
        if (input.checked) values[input.name] = true;
      } else if (input.value !== "") {
        values[input.name] = input.value;
      }
    });
    return values;
  }

  function articleRequest(values) {
    var params = new URLSearchParams();
    Object.keys(values).forEach(function (name) { params.set(name, String(values[name])); });
    return getJSON("/articles/" + encodeURIComponent(query.id) + "/similar?" + params.toString());
  }

  function draftRequest(values) {
    // POST /similar takes JSON: numbers as numbers, the section filter as a list.
    var body = {};
    Object.keys(values).forEach(function (name) {
      var value = values[name];
      if (name === "category") body.categories = [value];
      else if (name === "k" || optionType[name] === "integer") body[name] = parseInt(value, 10);
      else if (optionType[name] === "number") body[name] = parseFloat(value);
      else body[name] = value;
    });
    var draft = query.draft;
    Object.keys(draft).forEach(function (name) { if (draft[name]) body[name] = draft[name]; });
    return fetch("/similar", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) { return r.ok ? r.json() : problem(r); });
  }

  function load() {
    // The box of the current article or draft, and the overrides, together.
    if (!query.mode) return;
    var ticket = ++pending;
    statusLine.textContent = "loading…";
    var values = formValues();
    var related = query.mode === "article" ? articleRequest(values) : draftRequest(values);
    var held = getJSON("/overrides").then(function (data) { return data.overrides; },
      function () { return null; });
    Promise.all([related, held])
      .then(function (answers) {
        if (ticket !== pending) return;
        overrides = answers[1] || [];
        show(answers[0].related, values, answers[1] !== null);
        showOverrides();
      })
      .catch(function (error) {
        if (ticket !== pending) return;
        box.hidden = true;
        statusLine.textContent = "error: " + error.message;
      });
  }

  // --- reasons in plain words -------------------------------------------------------------

  function pinsHere() {
    // This article's pins: related id -> place.
    var pins = {};
    overrides.forEach(function (o) {
      if (o.kind === "pin" && query.mode === "article" && o.article_id === query.id) {
        pins[o.related_id] = o.position;
      }
    });
    return pins;
  }

  function queryDate() {
    if (query.mode === "article") return query.article ? query.article.published_at : null;
    return query.draft.published_at || new Date().toISOString();
  }

  function queryCategory() {
    return query.mode === "article" ? (query.article || {}).category : query.draft.category;
  }

  function queryLanguage() {
    return query.mode === "article" ? (query.article || {}).lang : query.draft.lang;
  }

  function setting(values, name) {
    return values[name] !== undefined ? values[name] : info.settings[name];
  }

  function when(item) {
    // "published 2 days earlier" than the article (or the draft, now if it has no date).
    var ours = Date.parse(queryDate() || "");
    var theirs = Date.parse(item.published_at || "");
    if (isNaN(theirs)) return "undated, so it counts as a typical candidate";
    if (isNaN(ours)) return null;
    var diff = ours - theirs;
    var side = diff >= 0 ? "earlier" : "later";
    var days = Math.abs(diff) / DAY;
    if (days < 1) {
      var hours = Math.round(Math.abs(diff) / 3600000);
      return hours ? "published " + plural(hours, "hour", "hours") + " " + side
        : "published at the same time";
    }
    if (days < 61) return "published " + plural(Math.round(days), "day", "days") + " " + side;
    if (days < 730) return "published " + plural(Math.round(days / 30.44), "month", "months") + " " + side;
    return "published " + plural(Math.round(days / 365.25), "year", "years") + " " + side;
  }

  function closeness(item, values) {
    // With calibration "pool" the similarities are on one scale: 0.35 the average candidate,
    // each 0.14 one standard deviation closer (docs/ranking.md); else the raw fused cosines.
    var s = item.similarity;
    var bands = setting(values, "calibration") === "none" ? [0.6, 0.45, 0.3] : [0.63, 0.49, 0.35];
    if (s >= bands[0]) return "very close in content";
    if (s >= bands[1]) return "close in content";
    if (s >= bands[2]) return "fairly close in content";
    return "loosely related in content";
  }

  function words(item, values) {
    var w = item.lexical_similarity;
    var copies = setting(values, "duplicate_threshold");
    if (typeof copies === "number" && w >= copies) return "nearly the same text";
    if (w >= 0.2) return "shares many words with it";
    if (w >= 0.07) return "shares some words with it";
    return "few words in common";
  }

  function reasons(item, values, pinnedAt) {
    var said = [];
    var pinned = pinnedAt !== undefined ||
      (item.score === 0 && item.recency_factor === 1 && item.category_factor === 1);
    if (pinned) said.push("pinned by an editor" + (pinnedAt ? " at place " + pinnedAt : ""));
    else said.push(closeness(item, values));
    said.push(words(item, values));
    var time = when(item);
    if (time) {
      var recency = item.recency_factor;
      if (!pinned && recency < 0.995) {
        time += (isNaN(Date.parse(item.published_at || "")) ? ": " : ", so it counts ") +
          Math.round(recency * 100) + "%";
      }
      said.push(time);
    }
    var ours = queryCategory();
    if (!pinned && item.category_factor > 1.0001) {
      said.push("same section, which counts " + Math.round((item.category_factor - 1) * 100) + "% more");
    } else if (ours && item.category === ours) {
      said.push("same section");
    }
    var lang = queryLanguage();
    if (lang && item.language && item.language !== lang.toLowerCase().split(/[-_]/)[0]) {
      said.push("in another language (" + item.language + ")");
    }
    if (item.copies > 1) said.push(item.copies + " copies shown once");
    return said.join("; ");
  }

  // --- the box ----------------------------------------------------------------------------

  function fmt(x) { return typeof x === "number" ? x.toFixed(3) : "-"; }

  function dateText(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return d.toLocaleDateString("en", { year: "numeric", month: "short", day: "numeric" });
  }

  function scoreLine(item) {
    // The score's parts, named, each in a span of its own class (folded: "show scores").
    var line = el("p", null, "scores");
    var op = item.similarity < 0 ? " ÷ " : " × "; // a negative similarity is divided
    [["score", "score", item.score, " = "], ["similarity", "similarity", item.similarity, op],
      ["recency", "recency", item.recency_factor, op], ["category", "section", item.category_factor, ""],
      ["dense", "; embedding cosine", item.dense_similarity, ""],
      ["lexical", ", shared words (TF-IDF) cosine", item.lexical_similarity, ""]
    ].forEach(function (part) {
      line.appendChild(document.createTextNode(part[1] + " "));
      var value = el("span", fmt(part[2]), "part-" + part[0]);
      line.appendChild(value);
      line.appendChild(document.createTextNode(part[3]));
    });
    if (item.copy_ids && item.copy_ids.length) {
      line.appendChild(document.createTextNode("; copies: " + item.copy_ids.join(", ")));
    }
    return line;
  }

  function actionButton(text, className, handler) {
    var button = el("button", text, className);
    button.type = "button";
    button.addEventListener("click", handler);
    return button;
  }

  function actions(item, place, pinnedAt) {
    var row = el("div", null, "actions");
    var label = (item.title || item.id);
    if (query.mode === "article") {
      if (pinnedAt !== undefined) {
        row.appendChild(actionButton("Unpin", "unpin", function () {
          change("DELETE", "pins", { article: query.id, related: item.id }, "Unpinned “" + label + "”.");
        }));
      } else {
        var at = el("input", null, "place");
        at.type = "number";
        at.min = "1";
        at.max = "100";
        at.value = String(place);
        at.setAttribute("aria-label", "place to pin it at");
        row.appendChild(actionButton("Pin at place", "pin", function () {
          var position = parseInt(at.value, 10);
          if (!(position >= 1)) return say("A place is a whole number from 1.", "error");
          change("PUT", "pins", { article: query.id, related: item.id, position: String(position) },
            "Pinned “" + label + "” at place " + position + ".");
        }));
        row.appendChild(at);
      }
      row.appendChild(actionButton("Block from this box", "block", function () {
        change("PUT", "blocks", { article: query.id, related: item.id }, "Blocked “" + label + "” from this box.");
      }));
    }
    row.appendChild(actionButton("Hide from every box", "hide", function () {
      change("PUT", "hidden", { article: item.id }, "Hid “" + label + "” from every box.");
    }));
    return row;
  }

  function show(items, values, knowOverrides) {
    list.textContent = "";
    var pins = knowOverrides ? pinsHere() : {};
    items.forEach(function (item, n) {
      titles[item.id] = item.title;
      var pinnedAt = pins[item.id];
      var li = el("li", null, "item" + (pinnedAt !== undefined ? " pinned" : ""));
      li.setAttribute("data-article-id", item.id);
      var title = el("a", item.title, "title");
      title.dir = "auto";
      title.href = "?id=" + encodeURIComponent(item.id);
      title.addEventListener("click", function (event) {
        event.preventDefault();
        pick(item.id);
      });
      li.appendChild(title);
      var meta = el("span", null, "meta");
      var parts = [];
      if (item.published_at) parts.push(dateText(item.published_at));
      if (item.category) parts.push(item.category);
      meta.textContent = parts.join(" · ");
      var line = el("div", null, "line"); // the box's date and section; the editor's buttons
      line.appendChild(meta);
      line.appendChild(actions(item, n + 1, pinnedAt));
      li.appendChild(line);
      li.appendChild(el("p", reasons(item, values, pinnedAt), "reason"));
      li.appendChild(scoreLine(item));
      list.appendChild(li);
    });
    box.hidden = items.length === 0;
    var of = query.mode === "article"
      ? (query.article ? "“" + query.article.title + "”" : query.id)
      : "the draft “" + query.draft.text.split("\n")[0].slice(0, 80) + "”";
    statusLine.textContent = (items.length ? plural(items.length, "related article", "related articles")
      : "no related articles found") + " for " + of;
  }

  // --- editors' changes -------------------------------------------------------------------

  function say(text, kind) {
    messageLine.textContent = text;
    messageLine.className = "message " + (kind || "");
    messageLine.hidden = !text;
  }

  function titled(id) {
    // The title of an id an override names, fetched once; the id until then.
    if (titles[id] !== undefined) return titles[id];
    titles[id] = null;
    getJSON("/articles/" + encodeURIComponent(id)).then(function (article) {
      titles[id] = article.title;
      showOverrides();
    }, function () {});
    return null;
  }

  function overrideItem(text, id, undoText, undo) {
    var li = el("li");
    li.setAttribute("data-article-id", id);
    var title = titled(id);
    li.appendChild(el("span", text + " "));
    li.appendChild(el("span", title ? "“" + title + "” (" + id + ")" : id, "what"));
    li.appendChild(actionButton(undoText, "undo", undo));
    return li;
  }

  function showOverrides() {
    var here = document.getElementById("overrides");
    var hidden = document.getElementById("hidden-list");
    here.textContent = "";
    hidden.textContent = "";
    editing.hidden = !query.mode;
    var HIDDEN_SHOWN = 50;
    var hiddenCount = 0;
    overrides.forEach(function (o) {
      if (o.kind === "hide") {
        hiddenCount += 1;
        if (hiddenCount > HIDDEN_SHOWN) return;
        hidden.appendChild(overrideItem("hidden:", o.article_id, "Show again", function () {
          change("DELETE", "hidden", { article: o.article_id }, "“" + o.article_id + "” shows again.");
        }));
      } else if (query.mode === "article" && o.article_id === query.id) {
        var pin = o.kind === "pin";
        here.appendChild(overrideItem(pin ? "pinned at place " + o.position + ":" : "blocked:",
          o.related_id, pin ? "Unpin" : "Unblock", function () {
            change("DELETE", pin ? "pins" : "blocks", { article: query.id, related: o.related_id },
              (pin ? "Unpinned “" : "Unblocked “") + o.related_id + "”.");
          }));
      }
    });
    if (hiddenCount > HIDDEN_SHOWN) hidden.appendChild(el("li", "and " + (hiddenCount - HIDDEN_SHOWN) + " more"));
    if (!here.children.length) {
      here.appendChild(el("li", query.mode === "article" ? "none: the box is as ranked"
        : "a draft's box takes no pins or blocks; hidden articles are left out", "none"));
    }
    if (!hidden.children.length) hidden.appendChild(el("li", "none", "none"));
  }

  function change(method, kind, params, done) {
    // A write of /overrides/KIND, with the token; the box and the counts again once it is in.
    var token = tokenInput.value.trim();
    if (!token) {
      say("Enter the editor token (under “Editors' changes”) to pin, block or hide.", "error");
      tokenInput.focus();
      return;
    }
    if (!/^[\x21-\x7e]+$/.test(token)) {
      say("The token holds a space or a character a request header cannot carry: check what was pasted.", "error");
      return;
    }
    params.wait = WRITE_WAIT;
    say("saving…");
    fetch("/overrides/" + kind + "?" + new URLSearchParams(params).toString(), {
      method: method,
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      cache: "no-store"
    })
      .then(function (r) { return r.ok ? r.json() : problem(r); })
      .then(function () {
        say(done, "done");
        load();
        loadInfo();
      })
      .catch(function (error) {
        var text = error.message;
        if (error.status === 401) text = "The editor token is needed: " + text;
        else if (error.status === 403) text = "Refused: " + text + ".";
        else text = "Not saved: " + text;
        say(text, "error");
      });
  }

  try {
    tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (e) { /* storage off: typed each time */ }
  tokenInput.addEventListener("input", function () {
    try { sessionStorage.setItem(TOKEN_KEY, tokenInput.value); } catch (e) { /* storage off */ }
  });
  document.getElementById("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
  });

  // --- picking --------------------------------------------------------------------------

  function showArticle(article) {
    document.getElementById("article").hidden = false;
    document.getElementById("article-title").textContent = article.title;
    document.getElementById("article-meta").textContent =
      [article.id, article.category || "-", (article.published_at || "").slice(0, 10), article.source || ""]
        .filter(Boolean).join(" · ");
    var body = article.body || "";
    document.getElementById("article-body").textContent =
      body.length > 600 ? body.slice(0, 600) + "…" : body;
  }

  function pick(id) {
    query = { mode: "article", id: id, article: null, draft: null };
    say("");
    history.replaceState(null, "", "?id=" + encodeURIComponent(id));
    getJSON("/articles/" + encodeURIComponent(id))
      .then(function (article) {
        if (query.id !== id) return;
        query.article = article;
        showArticle(article);
        load(); // once its date and section are known: the reasons need them
      })
      .catch(function (error) {
        box.hidden = true;
        statusLine.textContent = "error: " + error.message;
      });
  }

  document.getElementById("draft-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var text = document.getElementById("draft-text").value;
    if (!text.trim()) return say("Paste the draft first: its title on the first line.", "error");
    // The engine reads the first query_chars of a text (docs/cli.md); sending more is waste.
    var most = Math.max(100000, 10 * (info.settings.max_body_chars || 0));
    if (text.length > most) {
      text = text.slice(0, most);
      say("The draft is long: its first " + most.toLocaleString("en") + " characters are used.");
    } else {
      say("");
    }
    var date = document.getElementById("draft-date").value;
    query = {
      mode: "draft",
      id: null,
      article: null,
      draft: {
        text: text.trim(),
        category: document.getElementById("draft-section").value || null,
        lang: document.getElementById("draft-lang").value || null,
        published_at: date ? date + "T12:00:00Z" : null
      }
    };
    document.getElementById("article").hidden = true;
    history.replaceState(null, "", location.pathname);
    load();
  });

  var timer = null;
  function later() {
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  }
  // Both: a select sends "change" alone in some browsers; the timer makes the two one load.
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  form.addEventListener("reset", function () { setTimeout(load, 0); });
  showScores.addEventListener("change", function () {
    box.classList.toggle("with-scores", showScores.checked);
  });

  document.getElementById("search-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var q = document.getElementById("search").value.trim();
    var found = document.getElementById("search-results");
    found.textContent = "";
    if (!q) return;
    getJSON("/articles?q=" + encodeURIComponent(q) + "&limit=20")
      .then(function (data) {
        if (!data.articles.length) found.appendChild(el("li", "nothing found"));
        data.articles.forEach(function (article) {
          var li = el("li");
          var button = el("button", article.title, "link");
          button.type = "button";
          button.dir = "auto";
          button.setAttribute("data-article-id", article.id);
          button.addEventListener("click", function () { pick(article.id); });
          li.appendChild(button);
          li.appendChild(el("span", " " + (article.category || "-") + " · " +
            (article.published_at || "").slice(0, 10), "meta"));
          found.appendChild(li);
        });
      })
      .catch(function (error) { found.appendChild(el("li", "error: " + error.message)); });
  });

  // --- what readers chose: GET /report as two bar charts -----------------------------------

  var SVG = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function barChart(svg, rows, label) {
    // One bar per row, its height the row's click-through; its views and clicks in a tooltip.
    svg.textContent = "";
    var width = 480, height = 170, left = 40, bottom = 22, top = 8;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    var most = 0;
    rows.forEach(function (row) { most = Math.max(most, row.click_through); });
    most = most > 0 ? most : 0.01;
    var plot = height - bottom - top;
    svg.appendChild(svgEl("line", { x1: left, x2: width, y1: top + plot, y2: top + plot, "class": "axis" }));
    [0, most / 2, most].forEach(function (value) {
      var y = top + plot - (value / most) * plot;
      svg.appendChild(svgEl("text", { x: left - 4, y: y + 4, "text-anchor": "end" }, (value * 100).toFixed(value && value < 0.1 ? 1 : 0) + "%"));
    });
    if (!rows.length) {
      svg.appendChild(svgEl("text", { x: left + 10, y: top + plot / 2 }, "no views yet"));
      return;
    }
    var step = (width - left) / rows.length;
    var every = Math.ceil(rows.length / 12); // at most a dozen labels under the bars
    rows.forEach(function (row, i) {
      var h = (row.click_through / most) * plot;
      var bar = svgEl("rect", {
        x: left + i * step + (step - Math.min(step * 0.7, 40)) / 2, y: top + plot - h,
        width: Math.min(step * 0.7, 40), height: Math.max(h, 0.5),
        "class": "bar", "data-key": String(label(row))
      });
      bar.appendChild(svgEl("title", {}, label(row) + ": " + plural(row.views, "view", "views") + ", " +
        plural(row.clicks, "click", "clicks") + ", " + (row.click_through * 100).toFixed(1) + "%"));
      svg.appendChild(bar);
      if (i % every === 0) {
        svg.appendChild(svgEl("text", { x: left + i * step + step / 2, y: height - 6, "text-anchor": "middle" }, label(row)));
      }
    });
  }

  var reportStatus = document.getElementById("report-status");
  function loadReport() {
    var since = document.getElementById("report-since").value;
    var headers = { Accept: "application/json" };
    var token = tokenInput.value.trim();
    if (token && /^[\x21-\x7e]+$/.test(token)) headers.Authorization = "Bearer " + token;
    reportStatus.textContent = "loading…";
    fetch("/report" + (since ? "?since=" + encodeURIComponent(since) : ""), { headers: headers, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : problem(r); })
      .then(function (report) {
        reportStatus.textContent = plural(report.views, "view", "views") + ", " +
          plural(report.clicks, "click", "clicks") + ", click-through " +
          (report.click_through * 100).toFixed(1) + "%; " + report.explored + " explored, " +
          report.interleaved + " interleaved";
        barChart(document.getElementById("chart-position"),
          report.by_position.filter(function (row) { return row.views > 0; }),
          function (row) { return "#" + (row.position + 1); });
        barChart(document.getElementById("chart-day"),
          report.by_day.filter(function (row) { return row.views > 0; }).slice(-30),
          function (row) { return row.day.slice(5); });
      })
      .catch(function (error) {
        reportStatus.textContent = (error.status === 401 || error.status === 403
          ? "The editor token is needed to see what readers chose (pick an article, then enter it under “Editors' changes”): "
          : "error: ") + error.message;
      });
  }
  document.getElementById("report-form").addEventListener("submit", function (event) {
    event.preventDefault();
    loadReport();
  });
  tokenInput.addEventListener("change", loadReport);

  loadInfo();
  loadReport();
  var start = new URLSearchParams(location.search).get("id");
  if (start) pick(start);
})();
