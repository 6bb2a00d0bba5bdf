"""The clinic's starting exercise library: common spine-rehabilitation exercises.

Seeded by `rehab demo load` and by `rehab db seed-library`; re-seeding updates by slug and
never duplicates.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rehab.db.models import Exercise


class LibraryItem(NamedTuple):
    slug: str
    name: str
    body_region: str
    instructions: str
    sets: int
    reps: int
    hold_seconds: int


EXERCISES: tuple[LibraryItem, ...] = (
    LibraryItem(
        "abdominal-bracing",
        "Abdominal bracing",
        "core",
        "Lying on your back, knees bent: gently tighten the lower tummy as if bracing "
        "for a cough, keep breathing.",
        3,
        10,
        10,
    ),
    LibraryItem(
        "pelvic-tilt",
        "Pelvic tilt",
        "lumbar",
        "Lying on your back, knees bent: flatten the low back into the floor by tilting "
        "the pelvis, then relax.",
        2,
        10,
        5,
    ),
    LibraryItem(
        "knee-to-chest",
        "Single knee to chest",
        "lumbar",
        "Lying on your back: draw one knee towards the chest with both hands; alternate sides.",
        2,
        5,
        20,
    ),
    LibraryItem(
        "cat-camel",
        "Cat–camel",
        "lumbar",
        "On hands and knees: slowly round the back up, then let it sag gently; "
        "move within comfort.",
        2,
        10,
        0,
    ),
    LibraryItem(
        "bird-dog",
        "Bird dog",
        "core",
        "On hands and knees: reach one arm forward and the opposite leg back, keep the "
        "pelvis level; alternate.",
        3,
        8,
        5,
    ),
    LibraryItem(
        "dead-bug",
        "Dead bug",
        "core",
        "On your back, hips and knees at 90°: lower the opposite arm and leg slowly "
        "while keeping the low back still.",
        3,
        8,
        0,
    ),
    LibraryItem(
        "glute-bridge",
        "Glute bridge",
        "hip",
        "On your back, knees bent: squeeze the buttocks and lift the hips until "
        "shoulders, hips and knees line up.",
        3,
        10,
        3,
    ),
    LibraryItem(
        "side-plank-knees",
        "Side plank on knees",
        "core",
        "On your side, knees bent, elbow under shoulder: lift the hips and hold.",
        3,
        3,
        20,
    ),
    LibraryItem(
        "front-plank",
        "Front plank",
        "core",
        "On forearms and toes (or knees): hold a straight line from head to heels.",
        3,
        3,
        20,
    ),
    LibraryItem(
        "prone-press-up",
        "Prone press-up (McKenzie extension)",
        "lumbar",
        "Lying face down, hands under shoulders: press the upper body up, letting the "
        "hips stay down.",
        2,
        10,
        2,
    ),
    LibraryItem(
        "sciatic-nerve-slider",
        "Sciatic nerve slider",
        "nerve mobility",
        "Sitting: straighten the knee while lifting the head, bend the knee while "
        "lowering the head. Gentle, no strong pulling.",
        2,
        10,
        0,
    ),
    LibraryItem(
        "femoral-nerve-slider",
        "Femoral nerve slider",
        "nerve mobility",
        "Side lying: take the top leg back while bending the knee and tucking the chin; "
        "gentle and pain-free.",
        2,
        10,
        0,
    ),
    LibraryItem(
        "clamshell",
        "Clamshell",
        "hip",
        "Side lying, knees bent: open the top knee keeping the feet together and the pelvis still.",
        3,
        12,
        0,
    ),
    LibraryItem(
        "hamstring-stretch",
        "Hamstring stretch",
        "hip",
        "On your back: hold the thigh up with the knee bent, straighten the knee until "
        "a stretch is felt.",
        2,
        3,
        30,
    ),
    LibraryItem(
        "piriformis-stretch",
        "Piriformis stretch",
        "hip",
        "On your back: cross one ankle over the other knee and draw the thighs towards the chest.",
        2,
        3,
        30,
    ),
    LibraryItem(
        "hip-flexor-stretch",
        "Hip flexor stretch (half kneeling)",
        "hip",
        "Half kneeling: tuck the pelvis under and shift forward until the front of the "
        "back hip stretches.",
        2,
        3,
        30,
    ),
    LibraryItem(
        "lumbar-rotation",
        "Supine lumbar rotation",
        "lumbar",
        "On your back, knees bent: let both knees fall slowly to one side, then the other.",
        2,
        10,
        3,
    ),
    LibraryItem(
        "childs-pose",
        "Child's pose",
        "lumbar",
        "Kneeling: sit back towards the heels with the arms reaching forward.",
        2,
        3,
        20,
    ),
    LibraryItem(
        "thoracic-extension",
        "Thoracic extension over a towel",
        "thoracic",
        "On your back with a rolled towel across the upper back: support the head and "
        "extend over the towel.",
        2,
        8,
        3,
    ),
    LibraryItem(
        "wall-squat",
        "Wall squat",
        "lower limb",
        "Back against a wall: slide down to a comfortable depth and back up.",
        3,
        10,
        0,
    ),
    LibraryItem(
        "sit-to-stand",
        "Sit to stand",
        "lower limb",
        "From a chair, without using the hands: stand up tall and sit down slowly.",
        3,
        10,
        0,
    ),
    LibraryItem(
        "hip-hinge",
        "Hip hinge with a dowel",
        "movement",
        "Standing, a stick along the spine touching head, upper back and pelvis: bend "
        "at the hips keeping all three in contact.",
        3,
        10,
        0,
    ),
    LibraryItem(
        "pallof-press",
        "Pallof press",
        "core",
        "Standing side-on to a band anchor: press the band straight out and resist the rotation.",
        3,
        10,
        3,
    ),
    LibraryItem(
        "step-up",
        "Step-up",
        "lower limb",
        "Step up onto a low step leading with one leg, then step down with control.",
        3,
        10,
        0,
    ),
    LibraryItem(
        "single-leg-balance",
        "Single-leg balance",
        "balance",
        "Stand on one leg near support; progress by closing the eyes.",
        3,
        3,
        30,
    ),
    LibraryItem(
        "prone-hip-extension",
        "Prone hip extension",
        "hip",
        "Lying face down: lift one straight leg a little using the buttock, not the back.",
        3,
        10,
        3,
    ),
    LibraryItem(
        "walking",
        "Walking program",
        "conditioning",
        "Walk at a comfortable pace; build the duration as prescribed (reps = minutes).",
        1,
        20,
        0,
    ),
)


def seed_exercise_library(session: Session) -> int:
    """Insert missing library items and refresh existing ones; returns how many were new."""
    existing = {e.slug: e for e in session.scalars(sa.select(Exercise))}
    added = 0
    for item in EXERCISES:
        exercise = existing.get(item.slug)
        if exercise is None:
            exercise = Exercise(slug=item.slug)
            session.add(exercise)
            added += 1
        exercise.name = item.name
        exercise.body_region = item.body_region
        exercise.instructions = item.instructions
        exercise.default_sets = item.sets
        exercise.default_reps = item.reps
        exercise.default_hold_seconds = item.hold_seconds
    session.flush()
    return added
