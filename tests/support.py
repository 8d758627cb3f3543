"""Shared builders for tests: a small organisation tree with members and users."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from unioncard.registry import services
from unioncard.registry.actor import Actor
from unioncard.registry.models import Membership
from unioncard.registry.services import PersonData

PASSWORD = "correct horse battery"


@dataclass
class Tree:
    central: int
    region_a: int
    region_b: int
    territorial_a: int
    primary_a: int
    primary_a2: int
    primary_b: int
    members: dict = field(default_factory=dict)  # name -> membership id
    users: dict = field(default_factory=dict)  # login -> user id
    actors: dict = field(default_factory=dict)  # login -> Actor


def person(surname="Иванов", given="Иван", patronymic="Иванович", birth=date(1980, 5, 17), **kw) -> PersonData:
    return PersonData(surname=surname, given_name=given, patronymic=patronymic, birth_date=birth, **kw)


def build_tree(make_uow, system: Actor) -> Tree:
    with make_uow() as uow:
        central = services.create_organisation(uow, system, code="0", name="Общероссийский Профсоюз образования",
                                               level="central")
        region_a = services.create_organisation(uow, system, code="23", name="Краснодарская краевая организация",
                                                level="regional", parent_id=central.id, region_code="23")
        region_b = services.create_organisation(uow, system, code="21", name="Чувашская республиканская организация",
                                                level="regional", parent_id=central.id, region_code="21")
        territorial_a = services.create_organisation(uow, system, code="23-01", name="Сочинская городская организация",
                                                     level="territorial", parent_id=region_a.id)
        primary_a = services.create_organisation(uow, system, code="23-01-001", name="ППО школы № 1 г. Сочи",
                                                 level="primary", parent_id=territorial_a.id, kind="workers",
                                                 inn="7830002293")
        primary_a2 = services.create_organisation(uow, system, code="23-01-002", name="ППО школы № 2 г. Сочи",
                                                  level="primary", parent_id=territorial_a.id, kind="workers")
        primary_b = services.create_organisation(uow, system, code="21-001", name="ППО Чувашского госуниверситета",
                                                 level="primary", parent_id=region_b.id, kind="students")
        uow.commit()
        tree = Tree(central.id, region_a.id, region_b.id, territorial_a.id, primary_a.id, primary_a2.id, primary_b.id)
    with make_uow() as uow:
        for key, org_id, data in (
            ("ivanov", tree.primary_a, person()),
            ("shchyolokova", tree.primary_a, person("Щёлокова", "Анна", "Петровна", date(1975, 1, 2), sex="female")),
            ("petrov", tree.primary_a2, person("Петров", "Пётр", None, date(1990, 3, 4))),
            ("sidorova", tree.primary_b, person("Сидорова", "Мария", "Олеговна", date(2003, 9, 10))),
        ):
            membership = services.register_member(uow, system, org_id, data, category="working",
                                                  join_date=date(2015, 9, 1))
            tree.members[key] = membership.id
        uow.commit()
    with make_uow() as uow:
        # Chairperson logins live as long as a term of office: each primary gets its chairperson.
        for key, org_id in (("ivanov", tree.primary_a), ("petrov", tree.primary_a2), ("sidorova", tree.primary_b)):
            person_id = uow.session.get(Membership, tree.members[key]).person_id
            services.appoint_chairperson(uow, system, org_id, person_id, date(2024, 1, 1), date(2099, 12, 31))
        uow.commit()
    with make_uow() as uow:
        for login, role, org_id in (
            ("admin", "admin", tree.central),
            ("chair_a", "chairperson", tree.primary_a),
            ("chair_a2", "chairperson", tree.primary_a2),
            ("chair_b", "chairperson", tree.primary_b),
            ("region_a", "regional_staff", tree.region_a),
            ("region_b", "regional_staff", tree.region_b),
            ("bureau", "bureau_operator", tree.central),
        ):
            user = services.create_user(uow, system, login=login, password=PASSWORD, full_name=login, role=role,
                                        organisation_id=org_id)
            tree.users[login] = user.id
            tree.actors[login] = services.actor_for(user)
        uow.commit()
    return tree


class WebClient:
    """Flask's test client with CSRF tokens taken from the page, as a browser would."""

    def __init__(self, app):
        import re

        self.app = app
        self.client = app.test_client()
        self._token_re = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                                    r'name="csrf_token" value="([^"]+)"')

    def token(self, path: str = "/login") -> str:
        page = self.client.get(path, follow_redirects=True)
        match = self._token_re.search(page.get_data(as_text=True))
        assert match, f"no CSRF token on {path}"
        return match.group(1) or match.group(2)

    def login(self, login: str, password: str = PASSWORD):
        return self.client.post("/login", data={"csrf_token": self.token(), "login": login, "password": password})

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def post(self, path, data=None, token_from: str | None = None, **kw):
        data = dict(data or {})
        data.setdefault("csrf_token", self.token(token_from or "/login"))
        return self.client.post(path, data=data, **kw)


def letters(index: int) -> str:
    """A distinct Cyrillic word for each index (names may hold only letters)."""
    alphabet = "абвгдежзиклмнопрстуфхцчшэюя"
    word = ""
    while True:
        index, rest = divmod(index, len(alphabet))
        word = alphabet[rest] + word
        if index == 0:
            return word.capitalize()


def approved_cards(make_uow, tree, count: int, organisation: str = "primary_a", prefix: str = "Членова") -> list[int]:
    """``count`` new consenting members of one organisation, each with an approved plastic card."""
    from unioncard.issuer import services as cards
    from unioncard.registry.services import NewMember

    org_id = getattr(tree, organisation)
    system = Actor.system("test")
    entries = [NewMember(person(f"{prefix}-{letters(index)}", "Анна", "Сергеевна", date(1970, 1, 1) + timedelta(days=index),
                                sex="female"), "working", date(2015, 9, 1),
                         (("processing", date(2020, 1, 10), "paper"),)) for index in range(count)]
    with make_uow() as uow:
        membership_ids = services.register_new_members(uow, system, org_id, entries)
        uow.commit()
    region = "region_a" if organisation in ("primary_a", "primary_a2", "territorial_a") else "region_b"
    chair = {"primary_a": "chair_a", "primary_a2": "chair_a2", "primary_b": "chair_b"}[organisation]
    with make_uow() as uow:
        ordered = cards.order_cards(uow, tree.actors[chair], membership_ids).ordered
        cards.approve(uow, tree.actors[region], [c.id for c in ordered])
        uow.commit()
    return [c.id for c in ordered]


def union_keys(folder):
    """The union's key stores for a test: the operational keys that sign cards and event data,
    and the root key in a store of its own."""
    from unioncard.hsm import ceremony
    from unioncard.hsm.base import open_keystore
    from unioncard.hsm.domain import KeyRole

    operational = open_keystore(f"software:{folder / 'keys'}", "test keys", create=True)
    for role in (KeyRole.CARD_CREDENTIAL, KeyRole.CARD_CERTIFICATE, KeyRole.EVENT_BUNDLE):
        operational.generate(role)
    root = open_keystore(f"software:{folder / 'root'}", "root", roles={KeyRole.ROOT}, create=True)
    root.generate(KeyRole.ROOT)
    return ceremony.KeyStores(operational=operational, root=root)


def signing_keys(folder):
    """(operational key store, a checked trust bundle listing its keys), valid for a day."""
    from unioncard import clock
    from unioncard.hsm import trust
    from unioncard.hsm.domain import KeyRole

    stores = union_keys(folder)
    now = clock.now()
    data = trust.build(stores.root, stores.operational.list(), version=1, issued_at=now,
                       expires_at=now + timedelta(days=1))
    return stores.operational, trust.check(data, stores.root.active_key(KeyRole.ROOT).public_key, now)
