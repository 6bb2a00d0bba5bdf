"""Who is acting: built once per request (web session or API token) or for a system job."""

from __future__ import annotations

from dataclasses import dataclass

from rehab.domain.vocabulary import Role


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    role: Role | None
    # Set for a patient acting for themselves, and for a clinician.
    patient_id: int | None = None
    clinician_id: int | None = None

    @property
    def is_system(self) -> bool:
        return self.user_id is None and self.role is None

    @property
    def is_patient(self) -> bool:
        return self.role is Role.PATIENT

    @property
    def is_clinician(self) -> bool:
        return self.role is Role.CLINICIAN

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


# Background jobs (detection, delivery) act as the system, not as a person.
SYSTEM = Actor(user_id=None, role=None)
ANONYMOUS = Actor(user_id=None, role=None)
