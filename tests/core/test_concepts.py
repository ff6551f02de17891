import re

import pytest

from ca_core.concepts import (
    MAX_CONCEPTS,
    ConceptListError,
    parse_concepts,
    resolve_concept_names,
    shown,
    shown_list,
)
from ca_core.layers import parse_layers


def test_commas_and_newlines_split_and_trim_in_typed_order():
    assert parse_concepts(" dog ,grass\n  sky \r\ntraffic light") == ["dog", "grass", "sky", "traffic light"]


def test_single_name():
    assert parse_concepts("cat") == ["cat"]


@pytest.mark.parametrize("text", ["dog, sky,", "dog, sky,\n", "dog\nsky\n", "dog, sky , \n "])
def test_trailing_separator_is_tolerated(text):
    assert parse_concepts(text) == ["dog", "sky"]


@pytest.mark.parametrize("text", ["", "   ", ",", " , \n ,"])
def test_empty_list_is_an_error(text):
    with pytest.raises(ConceptListError, match="empty"):
        parse_concepts(text)


def test_non_text_is_an_error():
    with pytest.raises(ConceptListError, match="text"):
        parse_concepts(["dog"])


def test_empty_name_in_the_middle_names_its_position():
    with pytest.raises(ConceptListError, match=re.escape("position(s) [2]")):
        parse_concepts("dog,,sky")
    with pytest.raises(ConceptListError, match=re.escape("[2, 4]")):
        parse_concepts("dog\n\nsky\n \ngrass")


def test_leading_empty_name_is_an_error():
    with pytest.raises(ConceptListError, match=re.escape("[1]")):
        parse_concepts(", dog")


def test_duplicates_are_named_case_insensitively():
    with pytest.raises(ConceptListError) as info:
        parse_concepts("Dog, sky, dog, grass")
    message = str(info.value)
    assert "'Dog'" in message and "'dog'" in message
    assert "sky" not in message and "grass" not in message


def test_exact_duplicates_are_named_once():
    with pytest.raises(ConceptListError, match=re.escape("['sky']")):
        parse_concepts("sky, dog, sky")


def test_at_most_max_concepts():
    names = [f"c{i}" for i in range(MAX_CONCEPTS)]
    assert parse_concepts(", ".join(names)) == names
    with pytest.raises(ConceptListError, match=f"{MAX_CONCEPTS + 1} names; at most {MAX_CONCEPTS}"):
        parse_concepts(", ".join(names + ["one more"]))


def test_max_concepts_can_be_lowered():
    with pytest.raises(ConceptListError, match="at most 2"):
        parse_concepts("a, b, c", max_concepts=2)


KNOWN = ["dog", "Grass", "sky", "tree"]


def test_resolve_in_requested_order():
    assert resolve_concept_names("sky, dog", KNOWN) == [2, 0]
    assert resolve_concept_names("tree\ndog\nsky", KNOWN) == [3, 0, 2]


def test_resolve_is_case_insensitive():
    assert resolve_concept_names("DOG, grass", KNOWN) == [0, 1]


def test_resolve_unknown_names_lists_the_known_ones():
    with pytest.raises(ConceptListError) as info:
        resolve_concept_names("dog, cat", KNOWN)
    message = str(info.value)
    assert "['cat']" in message
    assert str(KNOWN) in message


def test_resolve_rejects_an_empty_request():
    with pytest.raises(ConceptListError):
        resolve_concept_names(" ", KNOWN)


LONG = "x" * 10_000


def test_a_message_quotes_a_name_shortened_and_a_list_to_its_first_names():
    assert shown("dog") == "'dog'"
    assert shown(LONG) == repr("x" * 39 + "…")
    assert shown_list([f"c{i}" for i in range(11)]) == "['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7' and 3 more]"


@pytest.mark.parametrize("call", [
    lambda: parse_concepts(", ".join(f"{LONG}{i}" for i in range(65))),  # too many
    lambda: parse_concepts(", ".join([LONG, LONG.upper()] * 20)),  # repeated
    lambda: resolve_concept_names(", ".join(f"{LONG}{i}" for i in range(64)), [f"{LONG}{i}" for i in range(64, 128)]),
    lambda: parse_layers(LONG, 19),
    lambda: parse_layers(f"3-{LONG}", 19),
    lambda: parse_layers("9" * 10_000, 19),
])
def test_messages_stay_readable_whatever_was_typed(call):
    with pytest.raises(ValueError) as error:
        call()
    assert 20 < len(str(error.value)) <= 600, str(error.value)
