// Visit form: type-ahead firm picker (Tom Select), contacts of the chosen firm, companions picker.
// Progressive: without JS the plain search form above the visit form fills the firm list.
(function () {
  "use strict";
  var form = document.getElementById("visit-form");
  if (!form || typeof window.TomSelect === "undefined") { return; }
  var lookupUrl = form.getAttribute("data-lookup-url");
  var contactsUrl = form.getAttribute("data-contacts-url");
  var firmSelect = document.getElementById("firm_id");
  var contactSelect = document.getElementById("contact_id");

  function loadContacts(firmId) {
    if (!contactSelect) { return; }
    while (contactSelect.options.length > 1) { contactSelect.remove(1); }
    if (!firmId) { return; }
    fetch(contactsUrl.replace("/0/", "/" + encodeURIComponent(firmId) + "/"), {
      headers: { "Accept": "application/json" }, credentials: "same-origin"
    }).then(function (r) { return r.ok ? r.json() : []; }).then(function (rows) {
      rows.forEach(function (c) {
        var opt = document.createElement("option");
        opt.value = String(c.id);
        opt.textContent = (c.name + " " + (c.title || "")).trim();
        contactSelect.appendChild(opt);
      });
    }).catch(function () { /* the contact is optional */ });
  }

  if (firmSelect && firmSelect.tagName === "SELECT") {
    var plain = document.querySelector(".firm-search-plain");
    if (plain) { plain.classList.add("d-none"); }
    var picker = new window.TomSelect(firmSelect, {
      valueField: "id",
      labelField: "name",
      searchField: ["name", "credit_code"],
      maxOptions: 10,
      loadThrottle: 250,
      create: false,
      placeholder: firmSelect.options.length && firmSelect.options[0].value === "" ? firmSelect.options[0].textContent : "",
      shouldLoad: function (query) { return query.trim().length >= 1; },
      load: function (query, callback) {
        fetch(lookupUrl + "?q=" + encodeURIComponent(query), {
          headers: { "Accept": "application/json" }, credentials: "same-origin"
        }).then(function (r) { return r.ok ? r.json() : []; })
          .then(function (rows) { callback(rows); })
          .catch(function () { callback(); });
      },
      render: {
        option: function (item, escape) {
          return "<div><div>" + escape(item.name) + "</div><div class=\"small text-muted font-monospace\">" +
            escape(item.credit_code || "") + "</div></div>";
        },
        item: function (item, escape) { return "<div>" + escape(item.name) + "</div>"; }
      }
    });
    picker.on("change", function (value) { loadContacts(value); });
  }

  var companions = document.getElementById("companion_ids");
  if (companions) {
    new window.TomSelect(companions, { plugins: ["remove_button"], maxOptions: 50, hideSelected: true });
  }
})();
