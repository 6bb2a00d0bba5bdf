// Renders the figures a page embeds as JSON and wires the range buttons.
//
// A chart is an element with data-figure="<id of a <script type="application/json">>" holding
// {"data", "layout", "config"} (built in rehab/charts; the script element is data, never run,
// so the page's Content-Security-Policy allows it). Charts inside a closed <details> are drawn
// when it opens (plotly needs a visible box to measure).
//
// Range buttons: <button data-range-group="g" data-range-start="…" data-range-end="…"
// aria-pressed="…">; every chart with data-range-group="g" follows the pressed one.
(function () {
  "use strict";
  if (typeof window.Plotly === "undefined") {
    return;
  }
  var ranges = {};

  function figureOf(el) {
    var source = document.getElementById(el.getAttribute("data-figure"));
    return source ? JSON.parse(source.textContent) : null;
  }

  function draw(el) {
    if (el.getAttribute("data-drawn") === "true") {
      return;
    }
    var fig = figureOf(el);
    if (!fig) {
      return;
    }
    var group = el.getAttribute("data-range-group");
    if (group && ranges[group] && fig.layout.xaxis) {
      fig.layout.xaxis.range = ranges[group];
    }
    el.setAttribute("data-drawn", "true");
    window.Plotly.newPlot(el, fig.data, fig.layout, fig.config || { responsive: true }).then(
      function () {
        syncLabels(el);
        el.on("plotly_relayout", function () {
          syncLabels(el);
        });
      }
    );
  }

  // Marker labels overprint when many days are visible: show them only up to
  // layout.meta.labelMaxDays (the symbols, lines and hover text stay).
  function visibleDays(el) {
    var range = el.layout && el.layout.xaxis && el.layout.xaxis.range;
    if (!range) {
      return 0;
    }
    return (new Date(String(range[1]).replace(" ", "T")) - new Date(String(range[0]).replace(" ", "T"))) / 864e5;
  }

  function syncLabels(el) {
    var meta = el.layout && el.layout.meta;
    if (!meta || typeof meta.labelTrace !== "number") {
      return;
    }
    var mode = visibleDays(el) > meta.labelMaxDays ? "markers" : "markers+text";
    if (el.data[meta.labelTrace].mode !== mode) {
      window.Plotly.restyle(el, { mode: mode }, [meta.labelTrace]);
    }
  }

  function visible(el) {
    var details = el.closest("details");
    return !details || details.open;
  }

  var charts = document.querySelectorAll("[data-figure]");
  Array.prototype.forEach.call(charts, function (el) {
    if (visible(el)) {
      draw(el);
    }
  });
  Array.prototype.forEach.call(document.querySelectorAll("details"), function (details) {
    details.addEventListener("toggle", function () {
      if (details.open) {
        Array.prototype.forEach.call(details.querySelectorAll("[data-figure]"), draw);
      }
    });
  });

  function applyRange(button) {
    var group = button.getAttribute("data-range-group");
    var range = [button.getAttribute("data-range-start"), button.getAttribute("data-range-end")];
    ranges[group] = range;
    var buttons = document.querySelectorAll('button[data-range-group="' + group + '"]');
    Array.prototype.forEach.call(buttons, function (other) {
      other.setAttribute("aria-pressed", other === button ? "true" : "false");
    });
    var targets = document.querySelectorAll('[data-figure][data-range-group="' + group + '"]');
    Array.prototype.forEach.call(targets, function (el) {
      if (el.getAttribute("data-drawn") === "true") {
        window.Plotly.relayout(el, { "xaxis.range": range });
      }
    });
    var status = document.getElementById(group + "-range-status");
    if (status) {
      status.textContent = "Showing " + button.textContent.trim() + ".";
    }
  }

  Array.prototype.forEach.call(document.querySelectorAll("button[data-range-group]"), function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      applyRange(b);
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-range-controls]"), function (el) {
    el.hidden = false;
  });
})();
