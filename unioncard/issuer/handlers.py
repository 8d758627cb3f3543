"""Registry rules that reach cards, run inside the registry change's own transaction.

- Membership ended (left, expelled, died…): the person's orders are cancelled and cards revoked.
- Transferred to another primary organisation: the person stays a member, so the card stays
  valid and moves with them to the new organisation.
- An organisation moved to another parent: its cards' copies of its path are rewritten.
- Consent to processing (section 1) withdrawn: pending orders are cancelled and every other card
  is revoked. Decision: the card is itself processing of the member's personal data by union
  bodies (name on the card, checks at events, partner checks), so without that consent no card
  of theirs may stay valid. A new card can be ordered once consent is given again.
"""

from __future__ import annotations

from sqlalchemy import func, select, update

from unioncard import events
from unioncard.issuer import domain as cd
from unioncard.issuer import services
from unioncard.issuer.models import Card
from unioncard.registry import audit
from unioncard.registry import domain as rd
from unioncard.registry.actor import Actor
from unioncard.registry.services import ConsentWithdrawn, MembershipEnded, OrganisationMoved, active_membership


@events.in_transaction(MembershipEnded)
def _membership_ended(uow, event: MembershipEnded) -> None:
    session = uow.session
    new_membership = active_membership(session, event.person_id)
    if event.reason == rd.LeaveReason.TRANSFERRED and new_membership is not None:
        for card in session.scalars(select(Card).where(Card.person_id == event.person_id,
                                                       Card.membership_id == event.membership_id)):
            if cd.CardStatus(card.status) in cd.ACTIVE:
                card.membership_id, card.organisation_id = new_membership.id, new_membership.organisation_id
                card.org_path = new_membership.org_path
                audit.record(session, Actor.system("registry-rules"), "card.transfer", "card", card.id,
                             new_membership.organisation_id, membership_id=new_membership.id)
        return
    services.revoke_cards_of_person(uow, event.person_id, cd.REASON_MEMBERSHIP_ENDED + event.reason,
                                    cancel_orders=True)


@events.in_transaction(OrganisationMoved)
def _organisation_moved(uow, event: OrganisationMoved) -> None:
    """Cards keep a copy of their organisation's path (for scope checks): rewrite it with the
    registry's. Numbers already given keep their region digits; cards not yet numbered take the
    new region's."""
    old = event.old_prefix
    uow.session.execute(update(Card).where(Card.org_path.like(old + "%"))
                        .values(org_path=event.new_prefix + func.substr(Card.org_path, len(old) + 1))
                        .execution_options(synchronize_session=False))
    if event.region_code:
        uow.session.execute(update(Card).where(Card.org_path.like(event.new_prefix + "%"), Card.number.is_(None))
                            .values(region_code=event.region_code).execution_options(synchronize_session=False))


@events.in_transaction(ConsentWithdrawn)
def _consent_withdrawn(uow, event: ConsentWithdrawn) -> None:
    if event.section == rd.ConsentSection.PROCESSING:
        services.revoke_cards_of_person(uow, event.person_id, cd.REASON_CONSENT_WITHDRAWN, cancel_orders=True)
