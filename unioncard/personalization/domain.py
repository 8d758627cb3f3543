"""The bureau's rules in plain Python: how approved cards are cut into batches, the stages a
card passes through in a run, and what a run may do after a crash.

A card's stages in a batch:

    queued ─► encoding ─► encoded ─► printing ─► done
                 │                       │
                 └──► spoiled            └──► encoded   (the print job failed: print again)

``encoding`` and ``printing`` are written *before* the device is touched, so after a crash the
run knows which card may be half made: a card found ``encoding`` is spoiled (its chip may hold
part of a credential) and made again under a new number; a print job found unfinished is looked
up on the printer by its title before anything is printed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from unioncard.i18n import N_


class Stage(StrEnum):
    QUEUED = "queued"
    ENCODING = "encoding"
    ENCODED = "encoded"
    PRINTING = "printing"
    DONE = "done"
    SPOILED = "spoiled"


class BatchStatus(StrEnum):
    OPEN = "open"              # cards reserved, not all made yet
    PRODUCED = "produced"      # every card done (or spoiled and made again)
    SHIPPED = "shipped"        # sent to the region


class Encoding(StrEnum):
    CHIP = "chip"    # the UnionCard chip application: credential, on-card key, certificate
    UID = "uid"      # a plain contactless card whose UID is bound to the number (weaker: UIDs can be copied)
    NONE = "none"    # printed only


class JobStatus(StrEnum):
    SUBMITTING = "submitting"  # recorded, maybe not yet accepted by the printer
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    FAILED = "failed"


STAGE_LABELS = {Stage.QUEUED: N_("waiting"), Stage.ENCODING: N_("chip being written"),
                Stage.ENCODED: N_("chip written"), Stage.PRINTING: N_("printing"), Stage.DONE: N_("ready"),
                Stage.SPOILED: N_("spoiled")}
BATCH_LABELS = {BatchStatus.OPEN: N_("in production"), BatchStatus.PRODUCED: N_("produced"),
                BatchStatus.SHIPPED: N_("sent to the region")}
JOB_LABELS = {JobStatus.SUBMITTING: N_("being sent to the printer"), JobStatus.SUBMITTED: N_("at the printer"),
              JobStatus.COMPLETED: N_("printed"), JobStatus.FAILED: N_("failed")}
ENCODING_LABELS = {Encoding.CHIP: N_("chip with signed credential"), Encoding.UID: N_("card UID bound to the number"),
                   Encoding.NONE: N_("print only")}

# Stages a card may move to from each stage.
NEXT = {
    Stage.QUEUED: {Stage.ENCODING, Stage.ENCODED},
    Stage.ENCODING: {Stage.ENCODED, Stage.SPOILED, Stage.QUEUED},
    Stage.ENCODED: {Stage.PRINTING, Stage.SPOILED},
    Stage.PRINTING: {Stage.DONE, Stage.ENCODED},
    Stage.DONE: {Stage.SPOILED},
    Stage.SPOILED: set(),
}
MAX_BATCH_SIZE = 5_000


def can_move(current: Stage, target: Stage) -> bool:
    return Stage(target) in NEXT[Stage(current)]


def plan_batches(cards_by_region: dict[str, list[int]], max_size: int) -> list[tuple[str, list[int]]]:
    """Cut each region's cards (in the order given) into batches of at most ``max_size``; a
    batch never mixes regions, since it is shipped to one region."""
    if not 1 <= max_size <= MAX_BATCH_SIZE:
        raise ValueError(max_size)
    plan = []
    for region, card_ids in sorted(cards_by_region.items()):
        for start in range(0, len(card_ids), max_size):
            plan.append((region, card_ids[start:start + max_size]))
    return plan


@dataclass
class Progress:
    total: int = 0
    by_stage: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.by_stage.get(Stage.DONE, 0)

    @property
    def spoiled(self) -> int:
        return self.by_stage.get(Stage.SPOILED, 0)

    @property
    def to_make(self) -> int:
        """Cards still to finish (spoiled ones are replaced by new items, not counted)."""
        return self.total - self.spoiled

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.to_make) if self.to_make else 100

    @property
    def finished(self) -> bool:
        return self.to_make > 0 and self.done == self.to_make
