// Dashboard and progress report behaviour (no inline scripts: the CSP forbids them).
(function () {
  "use strict";

  // Definitions as tooltips (the title attribute stays for touch and screen readers).
  if (window.bootstrap && window.bootstrap.Tooltip) {
    document.querySelectorAll("[data-bs-toggle=tooltip]").forEach(function (el) {
      window.bootstrap.Tooltip.getOrCreateInstance(el);
    });
  }

  // Filter bar: offer only the chosen bank's branches and the chosen district's streets.
  function narrow(select, attr, value) {
    if (!select) { return; }
    Array.prototype.forEach.call(select.options, function (opt) {
      var owner = opt.getAttribute(attr);
      var show = !owner || !value || owner === value;
      opt.hidden = !show;
      opt.disabled = !show;
      if (!show && opt.selected) { select.value = ""; }
    });
  }
  var filters = document.querySelector("[data-dash-filters]");
  if (filters) {
    var bank = filters.querySelector("[name=bank]");
    var branch = filters.querySelector("[name=branch]");
    var district = filters.querySelector("[name=district]");
    var street = filters.querySelector("[name=street]");
    var sync = function () {
      narrow(branch, "data-bank", bank ? bank.value : "");
      narrow(street, "data-area", district ? district.value : "");
    };
    sync();
    filters.addEventListener("change", sync);
  }

  // Progress report: show the date fields of the chosen period; print button.
  var reportForm = document.querySelector("[data-report-form]");
  if (reportForm) {
    var period = reportForm.querySelector("[name=period]");
    var showPeriod = function () {
      reportForm.querySelectorAll("[data-period-field]").forEach(function (el) {
        var on = el.getAttribute("data-period-field") === period.value;
        el.classList.toggle("d-none", !on);
        el.querySelectorAll("input").forEach(function (input) { input.disabled = !on; });
      });
    };
    period.addEventListener("change", showPeriod);
    showPeriod();
  }
  document.querySelectorAll("[data-print]").forEach(function (btn) {
    btn.addEventListener("click", function () { window.print(); });
  });

  // Charts (ECharts, served locally).
  var dataEl = document.getElementById("dashboard-data");
  if (!dataEl || !window.echarts) { return; }
  var data = JSON.parse(dataEl.textContent);
  var charts = [];
  function num(v) { return v === "" || v === null ? null : Number(v); }
  function bar(spec, horizontal) {
    return {
      tooltip: { trigger: "axis" },
      legend: { type: "scroll", top: 0 },
      grid: { left: 8, right: 16, bottom: 8, top: 40, containLabel: true },
      xAxis: horizontal ? { type: "value" } : { type: "category", data: spec.categories, axisLabel: { interval: 0, rotate: 30 } },
      yAxis: horizontal ? { type: "category", data: spec.categories } : { type: "value" },
      series: spec.series.map(function (s) { return { name: s.name, type: "bar", data: s.data.map(num) }; })
    };
  }
  var options = {
    funnel: {
      tooltip: { trigger: "item" },
      series: [{ type: "funnel", sort: "none", left: "10%", width: "80%", minSize: "10%",
                 label: { show: true, position: "inside", formatter: "{b}: {c}" },
                 data: data.funnel }]
    },
    industry: bar(data.industry, false),
    bank: bar(data.bank, true),
    month: {
      tooltip: { trigger: "axis" },
      legend: { type: "scroll", top: 0 },
      grid: { left: 8, right: 16, bottom: 8, top: 40, containLabel: true },
      xAxis: { type: "category", data: data.month.categories },
      yAxis: { type: "value" },
      series: data.month.series.map(function (s) { return { name: s.name, type: "line", data: s.data.map(num) }; })
    }
  };
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var opt = options[el.getAttribute("data-chart")];
    if (!opt) { return; }
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption(opt);
    charts.push(chart);
  });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  // Tabs hidden at load have no size: resize when shown.
})();
