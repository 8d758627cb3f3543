"""Every page of every role at 390 px in Chromium: nothing may spill sideways off a phone screen.
A union with something on every page (members, cards in several states, a batch, an event with a
desk and check-ins, a partner key, a virtual card) is built once; then each role's browser opens
every GET page of the app that answers it with HTML, and the document must be no wider than the
screen (a wide table may scroll inside its own box). Pages found wider are listed with their widths."""

from __future__ import annotations

import os
import re
from pathlib import Path
from datetime import date

import pytest

from tests.station_support import enrol, export_trust, issued_cards, make_event, publish
from tests.support import PASSWORD, approved_cards, union_keys
from tests.test_access_sweep import fill, routes
from unioncard.clock import today as union_today

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}
ROLES = ("admin", "region_a", "chair_a", "bureau", "events")
# Pages that only a query string reaches: the list of organisations found by name.
EXTRA_PAGES = [("registry.find", "/registry/find?code=ППО школы")]
# The user guide's pictures (docs/guide/img) are taken here, so they show the pages as they are:
# scripts/guide_pictures.sh runs this test with UNIONCARD_SCREENSHOTS set to that folder.
SCREENSHOTS = os.environ.get("UNIONCARD_SCREENSHOTS")
GUIDE_PAGES = {
    ("chair_a", "registry.organisation"), ("chair_a", "registry.members"), ("chair_a", "registry.member"),
    ("chair_a", "registry.import_members"), ("chair_a", "cards.organisation"), ("chair_a", "cards.hand_out"),
    ("chair_a", "cards.card"), ("region_a", "cards.approvals"), ("region_a", "reports.coverage"),
    ("region_a", "registry.organisation"), ("bureau", "bureau.index"), ("bureau", "bureau.batch"),
    ("events", "events.index"), ("events", "events.event"), ("events", "events.duplicates"),
    ("admin", "partners.index"), ("admin", "partners.key"), ("admin", "registry.organisation"),
    ("chair_a", "cards.virtual"), ("admin", "users.index"), ("admin", "users.user"), ("admin", "users.chairperson"),
    ("events", "events.roster_list"), ("events", "events.edit"),
}


@pytest.fixture
def full_union(app, make_uow, tree, tmp_path, session_factory):
    from unioncard.issuer import services as cards
    from unioncard.issuer.models import Card
    from unioncard.partner import services as partners
    from unioncard.personalization import services as bureau
    from unioncard.registry import services
    from unioncard.registry.actor import Actor

    system = Actor.system("test")
    stores = union_keys(tmp_path)
    export_trust(make_uow, stores)
    app.extensions["unioncard"]._signer = stores.operational
    held = issued_cards(make_uow, tree, 3, stores.operational, prefix="Константинопольская-Длиннофамильная")
    approved_cards(make_uow, tree, 2, prefix="Ожидающая")
    with make_uow() as uow:
        batch = bureau.create_batches(uow, tree.actors["bureau"])[0]
        services.create_user(uow, system, login="events", password=PASSWORD, full_name="Организатор мероприятий",
                             role="event_staff", organisation_id=tree.central)
        services.give_consent(uow, system, tree.members["petrov"], "processing", date(2020, 1, 1), "paper")
        virtual = cards.order_cards(uow, tree.actors["chair_a2"], [tree.members["petrov"]], "virtual").ordered[0]
        uow.commit()
    with make_uow() as uow:
        cards.approve(uow, tree.actors["region_a"], [virtual.id])
        card = uow.session.get(Card, virtual.id)
        cards.transition_many(uow, system, [card], "issued")
        token = cards.new_private_link(uow, tree.actors["chair_a2"], virtual.id)
        key, _secret = partners.create_key(uow.session, tree.actors["admin"], "Магазин «Книжный мир»", "general", 100)
        uow.commit()
        key_id = key.id
    event_id = make_event(make_uow, tree, stores, roster=[h.number for h in held])
    station_id, _desk_token = enrol(make_uow, event_id, "Стол регистрации № 1 у главного входа")
    publish(make_uow, event_id, stores)
    from unioncard.registry.models import Membership
    from unioncard.statistics import services as stats

    year = union_today().year
    with make_uow() as uow:
        stats.open_campaign(uow, tree.actors["admin"], year, date(year + 1, 2, 1))
        stats.save_passport(uow, tree.actors["chair_a"], tree.primary_a, {
            "institution_type": "school", "employees_total": "40", "employees_women": "30", "employees_youth": "6",
            "founded_on": "1985-09-01", "legal_entity": "yes", "phone": "+7 862 000-00-01"})
        position = stats.add_position(uow, tree.actors["chair_a"], tree.primary_a,
                                      uow.session.get(Membership, tree.members["ivanov"]).person_id, "chairperson",
                                      date(2024, 1, 1), is_paid=True)
        uow.commit()
    # A mailing (its progress page) and an application waiting in chair_a's queue.
    from unioncard.members import consent_text, joining
    from unioncard.members.models import MembershipApplication
    from unioncard.messaging import mailings

    with make_uow() as uow:
        mailing_id = mailings.create_mailing(uow, tree.actors["region_a"], mailings.Audience(tree.region_a),
                                             "Слёт молодых педагогов Кубани", "Приглашаем на краевой слёт.").id
    # A job of region_a's, still waiting (its page: the state, the progress bar, the way back).
    from unioncard.jobs import services as jobs
    from unioncard.registry import jobs as registry_jobs
    from unioncard.registry.models import Organisation

    with make_uow() as uow:
        region_path = uow.session.get(Organisation, tree.region_a).path
        job_id = jobs.submit(uow, tree.actors["region_a"], registry_jobs.MEMBERS_EXPORT,
                             {"organisation_id": tree.region_a}, region_path).id
        uow.commit()
    with make_uow() as uow:
        application_id = joining.apply(uow, joining.Application(
            tree.primary_a, "Константинопольская-Длиннофамильная", "Ольга", "Игоревна", date(1994, 4, 12), "female",
            "working", "olga.konstantinopolskaya-dlinnofamilnaya@school1.example", consent_text.VERSION, True, True,
            True), "test-secret")
    with make_uow() as uow:
        waiting = uow.session.get(MembershipApplication, application_id)
        waiting.status, waiting.confirmed_at = "waiting", waiting.created_at
        uow.commit()
    return {"year": year, "position_id": position.id, "organisation_id": tree.primary_a, "membership_id": tree.members["ivanov"], "card_id": held[0].id,
            "batch_id": batch.id, "event_id": event_id, "station_id": station_id, "key_id": key_id,
            "token": token, "fmt": "pdf", "code": "23-01-001", "filename": "index.html",
            "user_id": tree.users["chair_a"], "person_id": held[0].person_id, "primary_id": tree.primary_a,
            "mailing_id": mailing_id, "section": "partner_transfer", "application_id": application_id,
            "job_id": job_id}


# What a page must never show a volunteer: a placeholder left unfilled, a Python None, or a code
# word of the system (a card status, a role, a job state) instead of its Russian label.
CODE_WORDS = {"ordered", "approved", "in_production", "produced", "shipped", "delivered", "issued", "refused",
              "lost", "stolen", "damaged", "blocked", "revoked", "cancelled", "rejected", "void", "completed",
              "pending", "processing", "failed", "delegate", "guest", "staff", "chairperson", "regional_staff",
              "bureau_operator", "event_staff", "plastic", "virtual", "roster", "members", "None"}
LEFTOVERS: dict[str, list[str]] = {}


def untranslated(text: str) -> list[str]:
    found = re.findall(r"%\([a-z_]+\)s|\{\{|\}\}|\{[a-z_]+\}", text)
    found += sorted({w for w in re.findall(r"(?<![\w/.@-])[A-Za-z_]+(?![\w/.@-])", text) if w in CODE_WORDS})
    return found


# The elements sticking out furthest to the right (tag.class and width), to say what to fix.
WIDEST = """() => {
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.right > 391) {
      let inScroller = false;
      for (let p = el.parentElement; p; p = p.parentElement) {
        const o = getComputedStyle(p).overflowX;
        if (o === 'auto' || o === 'scroll' || o === 'hidden') { inScroller = true; break; }
      }
      if (!inScroller) out.push([Math.round(r.right), el.tagName.toLowerCase() + (el.className ? '.' + el.className : '')]);
    }
  }
  out.sort((a, b) => b[0] - a[0]);
  return out.slice(0, 3).map(x => x[1] + ':' + x[0]).join(' ');
}"""


def page_widths(browser, base, login, values, app) -> dict[str, int]:
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, locale="ru-RU")
    page = context.new_page()
    csp = []
    page.on("console", lambda m: csp.append(f"{page.url}: {m.text}") if "Content Security Policy" in m.text else None)
    page.goto(base + "/login")
    page.fill("#login", login)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_load_state()
    widths = {}
    pages = []
    for rule in routes(app):
        if "GET" not in rule.methods or rule.rule.startswith(("/station-api", "/api/v1/docs/ui", "/api/v1/openapi")) \
                or re.search(r"\.(xlsx|pdf|bin|json|png|svg|<any[^>]*>)$", rule.rule):
            continue  # files, not pages
        pages.append((rule.endpoint, fill(rule, values)))
    pages += EXTRA_PAGES
    for endpoint, path in pages:
        response = page.goto(base + path)
        if response is None or response.status != 200 or "text/html" not in response.headers.get("content-type", ""):
            continue
        if SCREENSHOTS and (login, endpoint) in GUIDE_PAGES:
            page.screenshot(path=str(Path(SCREENSHOTS) / f"{login}-{endpoint}.png"), full_page=False)
        width = page.evaluate("document.documentElement.scrollWidth")
        widths[path] = width
        if not path.startswith("/api/v1/docs"):  # the partners' API reference (Swagger UI) is for programmers
            said = untranslated(page.evaluate("document.body.innerText"))
            if said:
                LEFTOVERS[f"{login} {path}"] = said
        if width > PHONE["width"] + 1:
            widths[path] = (width, page.evaluate(WIDEST))
    context.close()
    # Nothing on any page may be blocked by the CSP (an inline style or script would be).
    assert csp == [], csp
    return widths


def test_every_page_of_every_role_fits_a_phone(browser, live_server, full_union, app):
    LEFTOVERS.clear()
    too_wide = {}
    seen = 0
    for login in ROLES:
        widths = page_widths(browser, live_server, login, full_union, app)
        seen += len(widths)
        too_wide.update({f"{login} {path}": width for path, width in widths.items() if isinstance(width, tuple)})
    assert seen >= 40
    assert too_wide == {}, "\n".join(f"{k}: {v}" for k, v in sorted(too_wide.items()))
    # No page shows a raw placeholder or an English code word where Russian belongs.
    assert LEFTOVERS == {}, "\n".join(f"{k}: {v}" for k, v in sorted(LEFTOVERS.items()))


def test_what_cannot_be_undone_asks_first(browser, live_server, full_union, session_factory):
    """A card reported lost is blocked for good: the button asks, and «Отмена» leaves the card as it was."""
    from unioncard.issuer.models import Card

    context = browser.new_context(viewport=PHONE, is_mobile=True, locale="ru-RU")
    page = context.new_page()
    page.goto(live_server + "/login")
    page.fill("#login", "chair_a")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_load_state()
    page.goto(f"{live_server}/cards/{full_union['card_id']}")
    questions = []

    def answer(dialog, accept):
        questions.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.click("button[value=lost]")
    page.wait_for_timeout(300)
    with session_factory() as s:
        assert s.get(Card, full_union["card_id"]).status == "issued"
    page.once("dialog", lambda d: answer(d, True))
    page.click("button[value=lost]")
    page.wait_for_load_state()
    with session_factory() as s:
        assert s.get(Card, full_union["card_id"]).status == "blocked"
    assert len(questions) == 2 and "навсегда" in questions[0]
    context.close()


def test_the_guide_shows_only_pictures_this_test_takes():
    """Every picture the user guide shows is one the browser test takes (so none goes stale), and exists."""
    guide = Path(__file__).resolve().parent.parent / "docs" / "guide"
    shown = set()
    for page in guide.glob("*.md"):
        shown.update(re.findall(r"\(img/([^)]+\.png)\)", page.read_text(encoding="utf-8")))
    taken = {f"{login}-{endpoint}.png" for login, endpoint in GUIDE_PAGES}
    assert shown and shown <= taken, shown - taken
    assert all((guide / "img" / name).exists() for name in shown)
    assert {p.stem.split("-")[0] for p in guide.glob("*.md")} >= {"chairperson", "region", "bureau", "events",
                                                                   "admin", "partner"}
