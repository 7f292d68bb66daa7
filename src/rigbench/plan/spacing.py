"""Physical fit of the cards on the board: a card `slot_width` expansion slots thick in a
slot covers the positions below it; a card in a covered slot needs a riser (or a thinner
card). Positions come from the board catalog where its documentation gives them; a physical
x1 slot takes a GPU only through a riser."""

from __future__ import annotations

from rigbench.plan.build import Build
from rigbench.plan.records import Finding

SOURCE = (
    "board catalog slot positions (vendor specifications) and each GPU's slot_width"
    " (catalog: TechPowerUp GPU Database)"
)


def check_spacing(build: Build) -> list[Finding]:
    board = build.board
    if board is None:
        return []
    findings: list[Finding] = []
    placed = []
    for g in build.gpus:
        if g.slot is None:
            continue
        slot = board.slot(g.slot)
        if slot.kind == "pcie" and slot.physical is not None and slot.physical < 16:
            findings.append(
                Finding(
                    id="pcie.riser_needed",
                    severity="info",
                    title=(
                        f"{g.label} in {slot.name}, a physical x{slot.physical} slot: it goes in"
                        " only through a riser"
                    ),
                    why=(
                        f"an x16 card does not fit an x{slot.physical} connector; a riser"
                        f" (mining-style USB or ribbon) carries x{slot.width} at best"
                    ),
                    fix="plan a riser and a frame or bracket for the card",
                    evidence={"gpu": g.index, "slot": slot.name, "physical": slot.physical},
                    source="board catalog (vendor manual)",
                    origin="plan",
                    gpus=[g.index],
                )
            )
        if slot.position is not None and g.spec.slot_width:
            placed.append((slot.position, int(round(g.spec.slot_width)), g))
    placed.sort(key=lambda p: p[0])
    for (pos, width, upper), (next_pos, _, lower) in zip(placed, placed[1:], strict=False):
        if next_pos < pos + width:
            findings.append(
                Finding(
                    id="pcie.slot_spacing",
                    severity="warning",
                    title=(
                        f"{upper.label} ({width} slots thick, position {pos}) covers {lower.slot}"
                        f" (position {next_pos}) where {lower.label} is planned"
                    ),
                    why=(
                        "the cards do not fit side by side: the lower one cannot be seated,"
                        " or two coolers are pressed together and the upper card starves"
                        " for air"
                    ),
                    fix=(
                        f"leave {pos + width - next_pos} position(s) free between them (a slot"
                        f" at position {pos + width} or lower), use risers or vertical mounts,"
                        " or thinner (blower or water-cooled) cards"
                    ),
                    evidence={
                        "upper_gpu": upper.index,
                        "lower_gpu": lower.index,
                        "upper_position": pos,
                        "lower_position": next_pos,
                        "slot_width": width,
                    },
                    source=SOURCE,
                    origin="plan",
                    gpus=[upper.index, lower.index],
                )
            )
    return findings
