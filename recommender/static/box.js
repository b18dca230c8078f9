/* The embeddable "Related articles" box of recommender: no framework, no dependencies.

   Paste under an article:
     <script src="http://HOST/box.js" data-article-id="a-1001" async></script>

   Attributes: data-article-id (required), data-k (how many, default 5), data-title (the
   heading, default "Related articles"), data-api (the service's address, default where this
   script came from), data-link-template (for articles without a url, e.g. "/news/{id}"),
   data-same-category ("true": only the article's section), data-styles ("none": no default
   look, style it all yourself).

   Markup, with class names to style (the default look uses :where(), so any rule of yours wins):
     <section class="recommender-box" aria-labelledby="...">
       <h2 class="recommender-box__title">Related articles</h2>
       <ol class="recommender-box__list">
         <li class="recommender-box__item">
           <a class="recommender-box__link" href="...">Title</a>
           <span class="recommender-box__meta"><time datetime="...">12 Sep 2026</time>
             <span class="recommender-box__category">world</span></span>
     The section gets recommender-box--loading while it loads, and recommender-box--empty
     (and is hidden) when there is nothing to show or the service cannot be reached. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var STYLE_ID = "recommender-box-style";
  var CSS =
    ":where(.recommender-box){font:inherit;margin:1.5em 0;padding:1em 1.2em;border-top:3px solid #1f4e79;background:#f6f8fa;color:#1b1f23}" +
    ":where(.recommender-box__title){font-size:1.1em;margin:0 0 .6em}" +
    ":where(.recommender-box__list){margin:0;padding-left:1.4em}" +
    ":where(.recommender-box__item){margin:.35em 0;line-height:1.35}" +
    ":where(.recommender-box__link){color:#0b4f8a;text-decoration:none;font-weight:600}" +
    ":where(.recommender-box__link:hover,.recommender-box__link:focus){text-decoration:underline}" +
    ":where(.recommender-box__meta){display:block;font-size:.85em;color:#57606a}" +
    ":where(.recommender-box__category){margin-left:.5em;text-transform:capitalize}" +
    ":where(.recommender-box--empty){display:none}";
  var counter = (window.__recommenderBoxes = (window.__recommenderBoxes || 0) + 1);

  var articleId = script.getAttribute("data-article-id");
  var k = parseInt(script.getAttribute("data-k") || "5", 10);
  var heading = script.getAttribute("data-title") || "Related articles";
  var template = script.getAttribute("data-link-template");
  var api = (script.getAttribute("data-api") || new URL(script.src, document.baseURI).origin)
    .replace(/\/+$/, "");

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
  var h2 = document.createElement("h2");
  h2.className = "recommender-box__title";
  h2.id = titleId;
  h2.textContent = heading;
  box.appendChild(h2);
  script.parentNode.insertBefore(box, script.nextSibling);

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

  function dateText(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return d.toLocaleDateString(document.documentElement.lang || undefined, {
      year: "numeric",
      month: "short",
      day: "numeric",
    });
  }

  function render(items) {
    box.classList.remove("recommender-box--loading");
    box.removeAttribute("aria-busy");
    if (!items.length) {
      box.classList.add("recommender-box--empty");
      return;
    }
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
          var category = document.createElement("span");
          category.className = "recommender-box__category";
          category.textContent = item.category;
          meta.appendChild(category);
        }
        li.appendChild(meta);
      }
      list.appendChild(li);
    });
    box.appendChild(list);
  }

  function fail() {
    box.classList.remove("recommender-box--loading");
    box.removeAttribute("aria-busy");
    box.classList.add("recommender-box--empty");
  }

  if (!articleId) return fail();
  var query = "?k=" + (isNaN(k) ? 5 : k);
  if (script.getAttribute("data-same-category") === "true") query += "&same_category=true";
  if (script.getAttribute("data-same-language") === "true") query += "&same_language=true";
  fetch(api + "/articles/" + encodeURIComponent(articleId) + "/similar" + query, {
    headers: { Accept: "application/json" },
  })
    .then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json().then(function (data) { return data.related; });
    })
    .then(render, fail);
})();
