"""`rehab detect` and `rehab eval` (design §4): plain click commands, no Flask app needed.

rehab detect INPUT.csv            # or - for stdin; JSON Lines on stdout
rehab eval --seed 1 --seed 2 --patients 500 --days 365 [--write-results] [--csv-out P]
"""

from __future__ import annotations

import io
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from rehab.detect_io import (
    DetectInputError,
    alerts_in_output_order,
    cohort_labels,
    json_lines,
    parse_detect_csv,
    write_cohort_csv,
)
from rehab.domain.config import DEFAULT_CONFIG
from rehab.domain.detection import detect_episodes, detect_episodes_many
from rehab.domain.scoring import EvalScore, format_score, score_cohort
from rehab.domain.simulation import COHORT_PRESETS, generate_cohort

RESULTS_TITLE = "Detection quality (rehab eval)"
DEFAULT_RESULTS = Path("bench/RESULTS.md")


@click.command("detect")
@click.argument("input_csv", metavar="INPUT.csv", type=str)
def detect_command(input_csv: str) -> None:
    """Replay INPUT.csv (or - for stdin) through the detector; print alerts as JSON Lines."""
    try:
        if input_csv == "-":
            data = sys.stdin.buffer.read()
            parsed = parse_detect_csv(io.StringIO(_decode(data), newline=""))
        else:
            with open(input_csv, encoding="utf-8-sig", newline="") as stream:
                try:
                    parsed = parse_detect_csv(stream)
                except UnicodeDecodeError:
                    with open(input_csv, "rb") as raw:
                        _decode(raw.read())  # raises with the line and column
                    raise
    except DetectInputError as exc:
        click.echo(f"error: {input_csv}: {exc}", err=True)
        sys.exit(2)
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"error: cannot read {input_csv}: {exc}", err=True)
        sys.exit(2)
    episodes = detect_episodes_many(parsed.patients, DEFAULT_CONFIG, as_of=parsed.last_date)
    for line in json_lines(alerts_in_output_order(episodes)):
        sys.stdout.write(line + "\n")


def _decode(data: bytes) -> str:
    """UTF-8 text (a BOM dropped), or a `DetectInputError` at the first undecodable byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        line_start = before.rfind(b"\n") + 1
        # The column counts CSV fields, as every other error does.
        column = data[line_start : exc.start].count(b",") + 1
        raise DetectInputError(
            line, column, f"not UTF-8 text (byte 0x{data[exc.start]:02x})"
        ) from None


def _score_line(
    preset: str, seed: int, score: EvalScore, seconds: float, single_seconds: float
) -> str:
    sizes = {size: rate for size, rate in score.sensitivity_by_size}
    shapes = {shape: rate for shape, rate in score.sensitivity_by_shape}
    return (
        f"| {preset} | {seed} | {score.patients} | "
        f"{score.headline_sensitivity.fraction:.3f} | "
        + " | ".join(
            f"{sizes[k].fraction:.2f}" if k in sizes else "–" for k in ("2", "3", "4", "5", "6+")
        )
        + " | "
        + " | ".join(
            f"{shapes[k].fraction:.2f}" if k in shapes else "–"
            for k in ("step", "ramp", "fall_flare", "relapse")
        )
        + f" | {score.false_alerts_per_patient_month:.3f} | "
        f"{score.median_delay_days:.0f} / {score.p90_delay_days:.0f} | "
        f"{score.red_flags_same_day.fraction:.3f} | {score.adherence_drops_found.fraction:.2f} | "
        f"{1000 * seconds / max(1, score.patients):.2f} | {1000 * single_seconds:.2f} |"
    )


@click.command("eval")
@click.option(
    "--seed",
    "seeds",
    type=int,
    multiple=True,
    default=(1, 2, 3),
    show_default=True,
    help="Cohort seed; repeat for several.",
)
@click.option("--patients", type=click.IntRange(1), default=400, show_default=True)
@click.option("--days", type=click.IntRange(30), default=365, show_default=True)
@click.option(
    "--preset",
    "presets",
    type=click.Choice(sorted(COHORT_PRESETS)),
    multiple=True,
    default=("default", "harsh", "quiet", "sparse", "shifted"),
    show_default=True,
    help="Cohort parameterisation; repeat for several.",
)
@click.option(
    "--write-results/--no-write-results",
    default=False,
    show_default=True,
    help="Write the figures to the 'Detection quality' section of --results.",
)
@click.option(
    "--results",
    "results_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_RESULTS,
    show_default=True,
)
@click.option(
    "--csv-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the first cohort as a §4 CSV here, with its labels beside it "
    "(<name>.labels.json), to feed to `rehab detect`.",
)
@click.option("--details/--no-details", default=False, help="Print each cohort's full report.")
def eval_command(
    seeds: tuple[int, ...],
    patients: int,
    days: int,
    presets: tuple[str, ...],
    write_results: bool,
    results_path: Path,
    csv_out: Path | None,
    details: bool,
) -> None:
    """Generate seeded labeled cohorts, run the detector on them, and score it."""
    rows: list[str] = []
    reports: list[str] = []
    for preset in presets:
        for seed in seeds:
            cohort = generate_cohort(seed, patients, days, COHORT_PRESETS[preset])
            if csv_out is not None and not rows:
                with open(csv_out, "w", encoding="utf-8", newline="") as stream:
                    write_cohort_csv(cohort, stream)
                labels_path = csv_out.with_name(csv_out.stem + ".labels.json")
                labels_path.write_text(json.dumps(cohort_labels(cohort), indent=1) + "\n")
                click.echo(f"wrote {csv_out} and {labels_path}")
            started = time.process_time()
            episodes = detect_episodes_many(
                [p.series for p in cohort.patients], DEFAULT_CONFIG, as_of=cohort.last_day
            )
            seconds = time.process_time() - started
            # The worker's path after one new log: one call per patient (first 100 patients).
            sample = cohort.patients[:100]
            started = time.process_time()
            for patient in sample:
                detect_episodes(patient.series, DEFAULT_CONFIG, as_of=cohort.last_day)
            single = (time.process_time() - started) / max(1, len(sample))
            score = score_cohort(cohort, episodes)
            rows.append(_score_line(preset, seed, score, seconds, single))
            reports.append(format_score(score, f"{preset}, seed {seed}"))
    header = (
        "| cohort | seed | patients | sensitivity ≥3 pts ≥5 d | size 2 | 3 | 4 | 5 | 6+ "
        "| step | ramp | fall flare | relapse | false pain alerts / patient-month "
        "| delay median / p90 (d) | red flags same day | adherence drops found "
        "| CPU ms / patient-year, batch | same, one call per patient |\n"
        "|" + "---|" * 20
    )
    table = header + "\n" + "\n".join(rows)
    if details:
        click.echo("\n\n".join(reports) + "\n")
    click.echo(table)
    if write_results:
        machine = f"{platform.machine()}, {_cpu_count()} CPUs, Python {platform.python_version()}"
        body = (
            f"## {RESULTS_TITLE}\n\n"
            f"`rehab eval --patients {patients} --days {days} "
            + " ".join(f"--seed {s}" for s in seeds)
            + " "
            + " ".join(f"--preset {p}" for p in presets)
            + f" --write-results` on {datetime.now(UTC).date().isoformat()} ({machine}).\n\n"
            "Scoring as for the held-out check: a regression is found when an alert of its "
            "metric is detected between its onset and 3 days after its end; a pain alert more "
            "than 2 days before / 21 days after every labeled window of the patient is false. "
            "Sensitivity by size counts all durations; by shape, regressions of ≥ 3 points "
            "lasting ≥ 5 days. A label's size is the rise of the expected logged value (after "
            "rounding and clipping to 0–10) over the patient's level in the week before its "
            "onset (`rehab.domain.simulation`). Cohorts: `default` (design §3 noise), `harsh` "
            "(noisier, more autocorrelated, more benign flares, sparser logs), `quiet`, "
            "`sparse` (logs every other day), `shifted` (never tuned on: noise SD 0.8–1.9, "
            "autocorrelation 0–0.8, heavy-tailed shocks, some 3-day benign flares, skipped "
            "weekends, more fluctuating and recovering patients). The detector's one z was "
            "tuned on `default` seeds 1–3; every other row is a check. CPU time is the whole "
            "replay of a patient-year (all alert kinds, explanations included), on a cohort "
            "with ~2.5 planted regressions and ~9 missed-log gaps per patient-year; `batch` is "
            "`detect_episodes_many` (the periodic scan, `rehab detect`), the last column one "
            "`detect_episodes` call per patient.\n\n" + table + "\n"
        )
        from bench.results import write_section

        write_section(results_path, RESULTS_TITLE, body)
        click.echo(f"wrote {results_path}")


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1
