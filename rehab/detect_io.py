"""`rehab detect` input and output (design §4): CSV in, domain series, JSON Lines out.

Input contract. A header line, then one row per log or event. Required columns `patient_id`
and `date` (YYYY-MM-DD); optional `back_pain`, `leg_pain` (integers 0–10, empty = not logged),
`adherence` (0–1 fraction, empty = unknown), `red_flag` (0/1, empty = 0), `event` (empty or an
event type), `event_note`, and `leg_side` (left/right/both, so explanations can say "Left leg
pain"). Unknown columns are ignored, rows may come in any order, days may be missing.

Columns of ours beyond §4, written by `rehab export` so that a file exported from the clinic
replays with what the app knew: `red_flags` (which ones, `;`-separated: `new_numbness;
new_weakness`; a day with some is a red-flag day whatever `red_flag` says), and a row's event's
`event_side`, `event_body_region` and `event_mechanism` (a fall's, as the app words it). Without
them a red flag is "unspecified" and an event has its type and note only. Free text that a
spreadsheet would run as a formula (`=…`, `+…`, `-…`, `@…`) is written after a `'`, which the
importer removes again (`as_text_cell`).

Read as generously as the contract allows, because one refused cell refuses the whole file:
column names in any case; whole numbers written as decimals (`3.0`, `1.0`: what a dataframe
with gaps writes); event types as the glossary spells them (`medication change`); and
`leg_side`, a column of ours that only words the explanation, ignored when it says something
else (`L`, `bilateral`... become their side, anything else none).

How rows become logs. Several rows of one patient and date are merged (a log row and an event
row, or several events); two different values for the same field are an error. A row with no
pain, adherence or red flag is not a log ("empty = not logged"): an event-only row is an event
(a surgery dated before the first log does not start the patient's follow-up), and a row with
every value empty (a day of a dense grid the patient did not log) is a day without a log.

Replay. Every patient is replayed from her first log up to the last date in the file (any row,
any patient), through `rehab.domain.detection.detect_episodes_many`, the worker's code. So a
missed_logs alert can be dated on a day without a row: the Nth day without a log.

Errors. Any bad value raises `DetectInputError` naming the line (1 = header) and the column
(1-based, None when the problem is a missing column).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

from rehab.domain.alerts import AlertEpisode, JsonValue
from rehab.domain.series import UNSPECIFIED_RED_FLAG, PatientEvent, PatientSeries
from rehab.domain.simulation import Cohort
from rehab.domain.vocabulary import EventType, RedFlag

REQUIRED_COLUMNS = ("patient_id", "date")
CSV_COLUMNS = (
    "patient_id",
    "date",
    "back_pain",
    "leg_pain",
    "adherence",
    "red_flag",
    "event",
    "event_note",
    "leg_side",
    "red_flags",
    "event_side",
    "event_body_region",
    "event_mechanism",
)
EVENT_TYPES = frozenset(e.value for e in EventType)
RED_FLAGS = frozenset(f.value for f in RedFlag)
LEG_SIDES = {
    "left": "left",
    "l": "left",
    "right": "right",
    "r": "right",
    "both": "both",
    "b": "both",
    "bilateral": "both",
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A whole number, also as a decimal with a zero fraction ("3", "3.0", "03.00").
_WHOLE = re.compile(r"(\d{1,2})(?:\.0*)?")
_MEASURES = ("back_pain", "leg_pain", "adherence")


class DetectInputError(ValueError):
    """A bad input CSV: `line` (1 = header) and `column` (1-based, or None) say where."""

    def __init__(self, line: int, column: int | None, message: str) -> None:
        self.line = line
        self.column = column
        self.reason = message
        where = f"line {line}" + (f", column {column}" if column is not None else "")
        super().__init__(f"{where}: {message}")


@dataclass
class _DayLog:
    """What the rows of one patient and date say (None: not given)."""

    back_pain: int | None = None
    leg_pain: int | None = None
    adherence: float | None = None
    leg_side: str | None = None
    red_flag: bool = False
    red_flags: list[str] = field(default_factory=list)  # which ones, when the file says
    is_log: bool = False
    lines: dict[str, int] = field(default_factory=dict)  # field -> line that set it


@dataclass(frozen=True, slots=True)
class DetectInput:
    """Parsed input: one series per patient (sorted by id) and the replay's last day."""

    patients: tuple[PatientSeries, ...]
    last_date: date | None


def _cell_error(line: int, header: Sequence[str], index: int, what: str) -> DetectInputError:
    return DetectInputError(line, index + 1, f"{header[index]}: {what}")


def _pain(text: str, line: int, header: Sequence[str], index: int) -> int | None:
    if text == "":
        return None
    whole = _WHOLE.fullmatch(text)
    if whole is None or int(whole.group(1)) > 10:
        raise _cell_error(line, header, index, f"expected an integer 0–10 or empty, got {text!r}")
    return int(whole.group(1))


def _adherence(text: str, line: int, header: Sequence[str], index: int) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise _cell_error(line, header, index, f"expected a fraction 0–1 or empty, got {text!r}")
    return value


def _red_flags(
    text: str, line: int, header: Sequence[str], positions: Mapping[str, int]
) -> list[str]:
    """The `red_flags` cell's names, in the order written."""
    names = [re.sub(r"[\s-]+", "_", name.strip().lower()) for name in text.split(";")]
    names = list(dict.fromkeys(name for name in names if name))
    unknown = set(names) - RED_FLAGS - {UNSPECIFIED_RED_FLAG}
    if unknown:
        raise _cell_error(
            line,
            header,
            positions["red_flags"],
            f"expected red flags ({', '.join(sorted(RED_FLAGS))}) separated by ';', "
            f"got {sorted(unknown)[0]!r}",
        )
    return names


def _day_red_flags(log: _DayLog) -> tuple[str, ...]:
    if not log.red_flag:
        return ()
    named = [flag for flag in log.red_flags if flag != UNSPECIFIED_RED_FLAG]
    return tuple(named) if named else (UNSPECIFIED_RED_FLAG,)


def parse_detect_csv(stream: Iterable[str]) -> DetectInput:
    """Parse the §4 CSV from lines of text (a file opened with newline="")."""
    reader = csv.reader(stream)
    try:
        header = [name.strip().lstrip("\ufeff").strip().lower() for name in next(reader)]
    except StopIteration:
        raise DetectInputError(1, None, "empty input: expected a header line") from None
    except csv.Error as exc:
        raise DetectInputError(1, None, f"unreadable CSV: {exc}") from None
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        if name in CSV_COLUMNS:
            if name in positions:
                raise DetectInputError(1, index + 1, f"{name}: column given twice")
            positions[name] = index
    for name in REQUIRED_COLUMNS:
        if name not in positions:
            raise DetectInputError(1, None, f"missing required column {name!r}")

    days: dict[str, dict[date, _DayLog]] = {}
    events: dict[str, list[PatientEvent]] = {}
    last_date: date | None = None
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DetectInputError(reader.line_num, None, f"unreadable CSV: {exc}") from None
        line = reader.line_num
        if not row or all(cell.strip() == "" for cell in row):
            continue  # blank line
        if len(row) != len(header):
            raise DetectInputError(
                line,
                min(len(row), len(header)) + 1,
                f"expected {len(header)} fields as in the header, got {len(row)}",
            )
        cells = {name: row[i].strip() for name, i in positions.items()}

        patient_id = cells["patient_id"]
        if not patient_id:
            raise _cell_error(line, header, positions["patient_id"], "patient_id is empty")
        date_text = cells["date"]
        try:
            if not _DATE.match(date_text):
                raise ValueError
            day = date.fromisoformat(date_text)
        except ValueError:
            raise _cell_error(
                line, header, positions["date"], f"expected a date YYYY-MM-DD, got {date_text!r}"
            ) from None
        last_date = day if last_date is None or day > last_date else last_date

        values: dict[str, Any] = {}
        if "back_pain" in positions:
            values["back_pain"] = _pain(cells["back_pain"], line, header, positions["back_pain"])
        if "leg_pain" in positions:
            values["leg_pain"] = _pain(cells["leg_pain"], line, header, positions["leg_pain"])
        if "adherence" in positions:
            values["adherence"] = _adherence(
                cells["adherence"], line, header, positions["adherence"]
            )
        if "leg_side" in positions and cells["leg_side"]:
            values["leg_side"] = LEG_SIDES.get(cells["leg_side"].lower())
        red_flag = False
        if "red_flag" in positions and cells["red_flag"]:
            flag = _WHOLE.fullmatch(cells["red_flag"])
            if flag is None or int(flag.group(1)) > 1:
                raise _cell_error(
                    line,
                    header,
                    positions["red_flag"],
                    f"expected 0, 1 or empty, got {cells['red_flag']!r}",
                )
            red_flag = int(flag.group(1)) == 1
        red_flags = _red_flags(cells.get("red_flags", ""), line, header, positions)
        red_flag = red_flag or bool(red_flags)
        event_type = re.sub(r"[\s-]+", "_", cells.get("event", "").lower())
        if event_type and event_type not in EVENT_TYPES:
            raise _cell_error(
                line,
                header,
                positions["event"],
                f"expected an event type ({', '.join(sorted(EVENT_TYPES))}) or empty, "
                f"got {cells['event']!r}",
            )

        if event_type:
            events.setdefault(patient_id, []).append(
                PatientEvent(
                    date=day,
                    event_type=event_type,
                    note=from_text_cell(cells.get("event_note", "")),
                    side=LEG_SIDES.get(cells.get("event_side", "").lower()),
                    body_region=from_text_cell(cells.get("event_body_region", "")) or None,
                    mechanism=from_text_cell(cells.get("event_mechanism", "")) or None,
                )
            )
        has_measure = any(values.get(name) is not None for name in _MEASURES) or red_flag
        day_log = days.setdefault(patient_id, {}).setdefault(day, _DayLog())
        if has_measure:
            day_log.is_log = True
        day_log.red_flag = day_log.red_flag or red_flag
        day_log.red_flags.extend(f for f in red_flags if f not in day_log.red_flags)
        for name, value in values.items():
            if value is None:
                continue
            previous = getattr(day_log, name)
            if previous is not None and previous != value:
                raise _cell_error(
                    line,
                    header,
                    positions[name],
                    f"patient {patient_id} already has {name} {previous} on {day.isoformat()} "
                    f"(line {day_log.lines[name]})",
                )
            setattr(day_log, name, value)
            day_log.lines[name] = line

    patients = []
    for patient_id in sorted(set(days) | set(events)):
        logged = sorted((d, log) for d, log in days.get(patient_id, {}).items() if log.is_log)
        patients.append(
            PatientSeries(
                patient_id=patient_id,
                dates=tuple(d for d, _ in logged),
                back_pain=tuple(log.back_pain for _, log in logged),
                leg_pain=tuple(log.leg_pain for _, log in logged),
                adherence=tuple(log.adherence for _, log in logged),
                red_flags=tuple(_day_red_flags(log) for _, log in logged),
                leg_side=tuple(log.leg_side for _, log in logged),
                events=tuple(sorted(events.get(patient_id, []), key=lambda e: e.date)),
            )
        )
    return DetectInput(patients=tuple(patients), last_date=last_date)


def _rounded(value: JsonValue) -> JsonValue:
    if isinstance(value, float):
        return round(value, 3)
    return value


def alerts_in_output_order(
    episodes_by_patient: Mapping[str, Iterable[AlertEpisode]],
) -> list[AlertEpisode]:
    """All alerts ordered by detected_on, then patient_id (then kind and metric)."""
    alerts = [e for episodes in episodes_by_patient.values() for e in episodes]
    alerts.sort(key=lambda e: (e.detected_on, e.patient_id, e.kind, e.metric or "", e.onset))
    return alerts


def json_lines(alerts: Iterable[AlertEpisode]) -> Iterator[str]:
    """One compact JSON object per alert, fields as §4 lists them, numbers to 3 decimals."""
    for alert in alerts:
        record = {key: _rounded(value) for key, value in alert.to_json_dict().items()}
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def write_cohort_csv(cohort: Cohort, stream: IO[str]) -> None:
    """A simulated cohort as a §4 CSV (logs as rows; events as event-only rows)."""
    write_series_csv((patient.series for patient in cohort.patients), stream)


def write_series_csv(
    patients: Iterable[PatientSeries], stream: IO[str], *, header: bool = True
) -> None:
    """Series as a §4 CSV with our columns: a row per log, then a row per event (an
    event-only row). `parse_detect_csv` reads back the same logs and events (`header=False`:
    rows only, for a file written in parts)."""
    # "\r\n" (RFC 4180): the writer then quotes any cell holding \r or \n, so a note with a
    # bare \r stays one cell (with "\n" it would not: a reader sees a new row).
    writer = csv.writer(stream, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for series in patients:
        for k, day in enumerate(series.dates):
            back = series.back_pain[k]
            leg = series.leg_pain[k]
            adherence = series.adherence[k] if series.adherence else None
            flags = series.red_flags[k] if series.red_flags else ()
            side = series.leg_side[k] if series.leg_side else None
            named = [flag for flag in flags if flag != UNSPECIFIED_RED_FLAG]
            writer.writerow(
                [
                    series.patient_id,
                    day.isoformat(),
                    "" if back is None else int(back),
                    "" if leg is None else int(leg),
                    "" if adherence is None else _fraction(adherence),
                    1 if flags else 0,
                    "",
                    "",
                    side or "",
                    ";".join(named),
                    "",
                    "",
                    "",
                ]
            )
        for event in series.events:
            writer.writerow(
                [
                    series.patient_id,
                    event.date.isoformat(),
                    "",
                    "",
                    "",
                    "",
                    event.event_type,
                    as_text_cell(event.note),
                    "",
                    "",
                    event.side or "",
                    as_text_cell(event.body_region or ""),
                    as_text_cell(event.mechanism or ""),
                ]
            )


# A cell a spreadsheet would run as a formula starts with one of these (OWASP, "CSV
# injection"); a quote first makes it text. A leading quote is itself escaped, so reading
# back (`from_text_cell`) can tell our quote from one the text began with.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def as_text_cell(text: str) -> str:
    """Free text as a cell no spreadsheet runs: "=1+1" is written "'=1+1"."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def from_text_cell(cell: str) -> str:
    """`as_text_cell` undone."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_STARTS) else cell


def _fraction(value: float) -> str:
    """Short when that reads back the same number (0.5, 1), else every digit it needs."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


def cohort_labels(cohort: Cohort) -> dict[str, JsonValue]:
    """The cohort's labels as JSON-ready data (what `rehab detect` output is scored against)."""
    return {
        "seed": cohort.seed,
        "preset": cohort.params.name,
        "start": cohort.start.isoformat(),
        "days": cohort.days,
        "regressions": [
            {
                "patient_id": r.patient_id,
                "metric": r.metric,
                "onset": r.onset.isoformat(),
                "end": r.end.isoformat(),
                "size": r.size,
                "shape": r.shape,
                "event_date": r.event_date.isoformat() if r.event_date else None,
            }
            for p in cohort.patients
            for r in p.regressions
        ],
        "adherence_drops": [
            {
                "patient_id": d.patient_id,
                "onset": d.onset.isoformat(),
                "end": d.end.isoformat(),
                "size": d.size,
            }
            for p in cohort.patients
            for d in p.adherence_drops
        ],
        "red_flags": [
            {"patient_id": p.series.patient_id, "date": day.isoformat()}
            for p in cohort.patients
            for day in p.red_flag_days
        ],
    }
