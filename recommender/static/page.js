/* The editor's page of recommender serve: search, pick, see the related list and its parts. */
(function () {
  "use strict";
  var options = JSON.parse(document.getElementById("ranking-options-data").textContent);
  var form = document.getElementById("options-form");
  var holder = document.getElementById("ranking-options");
  var statusLine = document.getElementById("status");
  var table = document.getElementById("related");
  var current = null;
  var pending = 0;

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  // Editors' words for the engine's options; the engine's name (as in the API, the CLI and
  // docs/settings) is in each label's tooltip, with its help.
  var plain = {
    half_life_days: "recency halves in (days)",
    recency_weight: "how much recency counts",
    recency_from: "age counted from",
    category_boost: "boost for the same category",
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

  options.forEach(function (option) {
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

  fetch("/info")
    .then(function (r) { return r.json(); })
    .then(function (info) {
      options.forEach(function (option) {
        var input = document.getElementById("opt-" + option.name);
        var value = info.settings ? info.settings[option.name] : undefined;
        if (value === null) value = "off";
        if (value !== undefined && input.tagName === "INPUT") input.placeholder = String(value);
      });
    })
    .catch(function () {});

  function query() {
    var params = new URLSearchParams();
    Array.prototype.forEach.call(form.elements, function (input) {
      if (!input.name) return;
      if (input.type === "checkbox") {
        if (input.checked) params.set(input.name, "true");
      } else if (input.value !== "") {
        params.set(input.name, input.value);
      }
    });
    return params.toString();
  }

  function fmt(x) { return typeof x === "number" ? x.toFixed(3) : "-"; }

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

  function showRelated(items) {
    var body = table.tBodies[0];
    body.textContent = "";
    items.forEach(function (item, n) {
      var row = el("tr");
      row.setAttribute("data-article-id", item.id);
      row.appendChild(el("td", n + 1, "rank"));
      var cell = el("td", null, "title");
      var link = el("a", item.title);
      link.href = "?id=" + encodeURIComponent(item.id);
      link.addEventListener("click", function (event) {
        event.preventDefault();
        pick(item.id);
      });
      cell.appendChild(link);
      if (item.copy_ids && item.copy_ids.length) {
        cell.appendChild(el("span", " copies: " + item.copy_ids.join(", "), "copies"));
      }
      row.appendChild(cell);
      // data-label: the column's name beside each value where a phone shows a row as a card.
      [["score", fmt(item.score)], ["sim", fmt(item.similarity)],
        ["dense", fmt(item.dense_similarity)], ["tfidf", fmt(item.lexical_similarity)],
        ["rec", fmt(item.recency_factor)], ["cat", fmt(item.category_factor)],
        ["copies", item.copies > 1 ? "+" + (item.copies - 1) : ""],
        ["date", (item.published_at || "").slice(0, 10)], ["category", item.category || "-"]
      ].forEach(function (pair) {
        var td = el("td", pair[1], pair[0]);
        td.setAttribute("data-label", pair[0]);
        row.appendChild(td);
      });
      body.appendChild(row);
    });
    table.hidden = items.length === 0;
    statusLine.textContent = items.length ? items.length + " related articles" : "no related articles found";
  }

  function fail(response) {
    return response.json().then(function (data) { throw new Error(data.error || response.statusText); });
  }

  function refresh() {
    if (!current) return;
    var ticket = ++pending;
    statusLine.textContent = "loading…";
    fetch("/articles/" + encodeURIComponent(current) + "/similar?" + query())
      .then(function (r) { return r.ok ? r.json() : fail(r); })
      .then(function (data) { if (ticket === pending) showRelated(data.related); })
      .catch(function (error) {
        if (ticket !== pending) return;
        table.hidden = true;
        statusLine.textContent = "error: " + error.message;
      });
  }

  function pick(id) {
    current = id;
    history.replaceState(null, "", "?id=" + encodeURIComponent(id));
    fetch("/articles/" + encodeURIComponent(id))
      .then(function (r) { return r.ok ? r.json() : fail(r); })
      .then(showArticle)
      .catch(function (error) { statusLine.textContent = "error: " + error.message; });
    refresh();
  }

  var timer = null;
  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  });
  form.addEventListener("reset", function () { setTimeout(refresh, 0); });

  document.getElementById("search-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var q = document.getElementById("search").value.trim();
    var list = document.getElementById("search-results");
    list.textContent = "";
    if (!q) return;
    fetch("/articles?q=" + encodeURIComponent(q) + "&limit=20")
      .then(function (r) { return r.ok ? r.json() : fail(r); })
      .then(function (data) {
        var found = data.articles;
        if (!found.length) list.appendChild(el("li", "nothing found"));
        found.forEach(function (article) {
          var li = el("li");
          var button = el("button", article.title, "link");
          button.type = "button";
          button.setAttribute("data-article-id", article.id);
          button.addEventListener("click", function () { pick(article.id); });
          li.appendChild(button);
          li.appendChild(el("span", " " + (article.category || "-") + " · " +
            (article.published_at || "").slice(0, 10), "meta"));
          list.appendChild(li);
        });
      })
      .catch(function (error) { list.appendChild(el("li", "error: " + error.message)); });
  });

  var start = new URLSearchParams(location.search).get("id");
  if (start) pick(start);
})();
