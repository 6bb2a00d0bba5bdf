"""`rehab detect` and `rehab eval`: the §4 CSV contract, through click's runner."""

from __future__ import annotations

import io
import json
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from rehab.cli_detect import detect_command, eval_command
from rehab.detect_io import DetectInputError, parse_detect_csv, write_cohort_csv
from rehab.domain.detection import detect_episodes_many
from rehab.domain.simulation import generate_cohort

HEADER = "patient_id,date,back_pain,leg_pain,adherence,red_flag,event,event_note"
START = date(2025, 3, 1)


def _rows(patient: str, leg: list[int], start: date = START) -> list[str]:
    return [
        f"{patient},{(start + timedelta(days=k)).isoformat()},1,{value},1,0,,"
        for k, value in enumerate(leg)
    ]


def _run(text: str, tmp_path: Path) -> tuple[int, str, str]:
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(detect_command, [str(path)])
    return result.exit_code, result.stdout, result.stderr


def _alerts(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines()]


QUIET = [1, 0, 1, 1, 2, 1, 0, 1, 1, 1] * 5


def _cohort_text() -> str:
    lines = [HEADER]
    lines += _rows("B", [*QUIET, 7, 7, 7, 7])
    lines += _rows("A", [*QUIET, 1, 6, 6, 6])
    lines += _rows("C", QUIET[:20])
    return "\n".join(lines) + "\n"


def test_alerts_come_as_json_lines_ordered_by_detection_day_then_patient(tmp_path: Path) -> None:
    code, out, err = _run(_cohort_text(), tmp_path)
    assert code == 0, err
    alerts = _alerts(out)
    keys = [(str(a["detected_on"]), str(a["patient_id"])) for a in alerts]
    assert keys == sorted(keys)
    assert list(alerts[0]) == [
        "patient_id",
        "kind",
        "metric",
        "onset",
        "detected_on",
        "severity",
        "baseline",
        "current",
        "change",
        "related_events",
        "explanation",
    ]
    pain = [a for a in alerts if a["kind"] == "pain_regression"]
    assert {(a["patient_id"], a["metric"]) for a in pain} == {("A", "leg_pain"), ("B", "leg_pain")}
    # C stopped logging 30 days before the file's last date: the 3rd day without a log.
    missed = [a for a in alerts if a["kind"] == "missed_logs"]
    assert [(a["patient_id"], a["detected_on"]) for a in missed] == [("C", "2025-03-23")]


def test_rows_in_any_order_and_unknown_columns_give_the_same_output(tmp_path: Path) -> None:
    lines = _cohort_text().splitlines()
    body = lines[1:]
    random.Random(4).shuffle(body)
    extended = ["site," + lines[0] + ",comment"] + [f"x,{row},anything" for row in body]
    _, expected, _ = _run(_cohort_text(), tmp_path)
    code, out, err = _run("\n".join(extended) + "\n", tmp_path)
    assert code == 0, err
    assert out == expected


def test_empty_values_and_missing_optional_columns_are_allowed(tmp_path: Path) -> None:
    text = "patient_id,date,leg_pain\nP,2025-01-01,\nP,2025-01-02,3\nP,2025-01-03,\n"
    code, out, err = _run(text, tmp_path)
    assert (code, out, err) == (0, "", "")


def test_a_bad_value_names_line_and_column_and_exits_2(tmp_path: Path) -> None:
    text = "\n".join([HEADER, "P,2025-01-01,1,2,1,0,,", "P,2025-01-02,1,11,1,0,,"]) + "\n"
    code, out, err = _run(text, tmp_path)
    assert code == 2
    assert out == ""
    assert "line 3, column 4" in err
    assert "leg_pain" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("row", "line", "column"),
    [
        ("P,2025-13-01,1,1,1,0,,", 2, 2),
        ("P,25-01-01,1,1,1,0,,", 2, 2),
        (",2025-01-01,1,1,1,0,,", 2, 1),
        ("P,2025-01-01,x,1,1,0,,", 2, 3),
        ("P,2025-01-01,1,1,1.5,0,,", 2, 5),
        ("P,2025-01-01,1,1,1,2,,", 2, 6),
        ("P,2025-01-01,1,1,1,0,landslide,", 2, 7),
        ("P,2025-01-01,1,1,1,0,,,extra", 2, 9),
        ("P,2025-01-01,1,1", 2, 5),
    ],
)
def test_each_kind_of_bad_value_is_located(row: str, line: int, column: int) -> None:
    with pytest.raises(DetectInputError) as caught:
        parse_detect_csv(io.StringIO(f"{HEADER}\n{row}\n"))
    assert (caught.value.line, caught.value.column) == (line, column)


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("P,2025-01-01,1,3.5,1,0,,", 4),
        ("P,2025-01-01,1,11.0,1,0,,", 4),
        ("P,2025-01-01,1,1,1,1.5,,", 6),
        ("P,2025-01-01,1,1,1,2.0,,", 6),
        ("P,2025-01-01,1,1,1,0,medication-changed,", 7),
    ],
)
def test_generous_reading_stops_at_values_that_are_not_whole_or_known(
    row: str, column: int
) -> None:
    with pytest.raises(DetectInputError) as caught:
        parse_detect_csv(io.StringIO(f"{HEADER}\n{row}\n"))
    assert (caught.value.line, caught.value.column) == (2, column)


def test_the_contract_is_read_generously_where_one_cell_would_refuse_the_file() -> None:
    # Column names in any case, whole numbers as decimals (a dataframe with gaps writes 3.0),
    # the glossary's spelling of event types, and leg sides in other words (or none).
    text = (
        "Patient_ID,DATE,Back_Pain,leg_pain,red_flag,event,leg_side\n"
        "P,2025-01-01,2.0,3,0.0,medication change,L\n"
        "P,2025-01-02,2,4.0,1.0,,bilateral\n"
        "P,2025-01-03,2,5,,,upper thigh\n"
    )
    (patient,) = parse_detect_csv(io.StringIO(text)).patients
    assert patient.back_pain == (2, 2, 2) and patient.leg_pain == (3, 4, 5)
    assert patient.red_flags is not None
    assert [bool(flags) for flags in patient.red_flags] == [False, True, False]
    assert [e.event_type for e in patient.events] == ["medication_change"]
    assert patient.leg_side == ("left", "both", None)


def test_a_row_with_every_value_empty_is_a_day_without_a_log() -> None:
    # A dense grid: the days the patient did not log are rows with empty values (and a 0 flag).
    text = f"{HEADER}\nP,2025-01-01,1,1,1,0,,\nP,2025-01-02,,,,0,,\nP,2025-01-03,,,,,,\n"
    parsed = parse_detect_csv(io.StringIO(text + "P,2025-01-04,,,,,,\n"))
    (patient,) = parsed.patients
    assert patient.dates == (date(2025, 1, 1),)
    assert parsed.last_date == date(2025, 1, 4)
    episodes = detect_episodes_many(parsed.patients, as_of=parsed.last_date)["P"]
    assert [(e.kind, e.onset, e.detected_on) for e in episodes] == [
        ("missed_logs", date(2025, 1, 2), date(2025, 1, 4))
    ]


def test_a_file_that_is_not_utf8_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(f"{HEADER}\nP,2025-01-01,1,1,1,0,other,caf\xe9\n".encode("latin-1"))
    for args, stdin in (([str(path)], None), (["-"], path.read_bytes())):
        result = CliRunner().invoke(detect_command, args, input=stdin)
        assert result.exit_code == 2
        assert "line 2, column 8: not UTF-8 text (byte 0xe9)" in result.stderr
        assert result.stdout == ""


def test_a_missing_required_column_is_an_error(tmp_path: Path) -> None:
    code, _, err = _run("patient_id,leg_pain\nP,3\n", tmp_path)
    assert code == 2
    assert "line 1" in err and "'date'" in err


def test_conflicting_rows_for_one_day_are_an_error_but_an_event_row_merges() -> None:
    merged = parse_detect_csv(
        io.StringIO(f"{HEADER}\nP,2025-01-01,1,2,1,0,,\nP,2025-01-01,,,,,fall,on ice\n")
    )
    (patient,) = merged.patients
    assert patient.dates == (date(2025, 1, 1),)
    assert patient.events[0].event_type == "fall"
    with pytest.raises(DetectInputError) as caught:
        parse_detect_csv(io.StringIO(f"{HEADER}\nP,2025-01-01,1,2,,,,\nP,2025-01-01,1,3,,,,\n"))
    assert (caught.value.line, caught.value.column) == (3, 4)


def test_an_event_only_row_is_not_a_log() -> None:
    parsed = parse_detect_csv(
        io.StringIO(
            f"{HEADER}\nP,2024-06-10,,,,,surgery,left L4-L5 decompression\nP,2025-01-01,1,1,1,0,,\n"
        )
    )
    (patient,) = parsed.patients
    assert patient.dates == (date(2025, 1, 1),)
    assert parsed.last_date == date(2025, 1, 1)


def test_stdin_and_a_fall_linked_alert(tmp_path: Path) -> None:
    lines = [HEADER + ",leg_side"]
    lines += [row + ",left" for row in _rows("S", [*QUIET, 1])]
    lines.append("S,2025-04-20,,,,,fall,slipped on stairs,")
    lines += [row + ",left" for row in _rows("S", [6, 7], START + timedelta(days=51))]
    result = CliRunner().invoke(detect_command, ["-"], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.stderr
    (alert,) = [a for a in _alerts(result.stdout) if a["kind"] == "pain_regression"]
    assert alert["detected_on"] == "2025-04-22"
    assert alert["related_events"] == [
        {"date": "2025-04-20", "event": "fall", "note": "slipped on stairs"}
    ]
    # Two logs since the fall: the current level is their mean, said so, not a 3-day median
    # that would reach back before the fall.
    assert str(alert["explanation"]).startswith(
        "Left leg pain 6.5/10 (mean of the last 2 logs, both since the fall on 2025-04-20) "
        "vs baseline 1/10 (+5.5; clinically important ≥ 2)."
    )
    assert "Began 1 day after a fall (slipped on stairs) logged 2025-04-20." in str(
        alert["explanation"]
    )


def test_a_missing_file_exits_2() -> None:
    result = CliRunner().invoke(detect_command, ["/nonexistent/in.csv"])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_a_cohort_written_as_csv_replays_to_the_same_alerts() -> None:
    cohort = generate_cohort(2, 25, 200)
    stream = io.StringIO()
    write_cohort_csv(cohort, stream)
    stream.seek(0)
    parsed = parse_detect_csv(stream)
    assert parsed.last_date is not None and parsed.last_date <= cohort.last_day
    direct = detect_episodes_many([p.series for p in cohort.patients], as_of=parsed.last_date)
    replayed = detect_episodes_many(parsed.patients, as_of=parsed.last_date)
    for patient_id, episodes in direct.items():
        assert [e.to_json_dict() for e in episodes] == [
            e.to_json_dict() for e in replayed[patient_id]
        ]


def test_eval_prints_a_report_and_writes_results(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmarks\n\n## Other section\n\nkeep me\n", encoding="utf-8")
    csv_out = tmp_path / "cohort.csv"
    result = CliRunner().invoke(
        eval_command,
        [
            "--seed",
            "3",
            "--patients",
            "20",
            "--days",
            "120",
            "--preset",
            "default",
            "--write-results",
            "--results",
            str(results),
            "--csv-out",
            str(csv_out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| default | 3 | 20 |" in result.output
    text = results.read_text(encoding="utf-8")
    assert "keep me" in text and "## Detection quality (rehab eval)" in text
    assert json.loads((tmp_path / "cohort.labels.json").read_text())["seed"] == 3
    detected = CliRunner().invoke(detect_command, [str(csv_out)])
    assert detected.exit_code == 0
