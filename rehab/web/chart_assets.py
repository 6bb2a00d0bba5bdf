"""Chart assets every chart page loads: plotly.js from the installed `plotly` package and its
stylesheet (see `rehab.charts.assets`), cached for a year under a versioned URL."""

from __future__ import annotations

import gzip
import hashlib
from functools import cache
from typing import Any

from flask import Blueprint, Response, abort, request, url_for

from rehab.charts import assets

bp = Blueprint("chart_assets", __name__, url_prefix="/assets")
YEAR = 365 * 24 * 3600


@cache
def _asset(kind: str) -> tuple[bytes, bytes, str]:
    raw = assets.plotly_js() if kind == "js" else assets.plotly_css()
    return raw, gzip.compress(raw, 6), hashlib.sha256(raw).hexdigest()[:32]


def _serve(kind: str, version: str, mimetype: str) -> Response:
    if version != assets.VERSION:
        abort(404)
    raw, packed, etag = _asset(kind)
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    elif "gzip" in request.headers.get("Accept-Encoding", ""):
        response = Response(packed, mimetype=mimetype)
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = Response(raw, mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    response.headers["Vary"] = "Accept-Encoding"
    return response


@bp.get("/plotly-<version>.min.js")
def plotly_js(version: str) -> Response:
    return _serve("js", version, "text/javascript")


@bp.get("/plotly-<version>.css")
def plotly_css(version: str) -> Response:
    return _serve("css", version, "text/css")


@bp.app_context_processor
def _chart_assets() -> dict[str, Any]:
    return {
        "plotly_js_url": lambda: url_for("chart_assets.plotly_js", version=assets.VERSION),
        "plotly_css_url": lambda: url_for("chart_assets.plotly_css", version=assets.VERSION),
        "plotly_style_id": assets.STYLE_ELEMENT_ID,
        "plotly_inline_style_ids": assets.inline_style_ids,
    }
