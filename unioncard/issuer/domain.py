"""The card lifecycle as plain rules: statuses, the transitions allowed between them, and who may
make each one. The state machine in ``issuer.services`` is the only code that changes a status,
and it asks this module first."""

from __future__ import annotations

from enum import StrEnum

from unioncard.errors import Conflict, ValidationError
from unioncard.i18n import N_, translate
from unioncard.registry.domain import Permission


class CardKind(StrEnum):
    PLASTIC = "plastic"
    VIRTUAL = "virtual"


class CardStatus(StrEnum):
    ORDERED = "ordered"
    APPROVED = "approved"
    IN_PRODUCTION = "in_production"
    PRODUCED = "produced"
    SHIPPED = "shipped"              # sent by the bureau to the regional organisation
    DELIVERED = "delivered"          # passed by the region to the primary organisation
    ISSUED = "issued"                # «Выдан»: handed to the member
    REFUSED = "refused"              # «Отказ»: the member did not take it (can be offered again)
    LOST = "lost"
    STOLEN = "stolen"
    DAMAGED = "damaged"
    BLOCKED = "blocked"
    REVOKED = "revoked"              # membership ended or consent withdrawn
    CANCELLED = "cancelled"
    REJECTED = "rejected"            # the region did not approve the order
    VOID = "void"                    # spoiled in production; the number is never used again


S = CardStatus
TERMINAL = frozenset({S.BLOCKED, S.REVOKED, S.CANCELLED, S.REJECTED, S.VOID})
# A member may have one card of each kind that is not in a terminal state.
ACTIVE = frozenset(S) - TERMINAL
# Numbers that a verifier must refuse from now on.
REVOKING = frozenset({S.BLOCKED, S.REVOKED, S.VOID})
LOSS = frozenset({S.LOST, S.STOLEN, S.DAMAGED})

# Reasons the system itself writes into a card's history: kept as these English words (and, for
# an ended membership, the leave reason's code after the prefix), shown in the reader's language.
REASON_CONSENT_WITHDRAWN = "consent to processing withdrawn"
REASON_MEMBERSHIP_ENDED = "membership ended: "
# A card moved in from the union's earlier registry (АИС) with its number and status.
REASON_MIGRATED = "moved from the earlier registry"
SYSTEM_REASONS = {REASON_CONSENT_WITHDRAWN: N_("consent to processing withdrawn"),
                  REASON_MIGRATED: N_("moved from the earlier registry"),
                  REASON_MEMBERSHIP_ENDED: N_("membership ended")}

STATUS_LABELS = {
    S.ORDERED: N_("ordered"), S.APPROVED: N_("approved"), S.IN_PRODUCTION: N_("in production"),
    S.PRODUCED: N_("produced"), S.SHIPPED: N_("sent to the region"), S.DELIVERED: N_("delivered to the organisation"),
    S.ISSUED: N_("issued"), S.REFUSED: N_("refused"), S.LOST: N_("lost"), S.STOLEN: N_("stolen"),
    S.DAMAGED: N_("damaged"), S.BLOCKED: N_("blocked"), S.REVOKED: N_("revoked"), S.CANCELLED: N_("cancelled"),
    S.REJECTED: N_("rejected"), S.VOID: N_("void (spoiled)"),
}
KIND_LABELS = {CardKind.PLASTIC: N_("plastic card"), CardKind.VIRTUAL: N_("virtual card")}

# (from, to) -> the permission needed; None = only the system (registry rules) makes it.
_P = Permission
TRANSITIONS: dict[tuple[CardStatus, CardStatus], Permission | None] = {
    (S.ORDERED, S.APPROVED): _P.APPROVE_CARDS,
    (S.ORDERED, S.REJECTED): _P.APPROVE_CARDS,
    (S.ORDERED, S.CANCELLED): _P.ORDER_CARDS,
    (S.APPROVED, S.CANCELLED): _P.ORDER_CARDS,
    (S.APPROVED, S.IN_PRODUCTION): _P.PRODUCE_CARDS,
    (S.IN_PRODUCTION, S.PRODUCED): _P.PRODUCE_CARDS,
    (S.IN_PRODUCTION, S.VOID): _P.PRODUCE_CARDS,
    (S.PRODUCED, S.VOID): _P.PRODUCE_CARDS,
    (S.PRODUCED, S.SHIPPED): _P.PRODUCE_CARDS,
    (S.SHIPPED, S.DELIVERED): _P.APPROVE_CARDS,
    (S.DELIVERED, S.ISSUED): _P.HAND_OUT_CARDS,
    (S.DELIVERED, S.REFUSED): _P.HAND_OUT_CARDS,
    (S.REFUSED, S.ISSUED): _P.HAND_OUT_CARDS,
    (S.ISSUED, S.LOST): _P.HAND_OUT_CARDS,
    (S.ISSUED, S.STOLEN): _P.HAND_OUT_CARDS,
    (S.ISSUED, S.DAMAGED): _P.HAND_OUT_CARDS,
    (S.LOST, S.BLOCKED): _P.HAND_OUT_CARDS,
    (S.STOLEN, S.BLOCKED): _P.HAND_OUT_CARDS,
    (S.DAMAGED, S.BLOCKED): _P.HAND_OUT_CARDS,
}
# Every card that exists can be revoked by the registry rules (membership ended, consent withdrawn).
for _status in ACTIVE:
    TRANSITIONS.setdefault((_status, S.REVOKED), None)
# A virtual card has no production: it is issued once approved.
VIRTUAL_TRANSITIONS = {
    (S.APPROVED, S.ISSUED): _P.HAND_OUT_CARDS,
}
PLASTIC_ONLY = frozenset({S.IN_PRODUCTION, S.PRODUCED, S.SHIPPED, S.DELIVERED, S.REFUSED, S.VOID})
# Transitions that need a reason.
NEEDS_REASON = frozenset({S.REJECTED, S.REFUSED, S.VOID})


class IllegalTransition(Conflict):
    code = "card_transition_not_allowed"
    message = N_("A card that is «%(from_label)s» cannot become «%(to_label)s»")

    def render(self, locale: str | None = None) -> str:
        # The status names are message ids too: translate them into the same language.
        labels = {"from_label": translate(STATUS_LABELS[CardStatus(self.params["from_status"])], locale),
                  "to_label": translate(STATUS_LABELS[CardStatus(self.params["to_status"])], locale)}
        if locale == "en":
            return self.message % dict(self.params, **labels)
        return translate(self.message, locale, **dict(self.params, **labels))


class ReasonRequired(ValidationError):
    code = "card_reason_required"
    message = N_("Please give a reason")


def allowed(kind: CardKind, current: CardStatus, target: CardStatus) -> bool:
    return required_permission(kind, current, target) is not False


def required_permission(kind: CardKind, current: CardStatus, target: CardStatus):
    """The permission a transition needs, None for system-only, or False if it is not allowed."""
    key = (CardStatus(current), CardStatus(target))
    if CardKind(kind) == CardKind.VIRTUAL:
        if key in VIRTUAL_TRANSITIONS:
            return VIRTUAL_TRANSITIONS[key]
        if key[1] in PLASTIC_ONLY or key[0] in PLASTIC_ONLY:
            return False
    if key in TRANSITIONS:
        return TRANSITIONS[key]
    return False


def check(kind: CardKind, current: CardStatus, target: CardStatus, reason: str | None):
    """Raise if the transition is not allowed or lacks a reason; return the permission it needs."""
    permission = required_permission(kind, current, target)
    if permission is False:
        raise IllegalTransition(from_status=CardStatus(current).value, to_status=CardStatus(target).value,
                                from_label=STATUS_LABELS[CardStatus(current)],
                                to_label=STATUS_LABELS[CardStatus(target)])
    if CardStatus(target) in NEEDS_REASON and not (reason or "").strip():
        raise ReasonRequired()
    return permission
