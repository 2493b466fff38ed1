// Events: the check-in desk (fetch, no full reload), select-all, print buttons and pickers. No inline scripts (CSP).
(function () {
  "use strict";

  function csrfToken(form) {
    var input = form && form.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  // Print buttons: <button data-print>.
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("[data-print]");
    if (el) { ev.preventDefault(); window.print(); }
  });

  // "Select all" checkboxes: <input type=checkbox data-select-all="name">.
  document.addEventListener("change", function (ev) {
    var box = ev.target.closest("[data-select-all]");
    if (!box) { return; }
    var name = box.getAttribute("data-select-all");
    var form = box.closest("form") || document;
    form.querySelectorAll("input[type=checkbox][name='" + name + "']:not(:disabled)").forEach(function (c) {
      c.checked = box.checked;
    });
  });

  // The attendee-list page: keep the download links and the "save column set" form in step with the choice.
  var exportForm = document.querySelector("form[data-export-form]");
  if (exportForm) {
    exportForm.querySelectorAll(".no-js-only").forEach(function (el) { el.hidden = true; });
    var syncExport = function () {
      var data = new FormData(exportForm);
      var query = new URLSearchParams();
      data.forEach(function (value, key) { query.append(key, value); });
      document.querySelectorAll("a[data-export-link]").forEach(function (a) {
        a.setAttribute("href", a.getAttribute("href").split("?")[0] + "?" + query.toString());
      });
      var save = document.querySelector("form[data-export-save]");
      if (save) {
        save.querySelectorAll("input[type=hidden][name=columns], input[type=hidden][name=status], " +
                              "input[type=hidden][name=attendance]").forEach(function (el) { el.remove(); });
        data.forEach(function (value, key) {
          var input = document.createElement("input");
          input.type = "hidden"; input.name = key; input.value = value;
          save.appendChild(input);
        });
      }
    };
    exportForm.addEventListener("change", syncExport);
  }

  // Tom Select pickers, when the library is on the page.
  if (window.TomSelect) {
    document.querySelectorAll("select[data-enhance=multi]").forEach(function (el) {
      new window.TomSelect(el, { plugins: ["remove_button"], maxOptions: 500 });
    });
    document.querySelectorAll("select[data-enhance=firm]").forEach(function (el) {
      var url = el.getAttribute("data-url");
      new window.TomSelect(el, {
        valueField: "value", labelField: "text", searchField: ["text"], maxOptions: 20, allowEmptyOption: true,
        load: function (query, callback) {
          fetch(url + "?q=" + encodeURIComponent(query), { headers: { "Accept": "application/json" }, credentials: "same-origin" })
            .then(function (r) { return r.ok ? r.json() : { items: [] }; })
            .then(function (data) { callback(data.items); })
            .catch(function () { callback(); });
        }
      });
    });
  }

  // The check-in desk.
  var desk = document.querySelector(".desk[data-counts-url]");
  if (!desk) { return; }
  var list = desk.querySelector(".desk-list");
  var message = desk.querySelector(".desk-message");
  var search = desk.querySelector(".desk-search input[name=q]");
  var countsUrl = desk.getAttribute("data-counts-url");
  var rowsUrl = desk.getAttribute("data-rows-url");

  function showCounts(counts) {
    if (!counts) { return; }
    ["registered", "checked_in", "walk_ins"].forEach(function (key) {
      var el = desk.querySelector("[data-count=" + key + "]");
      if (el && counts[key] !== undefined) { el.textContent = counts[key]; }
    });
  }

  function say(text, ok) {
    if (!message) { return; }
    message.textContent = text || "";
    message.className = "desk-message small mb-2 " + (ok ? "text-success" : "text-danger");
  }

  function refreshCounts() {
    fetch(countsUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(showCounts)
      .catch(function () { /* offline for a moment: the next poll catches up */ });
  }

  desk.addEventListener("submit", function (ev) {
    var form = ev.target.closest("form.desk-action");
    if (!form) { return; }
    ev.preventDefault();
    var button = form.querySelector("button");
    if (button) { button.disabled = true; }
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "Accept": "application/json", "X-Requested-With": "fetch", "X-CSRFToken": csrfToken(form) }
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, data: data }; });
    }).then(function (res) {
      var row = form.closest(".desk-row");
      if (res.data.row && row) {
        var tpl = document.createElement("template");
        tpl.innerHTML = res.data.row.trim();
        row.replaceWith(tpl.content.firstElementChild);
      }
      showCounts(res.data.counts);
      say(res.data.message, res.ok);
    }).catch(function () {
      if (button) { button.disabled = false; }
      say(desk.getAttribute("data-offline") || "…", false);
    });
  });

  var timer = null;
  var seq = 0;
  if (search) {
    search.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        var mine = ++seq;
        fetch(rowsUrl + "?q=" + encodeURIComponent(search.value), { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            if (html !== null && mine === seq) { list.innerHTML = html; list.setAttribute("data-q", search.value); }
          });
      }, 250);
    });
  }
  window.setInterval(refreshCounts, 15000);
})();
