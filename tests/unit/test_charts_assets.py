"""plotly.js from the installed package, and the stylesheet derived from it so charts render
under `style-src 'self'` (see rehab.charts.assets)."""

from __future__ import annotations

import pytest

from rehab.charts import assets


def test_the_installed_plotly_js_is_found() -> None:
    js = assets.plotly_js()
    assert len(js) > 1_000_000 and b"plotly.js" in js[:400]


def test_stylesheet_has_every_rule_plotly_would_insert() -> None:
    css = assets.plotly_css().decode()
    assert ".js-plotly-plot .plotly .modebar{" in css
    assert ".js-plotly-plot .plotly [data-title]:after{content:attr(data-title);" in css
    assert ".plotly-notifier .notifier-note{" in css
    assert css.count("{") == css.count("}") > 40
    assert "X " not in css and "Y " not in css


def test_rule_parsing() -> None:
    source = (
        'var a={"X,X div":\'margin:0;\',"X .b:before":\'content:"";\',Y:"top:1px;"};for(k in a)'
    )
    assert assets.css_from_plotly_js(source) == (
        ".js-plotly-plot .plotly,.js-plotly-plot .plotly div{margin:0;}\n"
        '.js-plotly-plot .plotly .b:before{content:"";}\n'
        ".plotly-notifier{top:1px;}\n"
    )
    with pytest.raises(ValueError):
        assets.css_from_plotly_js("nothing here")


def test_guarded_inline_styles_are_found() -> None:
    source = (
        'if(!document.getElementById("abc123")){var e=document.createElement("style");'
        'e.id="abc123"}'
    )
    assert assets.guarded_style_ids(source) == ["abc123"]
    assert len(assets.inline_style_ids()) >= 1
