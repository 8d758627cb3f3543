"""``unioncard messages …``: the outbox's sender and its figures."""

from __future__ import annotations

import time

import click
from rich.console import Console

from unioncard import db
from unioncard.config import load_settings
from unioncard.i18n import N_, translate
from unioncard.messaging import domain as d
from unioncard.messaging import services as outbox
from unioncard.messaging.senders import open_sender

console = Console()


def senders_of(settings) -> dict:
    return {d.Channel.EMAIL: lambda: open_sender(settings.mail_channel),
            d.Channel.SMS: lambda: open_sender(settings.sms_channel)}


def links_of(settings):
    """A mailing's unsubscribe link for a consent: the public address of the page /u/<token>."""
    return lambda consent_id: f"{settings.public_url}/u/{d.unsubscribe_token(settings.secret_key, consent_id)}"


@click.group("messages", help=N_("Messages to members: the outbox and its sender."))
def messages_group() -> None:
    pass


@messages_group.command("deliver", help=N_("Send the messages that are due (with --watch: keep sending as they come)."))
@click.option("--watch", is_flag=True, help=N_("Keep running, looking for new messages every few seconds."))
@click.option("--every", default=5.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help=N_("Seconds between looks with --watch."))
def deliver(watch: bool, every: float) -> None:
    settings = load_settings()
    for text in (settings.mail_channel, settings.sms_channel):
        try:
            d.parse_channel(text)
        except d.ChannelAddressInvalid as exc:
            raise click.UsageError(translate(N_("The channel «%(channel)s» is not valid: %(why)s"),
                                             channel=text.split("@")[-1], why=str(exc)))
    engine = db.make_engine(settings.database_url)
    factory = db.make_session_factory(engine)
    rates = {d.Channel.EMAIL: settings.mail_per_second, d.Channel.SMS: settings.sms_per_second}
    try:
        while True:
            run = outbox.deliver_due(lambda: db.UnitOfWork(factory), senders_of(settings), per_second=rates,
                                     link_for=links_of(settings))
            if run.handled or not watch:
                console.print(translate(N_("Sent %(sent)s, to retry %(retried)s, failed %(failed)s, "
                                           "not sent (consent withdrawn) %(skipped)s"),
                                        sent=run.sent, retried=run.retried, failed=run.failed, skipped=run.skipped))
            for channel, reason in run.channel_errors.items():
                console.print(translate(N_("Channel %(channel)s is not working: %(reason)s"),
                                        channel=channel, reason=reason), style="red")
            if not watch:
                break
            time.sleep(every)
    finally:
        engine.dispose()
