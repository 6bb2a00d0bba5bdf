"""The framework's ceiling for `rehab bench ingest`: a bare Flask app under the same gunicorn
settings, with one POST endpoint that parses the JSON body and inserts one row with SQLAlchemy
Core. No auth, validation, idempotency, audit or task: what is left is Flask, gunicorn,
SQLAlchemy and one durable INSERT+COMMIT.

Run: BENCH_DATABASE_URL=postgresql+psycopg://... gunicorn -c config/gunicorn.conf.py \
     'bench.bare_app:create_app()'
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import sqlalchemy as sa
from flask import Flask, abort, jsonify, request

from rehab.db import MAX_OVERFLOW, POOL_SIZE

SCHEMA = "bench"
metadata = sa.MetaData(schema=SCHEMA)

bare_rows = sa.Table(
    "bare_rows",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("patient_id", sa.Integer, nullable=False),
    sa.Column("log_date", sa.Date, nullable=False),
    sa.Column("client_id", sa.String(64), nullable=False),
    sa.Column("back_pain", sa.SmallInteger, nullable=False),
    sa.Column("leg_pain", sa.SmallInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def create_app(database_url: str | None = None) -> Flask:
    url = database_url or os.environ["BENCH_DATABASE_URL"]
    # The same pool size as rehab's engine (no pre-ping: this is the ceiling).
    engine = sa.create_engine(url, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW)
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> Any:
        return {"ok": True}

    @app.post("/api/v1/patients/<int:patient_id>/logs")
    def post_log(patient_id: int) -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            abort(400)
        with engine.begin() as conn:
            row_id = conn.execute(
                sa.insert(bare_rows)
                .values(
                    patient_id=patient_id,
                    log_date=dt.date.fromisoformat(body["log_date"]),
                    client_id=body["client_id"],
                    back_pain=body["back_pain"],
                    leg_pain=body["leg_pain"],
                    created_at=dt.datetime.now(dt.UTC),
                )
                .returning(bare_rows.c.id)
            ).scalar_one()
        return jsonify(id=row_id, client_id=body["client_id"]), 201

    return app
