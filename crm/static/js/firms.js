// Firm page: "show number" reveals a contact's full mobile in place (the POST is audited server-side).
// Without JS the same form posts and the page comes back with the number shown.
(function () {
  "use strict";
  document.addEventListener("submit", function (ev) {
    var form = ev.target.closest("form.reveal-form");
    if (!form || !window.fetch) { return; }
    ev.preventDefault();
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (r) {
      if (!r.ok) { throw new Error(String(r.status)); }
      return r.json();
    }).then(function (data) {
      var item = form.closest("[data-contact-id]");
      var span = item && item.querySelector(".contact-mobile");
      if (span) {
        var link = document.createElement("a");
        link.href = "tel:" + data.mobile;
        link.textContent = data.mobile;
        span.textContent = "";
        span.appendChild(link);
      }
      form.remove();
    }).catch(function () { form.submit(); });
  });
})();
