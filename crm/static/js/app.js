// The CRM's own script: small progressive enhancements, no inline scripts (CSP).
(function () {
  "use strict";
  // Buttons that ask before a destructive POST: <button data-confirm="...">.
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("[data-confirm]");
    if (el && !window.confirm(el.getAttribute("data-confirm"))) { ev.preventDefault(); }
  });
  // Auto-submit filter forms when a select changes: <form data-autosubmit>.
  document.addEventListener("change", function (ev) {
    var form = ev.target.closest("form[data-autosubmit]");
    if (form && ev.target.matches("select, input[type=checkbox], input[type=date]")) { form.requestSubmit(); }
  });
})();
