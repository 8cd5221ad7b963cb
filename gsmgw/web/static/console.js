// gsmgw web console: live parts of pages (server-sent events), the compose counter, completion.
// No framework and no build step; the server renders every piece of HTML (escaped), this script
// only fetches those pieces and swaps them in.
"use strict";
(function () {
  const csrf = document.body.dataset.csrf || "";

  function topicsOf(element) {
    try { return JSON.parse(element.dataset.topics || "[]"); } catch (e) { return []; }
  }

  function post(url, fields) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: new URLSearchParams(fields),
      headers: {"X-CSRF-Token": csrf, "Accept": "application/json"},
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    });
  }

  // --- live parts -------------------------------------------------------------------------
  function atBottom() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 60;
  }

  function refresh(element) {
    if (element.dataset.loading) { element.dataset.again = "1"; return; }
    element.dataset.loading = "1";
    const follow = element.dataset.scroll === "bottom" && atBottom();
    fetch(element.dataset.src, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (response.redirected || !response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        element.innerHTML = html;
        if (follow) { window.scrollTo(0, document.documentElement.scrollHeight); }
        document.body.dataset.updated = String(Date.now());
      })
      .catch(function () { /* the next notice or a reload brings it */ })
      .finally(function () {
        delete element.dataset.loading;
        if (element.dataset.again) { delete element.dataset.again; refresh(element); }
      });
  }

  const topics = topicsOf(document.body);
  if (topics.length && window.EventSource) {
    const query = topics.map(function (t) { return "topic=" + encodeURIComponent(t); }).join("&");
    const source = new EventSource("/events?" + query);
    const state = document.querySelector(".live-state");
    source.onopen = function () {
      if (state) { state.textContent = "live"; }
      // What changed between rendering this page and opening the stream (or while it was
      // reconnecting) came without a notice: read the live parts once now.
      document.querySelectorAll("[data-live][data-src]").forEach(refresh);
      document.body.dataset.stream = "open";
    };
    source.onerror = function () { if (state) { state.textContent = "reconnecting…"; } };
    source.onmessage = function (event) {
      const notice = JSON.parse(event.data);
      document.querySelectorAll("[data-live][data-src]").forEach(function (element) {
        const mine = JSON.parse(element.dataset.live);
        if (notice.topics.some(function (t) { return mine.indexOf(t) >= 0; })) { refresh(element); }
      });
    };
    source.addEventListener("signout", function () {
      source.close();
      window.location.assign("/login?expired=1");
    });
  }
  document.querySelectorAll("[data-scroll=bottom]").forEach(function () {
    window.scrollTo(0, document.documentElement.scrollHeight);
  });

  // --- the compose counter ------------------------------------------------------------------
  function counter(area) {
    const box = document.getElementById(area.dataset.counter);
    if (!box) { return; }
    const maxParts = parseInt(box.dataset.maxParts || "0", 10);
    let timer = null;

    function show(info) {
      box.textContent = "";
      const line = document.createElement("p");
      line.className = "count";
      const tables = Object.values(info.national || {});
      const alphabet = info.alphabet + (tables.length ? " (" + tables.filter(function (t, i) { return tables.indexOf(t) === i; }).join(", ") + " tables)" : "");
      line.textContent = info.characters + " characters · " + info.parts + (info.parts === 1 ? " part" : " parts") +
        " · " + alphabet + " · " + info.remaining + " left in this part";
      if (maxParts && info.parts > maxParts) { line.className += " over"; line.textContent += " · more than " + maxParts + " parts"; }
      box.appendChild(line);
      if (info.forcing.length) {
        const why = document.createElement("p");
        why.className = "forcing";
        why.textContent = "These characters make it UCS-2 (70 characters per part): " + info.forcing.join(" ");
        box.appendChild(why);
        const fixable = Object.keys(info.replacements);
        if (fixable.length) {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "replace";
          button.textContent = "Replace " + fixable.join(" ") + " with GSM-7 look-alikes";
          button.addEventListener("click", function () {
            post("/compose/replace", {text: area.value}).then(function (result) {
              area.value = result.text;
              show(result);
              area.focus();
            });
          });
          box.appendChild(button);
        }
      }
    }

    function update() {
      post("/compose/count", {text: area.value}).then(show).catch(function () { box.textContent = ""; });
    }
    area.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 120); });
    update();
  }
  document.querySelectorAll("textarea[data-counter]").forEach(counter);

  // --- completion of recipients -----------------------------------------------------------
  document.querySelectorAll("input[data-complete]").forEach(function (input) {
    const list = document.getElementById(input.getAttribute("list"));
    let timer = null;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        const entries = input.value.split(",");
        const last = entries.pop().trim();
        const before = entries.map(function (e) { return e.trim(); }).filter(Boolean);
        fetch(input.dataset.complete + "?q=" + encodeURIComponent(last), {credentials: "same-origin"})
          .then(function (response) { return response.json(); })
          .then(function (data) {
            list.textContent = "";
            data.suggestions.forEach(function (suggestion) {
              const option = document.createElement("option");
              option.value = before.concat([suggestion]).join(", ");
              list.appendChild(option);
            });
          })
          .catch(function () { /* no suggestions */ });
      }, 150);
    });
  });
})();
