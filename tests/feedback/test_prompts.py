"""Tests for ovip.feedback.prompts: the paper's prompts (Appendix I) and strict score parsing."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovip.feedback.prompts import (
    DESCRIPTION_PROMPT,
    JUDGE_PROMPT,
    clean_description,
    description_problem,
    description_prompt,
    judge_prompt,
    parse_score,
)

# Valid replies, in the forms LLM judges write them.
VALID = [
    ("Score: 7", 7.0),
    ("Score: [7]\n", 7.0),  # the format Table 9 asks for
    ("score:3", 3.0),
    ("SCORE : 10", 10.0),
    ("Score：8", 8.0),  # full-width colon, as the authors' regex
    ("Score: 0", 0.0),
    ("Score: 6.5", 6.5),
    ("Score: [ 9 ]", 9.0),
    ("Score: 8/10", 8.0),
    ("Score: 8/10.", 8.0),
    ("score: 7 / 10", 7.0),
    ("Score: 10/10", 10.0),
    ("**Score:** 8/10", 8.0),
    ("**Score**: 8", 8.0),
    ("Score: **8**", 8.0),
    ("Score: *7*/10", 7.0),
    ("## Score: 5", 5.0),
    ("Score: 8.5 out of 10", 8.5),
    ("Score: 8 out of ten", 8.0),
    ("Score: 8 (out of 10)", 8.0),
    ("Score: 8 of 10", 8.0),
    ("Score: 8 out of a possible 10", 8.0),
    ("Score: 8 on a scale of 10", 8.0),
    ("Score: 8 on a scale of 1 to 10", 8.0),
    ("Score: 8 on a scale from 0 to 10", 8.0),
    ("Score: 8 (0-10)", 8.0),
    ("Score (0-10): 8", 8.0),
    ("Score: 8 on a 10-point scale", 8.0),
    ("Score: 8\u204410", 8.0),  # fraction slash naming the prompt's scale
    ("Score: 9 points", 9.0),
    ("Score: 6\nThe response misses the second cup.", 6.0),
    ("Score: 6. The response misses the second cup.", 6.0),
    ("Score: 6 - the response misses the second cup.", 6.0),
    ("Score: 4\nIt names 2 of the 3 objects.", 4.0),  # counting on another line is not a scale
    ("The response is close.\nScore: 4.", 4.0),
    ("Final score: 5", 5.0),
    ("Score:\n7", 7.0),
    ("Score: 7\n\nFinal score: 7/10", 7.0),  # the same verdict twice
    ("Score: 07", 7.0),
]

# Invalid replies: a failed judgment each, never a score.
INVALID = [
    None,
    "",
    "7",  # the authors' bare-number fallback is deliberately not kept
    "7/10",
    "I think the response is good.",
    "Score: [x]",
    "Score: high",
    "Scores: 7",
    "subscore: 7",
    "Score: 11",  # past the top of the scale
    "Score: 10.5",
    "Score: 80",
    "Score: -1",  # a sign is read so that it is out of range, not skipped
    "Score: \u22121",  # U+2212 minus sign
    "Score: +7",
    "Score: 7abc",
    "Score: 8.5.5",
    "Score: 8/100",  # another scale: not an 8 out of 10
    "Score: 8 (out of 100)",
    "Score: 8 of 100",
    "Score: 8 on a scale of 100",
    "Score: 8 out of a possible 100",
    "Score: 8\u2044100",  # fraction slash U+2044
    "Score: 8\u2215100",  # division slash U+2215
    "Score: 8\uff0f100",  # full-width solidus
    "Score: 5/5",
    "Score: [3/4]",
    "Score: 8 out of 100",
    "Score: 4 out of five",
    "Score: 8 on a 100-point scale",
    "Score: 8 (1-100)",
    "Score (1-5): 4",
    "Score: 8 on a scale of 1 to 100",
    "Score: 8\nOn a scale of 0 to 100 this response is poor.",  # the scale is named on another line
    "Score: 8/10 (on a scale of 100)",  # two scales
    "Score: 8%",
    "Score: 80 percent",
    "Score: 7-8",  # a range
    "Score: 7 - 8",
    "Score: 7\u20138",
    "Score: 7 to 8",
    "Score: 7 or 8",
    "Score: 7, 8",
    "Score: 2\nScore: 9",  # two different verdicts
    "Score: -1\nScore: 5",
    "Score: 8\nScore: [x]",
    "Score: \uff18",  # full-width digit: the authors' regex reads ASCII digits only
    "Score: 8\uff18",
    "Score: 6, since 2 out of 3 objects are right",  # a count on the verdict's line reads as a scale
]


@pytest.mark.parametrize("text, score", VALID)
def test_parse_score_accepts_the_judge_format(text, score):
    assert parse_score(text) == score


@pytest.mark.parametrize("text", INVALID)
def test_parse_score_rejects_everything_else(text):
    assert parse_score(text) is None


@given(st.integers(min_value=0, max_value=10), st.sampled_from(["Score: {}", "Score: [{}]\n", "score：{}"]))
def test_parse_score_roundtrips_every_valid_score(x, template):
    assert parse_score(template.format(x)) == float(x)


@given(st.text(alphabet=st.characters(blacklist_characters="sS")))
def test_text_without_score_is_never_a_score(text):
    assert parse_score(text) is None


def test_judge_prompt_is_table_9():
    """Spot-check sentences copied from Table 9 and the slot order question, response, correct answer."""
    assert "(though you have no access with the image)" in JUDGE_PROMPT
    assert "an approximate ideal answer—it may be incomplete" in JUDGE_PROMPT
    assert 'Your response should follow this format: "Score: [x]\\n"' in JUDGE_PROMPT
    assert "3. Please do not provide additional reasoning, just give the score directly." in JUDGE_PROMPT
    text = judge_prompt("Q?", "the response", "the reference")
    assert text.endswith("# Question\nQ?\n\n# Response\nthe response\n\n# Correct answer\nthe reference\n")


def test_description_prompt_is_tables_10_and_11():
    assert DESCRIPTION_PROMPT.startswith("# Task\nGiven an unknown image-related question, a correct answer,")
    assert "A big, blue bird perched on a branch in front of a black building." in DESCRIPTION_PROMPT
    assert "- Do not provide any analysis or explanation; only describe the image." in DESCRIPTION_PROMPT
    text = description_prompt(question="Q?", answer="right", response="wrong")
    assert text.endswith("**<Question>**\nQ?\n**<Answer>**\nright\n**<Response>**\nwrong\n")


def test_user_text_with_braces_is_inserted_verbatim():
    assert "{not a field}" in judge_prompt("{not a field}", "r", "a")


@pytest.mark.parametrize(
    "reply, description",
    [
        ("A red cat on a sofa.", "A red cat on a sofa."),
        ("**<Output Description>**\nA red cat.\n\n**Explanation**: the answer says red.", "A red cat."),
        ("<Output Description>: A dog.\nExplanation: because", "A dog."),
        ("  A bowl with two apples.  \n", "A bowl with two apples."),
        ("**<Output Description>**\n", ""),
        ("", ""),
    ],
)
def test_clean_description(reply, description):
    assert clean_description(reply) == description


@pytest.mark.parametrize(
    "text, problem",
    [
        ("A red cube left of a small blue ball.", None),
        ("", "no description"),
        ("Score: -1", "judge verdict"),  # a reply from the judge's endpoint is not an image description
        ("**Score**: 3", "judge verdict"),
        ("word " * 129, "longer than max_tokens=128"),  # 129 words cannot fit in 128 tokens
        ("x" * (32 * 128 + 1), "longer than max_tokens=128"),
    ],
)
def test_description_problem(text, problem):
    found = description_problem(text.strip(), 128)
    assert found is None if problem is None else problem in found
