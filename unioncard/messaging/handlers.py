"""Messages a card's life sends its member, queued in the card change's own transaction (so a
change rolled back sends nothing): ready for pickup at their primary organisation, and blocked.
They go to the member's e-mail, else their phone, whatever consent section 3 says: they are about
the member's own card, not news."""

from __future__ import annotations

from unioncard import events
from unioncard.i18n import N_, translate
from unioncard.issuer import domain as cd
from unioncard.issuer.models import Card
from unioncard.issuer.services import CardStatusChanged
from unioncard.messaging import domain as d
from unioncard.messaging import services as outbox
from unioncard.registry.models import Organisation, Person

CARD_READY_SUBJECT = N_("Your union card is ready")
CARD_READY_BODY = N_("Your union card %(number)s is ready. Collect it at your primary organisation: %(organisation)s.")
CARD_BLOCKED_SUBJECT = N_("Your union card is blocked")
CARD_BLOCKED_BODY = N_("Your union card %(number)s is blocked and is no longer valid. If you did not ask for "
                       "this, contact your primary organisation: %(organisation)s.")

MESSAGES = {cd.CardStatus.DELIVERED: (d.Kind.CARD_READY, CARD_READY_SUBJECT, CARD_READY_BODY),
            cd.CardStatus.BLOCKED: (d.Kind.CARD_BLOCKED, CARD_BLOCKED_SUBJECT, CARD_BLOCKED_BODY)}


@events.in_transaction(CardStatusChanged)
def _card_status_changed(uow, event: CardStatusChanged) -> None:
    message = MESSAGES.get(event.to_status)
    if message is None:
        return
    session = uow.session
    card = session.get(Card, event.card_id)
    person = session.get(Person, card.person_id)
    address = (d.Channel.EMAIL, person.email) if person.email else (d.Channel.SMS, person.phone)
    if not address[1]:
        return
    from unioncard.issuer.cardnumber import format as format_number

    kind, subject, body = message
    organisation = session.get(Organisation, card.organisation_id).name
    outbox.enqueue(session, channel=address[0], address=address[1], kind=kind, subject=translate(subject, "ru"),
                   body=translate(body, "ru", number=format_number(card.number) if card.number else "",
                                  organisation=organisation), person_id=person.id)
