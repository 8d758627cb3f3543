from datetime import date

import pytest

from unioncard.errors import ValidationError
from unioncard.registry import domain as d


def test_search_key_folds_yo_case_and_hyphens():
    assert d.search_key("  Щёлоков\u2013Ёлкин ") == "щелоков-елкин"
    assert d.search_key("ЁЛКИНА") == d.search_key("елкина")


def test_sort_name_orders_russian_alphabetically_bytewise():
    names = ["Яковлев", "Ёлкин", "Абрамов", "Елисеев", "Жуков"]
    keys = sorted(d.search_key(n).encode() for n in names)
    assert [k.decode() for k in keys] == ["абрамов", "елисеев", "елкин", "жуков", "яковлев"]


@pytest.mark.parametrize("value", ["7830002293", "500100732259"])
def test_valid_inn(value):
    assert d.validate_inn(value) == value


@pytest.mark.parametrize("value", ["7830002294", "12345", "78300022ab", "500100732258"])
def test_malformed_inn_is_refused_with_code(value):
    with pytest.raises(ValidationError) as info:
        d.validate_inn(value)
    assert info.value.code == "inn_invalid"
    assert "ИНН" in info.value.render("ru")


def test_birth_date_in_future_refused():
    with pytest.raises(ValidationError) as info:
        d.validate_birth_date(date(2100, 1, 1), date(2026, 1, 1))
    assert info.value.code == "birth_date_future"
    assert "будущем" in info.value.render("ru")


def test_leave_before_join_refused():
    with pytest.raises(ValidationError) as info:
        d.validate_membership_dates(date(1980, 1, 1), date(2020, 1, 1), date(2019, 12, 31), date(2026, 1, 1))
    assert info.value.code == "leave_before_join"


@pytest.mark.parametrize("raw,expected", [("8 (918) 123-45-67", "+79181234567"), ("+7 918 1234567", "+79181234567"),
                                          ("9181234567", "+79181234567")])
def test_phone_normalised(raw, expected):
    assert d.validate_phone(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "+1 202 555 0100", "телефон"])
def test_bad_phone_refused(raw):
    with pytest.raises(ValidationError):
        d.validate_phone(raw)


def test_names_must_be_letters():
    with pytest.raises(ValidationError) as info:
        d.validate_person_name("Иванов1", "Иван", None)
    assert info.value.code == "name_invalid"
    assert d.validate_person_name(" салтыков–щедрин ", "Михаил", "").surname == "салтыков-щедрин"


def test_parent_levels():
    d.check_parent_level(d.Level.PRIMARY, d.Level.REGIONAL)
    d.check_parent_level(d.Level.PRIMARY, d.Level.TERRITORIAL)
    with pytest.raises(ValidationError):
        d.check_parent_level(d.Level.TERRITORIAL, d.Level.PRIMARY)
    with pytest.raises(ValidationError):
        d.check_parent_level(d.Level.REGIONAL, None)


def test_scope_is_path_prefix():
    assert d.in_scope("/1/2/", "/1/2/3/")
    assert not d.in_scope("/1/2/", "/1/22/")


@pytest.mark.parametrize("typed, kept", [("О’Коннор", "О'Коннор"), ("Д‘Артаньян", "Д'Артаньян"), ("Müller", "Müller"),
                                         ("Ivanova", "Ivanova"), ("Салтыков-Щедрин", "Салтыков-Щедрин")])
def test_names_people_really_have_are_taken(typed, kept):
    assert d.validate_person_name(typed, "Анна", None).surname == kept


@pytest.mark.parametrize("typed, letters", [("Смиpнова", "p"), ("Ivanоva", "о"), ("Кузнецoва-Smith", "o")])
def test_a_word_mixing_russian_and_latin_letters_is_refused(typed, letters):
    with pytest.raises(ValidationError) as refused:
        d.validate_person_name(typed, "Анна", None)
    assert refused.value.code == "name_mixed_script" and refused.value.params["letters"] == letters
