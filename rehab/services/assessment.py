"""Recording a clinical assessment: several findings of one visit, stored together.

An assessment often holds a full set of neurodynamic tests plus an observation (the seed case:
every test negative, and a large bruise); they are written in one transaction, with one access
check and one audit row, so a refused item stores none of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from rehab.db.models import Finding
from rehab.services import audit
from rehab.services.access import require_patient
from rehab.services.actors import Actor
from rehab.services.commands import FindingInput, InvalidInput
from rehab.services.time import clinic_today


def record_findings(
    session: Session, actor: Actor, patient_id: int, items: Sequence[FindingInput]
) -> list[Finding]:
    require_patient(session, actor, patient_id, "finding.write", clinician_only=True)
    if not items:
        raise InvalidInput("findings", "record at least one test, imaging result or observation")
    today = clinic_today()
    for item in items:
        if item.finding_date > today:
            raise InvalidInput("finding_date", f"is in the future (today is {today.isoformat()})")
    assert actor.user_id is not None
    findings = [
        Finding(patient_id=patient_id, author_user_id=actor.user_id, **item.model_dump())
        for item in items
    ]
    session.add_all(findings)
    session.flush()
    audit.commit(session)
    return findings
