"""Questions outside what the model can answer get a clear refusal; supported ones, in the
wordings people use, still parse to their type (and the engine still answers them)."""

import pytest

from core.errors import RsSageError
from core.questions.question_parse import UnsupportedQuestionError, parse_question

UNSUPPORTED = [
    "What colour are the roofs?", "What color is the water?", "How far is the river?",
    "Is the school close to the river?", "What is in the north of the image?",
    "How big is the airport?", "How large is the lake?", "What is the size of the park?",
    "Is a commercial building on the left of a road present?", "Is there a square commercial building?",
    "Are there small buildings?", "Is the number of large water areas equal to the number of roads?",
    "When was the bridge built?", "What year was this taken?", "Why is the field brown?",
    "Who owns this land?", "Is it raining?", "What shape is the pond?", "What is the name of this city?",
    "How fast are the cars moving?", "What is the population of this town?", "How old are the houses?",
    "How tall is the tower?", "Which country is this?", "Tell me a joke about rivers",
]
SUPPORTED = {
    "Is there a harbour here?": "presence", "Are there any boats?": "presence", "Is a road present in the image?":
    "presence", "Can you see a bridge?": "presence", "Does this area contain a river?": "presence",
    "Is there an urban area?": "presence", "How many storage tanks are there?": "count",
    "Count the cars": "count", "Number of buildings?": "count", "How many planes?": "count",
    "Is this a rural or an urban area?": "rural_urban", "Rural or urban?": "rural_urban",
    "Is this area urban?": "rural_urban", "Is it rural?": "rural_urban",
    "What type of scene is this?": "scene", "What kind of area is this?": "scene",
    "What land use is this?": "scene", "What is this place?": "scene", "Classify this image": "scene",
    "What is here?": "open", "What is in the image?": "open", "Describe this area": "open",
    "What can you see?": "open",
    "Where are the storage tanks?": "where", "Show me the harbour": "where",
    "How much of this area is forest?": "share", "What percentage of the region is covered by water?": "share",
    "How much forest is there?": "share",
    "Are there more buildings than roads?": "comparison", "Is there less water than farmland?": "comparison",
    "Is the number of forests equal to the number of roads?": "comparison",
    "Is there a square?": "presence", "Is there a medium residential area?": "presence",
}


@pytest.mark.parametrize("question", UNSUPPORTED)
def test_unsupported_questions_get_a_clear_message(question):
    with pytest.raises(UnsupportedQuestionError) as info:
        parse_question(question)
    text = str(info.value)
    assert "cannot answer" in text and question in text
    for example in ("Is there a harbour here?", "How many storage tanks are there?", "rural or an urban"):
        assert example in text  # the message names what can be asked
    assert isinstance(info.value, RsSageError)  # every entry point shows it as a plain message


def test_at_least_twenty_unsupported_questions_are_listed():
    assert len(UNSUPPORTED) >= 20


@pytest.mark.parametrize(("question", "qtype"), list(SUPPORTED.items()))
def test_supported_wordings_parse_to_their_type(question, qtype):
    assert parse_question(question).type == qtype


def test_engine_refuses_and_still_answers():
    from helpers import fixture_tiles

    from core.model.engine import Engine

    engine = Engine.load(user_kb=False, views=1)
    tiles = fixture_tiles()[:2]
    with pytest.raises(UnsupportedQuestionError):
        engine.ask(tiles, "What colour are the roofs?")
    assert engine.ask(tiles, "Is there a river?")[0].answer in ("yes", "no")
    assert engine.ask(tiles, "Rural or urban?")[0].answer in ("rural", "urban")


@pytest.mark.parametrize("question", ["How much of this area is ?", "Where is the ?", "Show me",
                                      "Is there more the than a?", "Where are them?"])
def test_region_questions_that_name_nothing_are_refused(question):
    with pytest.raises(RsSageError, match="does not say what to look for"):
        parse_question(question)
