// Credit pages: firm type-ahead for the application form (the firms package's /firms/lookup), licence fields
// for pledges of patents owned by someone else. No inline scripts (CSP).
(function () {
  "use strict";
  var form = document.querySelector("form[data-lookup-url]");
  var input = form && form.querySelector("input[name=firm]");
  var list = document.getElementById("firm-options");
  if (form && input && list) {
    var url = form.getAttribute("data-lookup-url");
    var timer = null;
    var last = "";
    input.addEventListener("input", function () {
      var q = input.value.trim();
      if (timer) { window.clearTimeout(timer); }
      if (q.length < 2 || q === last || q.indexOf(" · ") !== -1) { return; }
      timer = window.setTimeout(function () {
        last = q;
        fetch(url + "?q=" + encodeURIComponent(q), { credentials: "same-origin", headers: { "Accept": "application/json" } })
          .then(function (resp) { return resp.ok ? resp.json() : []; })
          .then(function (items) {
            list.textContent = "";
            items.forEach(function (item) {
              var opt = document.createElement("option");
              opt.value = item.name + " · " + item.credit_code;
              list.appendChild(opt);
            });
          })
          .catch(function () { /* typing the full name or credit code still works */ });
      }, 200);
    });
  }
  // Licence fields matter when the patent belongs to someone else (above all a Hong Kong affiliate).
  var relation = document.querySelector("select[name=owner_relation]");
  var licence = document.querySelector("[data-licence]");
  if (relation && licence) {
    var sync = function () { licence.classList.toggle("credit-licence-muted", relation.value === "self"); };
    relation.addEventListener("change", sync);
    sync();
  }
})();
