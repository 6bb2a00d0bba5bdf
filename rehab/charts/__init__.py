"""Pure figure builders: plain data in, a plotly `Figure` out (design §5 "charts").

Nothing here touches Flask, SQLAlchemy or the database (an import-linter contract says so): a
service gathers the data into the types of `rehab.charts.model`, a builder turns them into a
figure, `serialize.figure_json` makes the compact JSON a page embeds, and
`rehab/static/js/charts.js` hands it to plotly.js.

- `trajectory`: the clinician's main chart (daily leg and back pain against the detector's
  baseline band, alert episodes, events and findings, adherence) and the change-vs-baseline
  view;
- `outcomes`: ODI and PSFS over time;
- `progress`: the patient's own, simpler chart;
- `sparkline`: the caseload's 30-day trend lines, as small SVG paths (no plotly);
- `baseline`: the adapter from the detector's baseline building blocks to a per-day band.

Figures are built from plain dicts and wrapped without plotly's per-property validation
(`Figure(spec, _validate=False)`), which costs ~10× the rest of a page, and pages embed the
plain dict (`*_spec`) without the `Figure` wrapper (see `serialize`); the unit tests validate
every builder's output against the plotly schema instead.
"""
