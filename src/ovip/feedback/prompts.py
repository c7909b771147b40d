"""The paper's judge and describer prompts (Appendix I, Tables 9-11) and the parsing of their replies.

The prompt TEXT is copied from the paper. Two things the PDF does not show are taken from the authors' code
(`LLaMAFactory/annotations/annotate.py`, `CRITIC_PROMPT` / `DESC_PROMPT`): the judge prompt's section titles
are markdown headings (`# Task`, `# Question`, ...), as the description prompt's are in Table 10; and the
placeholders are `{question}`, `{response}`, `{answer}`. Where the paper and the code differ we follow the
paper: an em dash in "approximate ideal answer—it may be incomplete" (the code has `--`), and the description
prompt ends after the response (the code appends a `**<Output Description>**` cue; `clean_description`
removes that header when the model writes it itself).

`"Score: [x]\\n"` in the judge prompt is the literal two characters backslash-n, as in the paper and code.
"""

from __future__ import annotations

import re

from ovip.eval.verdict import read_verdict

# Table 9: G_r, the text-only judge. Format with question=Q, response=A^i, answer=A* (the reference).
JUDGE_PROMPT = """# Task
Your role is as a discerning assistant tasked with evaluating model responses for multimodal tasks (though you have no access with the image). Upon being presented with a question that requires the interpretation of both text and images, you will receive two distinct responses. The first is crafted by our sophisticated multimodal model, while the second represents an approximate ideal answer—it may be incomplete. Your objective is to meticulously and precisely assess the model-generated response (the former) based on the provided reference answer (the latter).

- Here's how you should approach the assessment process:
1. The quality of the response depends on its accuracy and the degree of adherence to the correct answer. Therefore, if the response is much more detailed than the reference answer, it should not be considered a very good response (although it may still be considered a good one).
2. Directly provide the score of the response, with a full score of 10. Your response should follow this format: "Score: [x]\\n", where "[x]" represents the score you give, and "\\n" is a line break.
3. Please do not provide additional reasoning, just give the score directly.

# Question
{question}

# Response
{response}

# Correct answer
{answer}
"""

# Tables 10-11: G_diff. Format with question=Q, answer=<the answer the image must agree with>,
# response=<the answer the image must contradict>. OViP puts the REJECTED answer in `answer` (see
# `ovip.feedback.openai_describer.OpenAIDescriber`).
DESCRIPTION_PROMPT = """# Task
Given an unknown image-related question, a correct answer, and an inaccurate response, carefully analyze the differences between the response and the answer. Then, provide a brief description of the image so that it aligns with the correct answer and differs from the incorrect responses. In other words, infer the content of the image.

# Example
[Example 1]
**<Question>**
What is on the sandwich?

**<Answer>**
The sandwich has tomatoes and lettuce on it.

**<Response>**
The sandwich has a slice of egg and tomato on it.

**<Output Description>**
A sandwich with only tomatoes and lettuce on it.

**Explanation**: The answer mentions lettuce and tomato, while the incorrect response mentions tomato and egg. So there is no egg on the sandwich.

[Example 2]
**<Question>**
Can you point out the details that make this image unique?

**<Answer>**
In the image, there is a plate with a slice of pizza topped with tomatoes, herbs, and cheese. The distinctive detail about the image is that the pizza is missing two slices, leaving just one slice remaining on the plate. This suggests that someone has already started enjoying the pizza. The slice appears to be well-cooked and freshly served, creating an appetizing and mouthwatering scene for the viewer.

**<Response>**
In the image, there is a slice of pizza on a plate with tomatoes and cheese. The pizza appears to be homemade and has been cut into two pieces. The tomatoes are sliced in half, revealing their juicy interior. The cheese on top of the pizza is melted, creating a delicious-looking dish. Additionally, there is a fork nearby, suggesting that someone might be planning to enjoy this pizza soon.

**<Output Description>**
A plate with a one-third remaining piece of pizza, topped with herbs, cheese, and tomatoes; someone has finished eating and left.

**Explanation**: The answer mentions that only one-third of the pizza remains and that someone has just finished eating and left, which is inconsistent with the response. Therefore, the image should include these two features.

[Example 3]
**<Question>**
Bird or cow?

**<Answer>**
Bird

**<Response>**
The bird in the image is a small, brown and white bird with a distinctive head shape and coloration. It is not a cow. The bird is perched on a branch, which is situated in front of a white building.

**<Output Description>**
A big, blue bird perched on a branch in front of a black building.

**Explanation**: Both the answer and the response mention the bird, but the response is more detailed. So the description should be contrastive to the features of the bird in the response.

# Requirements
- The description should be brief but precise.
- If both the answer and the response are long, focus on describing the one or two most significant differences.
- Do not provide any analysis or explanation; only describe the image.
- A common approach is to describe what is present in the image and what is missing.

**<Question>**
{question}
**<Answer>**
{answer}
**<Response>**
{response}
"""

SCORE_MIN, SCORE_MAX = 0.0, 10.0

# The authors' regex is `score[:：]\s*\[?([0-9]+)` on the lower-cased reply. We keep its accepted forms
# ("Score: 7", "Score: [7]", full-width colon, any case, anywhere in the reply) and also read decimals and
# markdown emphasis, but `ovip.eval.verdict` rejects what would be read against the wrong scale ("8/100",
# "8 (out of 100)", "8 on a scale of 100"), a range ("7-8"), two verdicts that differ, a sign, a value past 10
# and a number that goes on ("Score: 7abc"). The authors' second fallback, a bare number at the start of the
# reply, is NOT kept: a reply that does not say "Score:" is a failed judgment, never a score.
_VERDICT = re.compile(r"^[\W_]*score[\W_]*[:：]", re.IGNORECASE)


def judge_prompt(question: str, response: str, reference: str) -> str:
    """Table 9 filled in: the response A^i is judged against the reference A* (text only, no image)."""
    return JUDGE_PROMPT.format(question=question, response=response, answer=reference)


def description_prompt(question: str, answer: str, response: str) -> str:
    """Tables 10-11 filled in: describe an image in which `answer` is right and `response` is wrong."""
    return DESCRIPTION_PROMPT.format(question=question, answer=answer, response=response)


def parse_score(text: str | None) -> float | None:
    """The score in [0, 10] of a judge reply "Score: x" / "Score: [x]" / "Score：x", else None.

    Every "Score:" in the reply must give the same value, on the prompt's scale of 10 (the rules are in
    `ovip.eval.verdict`). Replies without one (garbage, a bare "7", "Score: [x]"), out-of-range values and
    another scale give None: a failed judgment.
    """
    return read_verdict(text, "score", SCORE_MAX)


_HEADER = re.compile(r"(\*\*)?\s*<\s*output description\s*>\s*(\*\*)?\s*:?", re.IGNORECASE)
_EXPLANATION = re.compile(r"(\*\*)?\s*explanation\s*(\*\*)?\s*:", re.IGNORECASE)


def clean_description(text: str | None) -> str:
    """The description T- from a describer reply: text after the last "<Output Description>" header, cut
    before an "Explanation:" tail (both forms of the paper's few-shot examples), trimmed. May be empty."""
    if not text:
        return ""
    headers = list(_HEADER.finditer(text))
    if headers:
        text = text[headers[-1].end() :]
    tail = _EXPLANATION.search(text)
    if tail is not None:
        text = text[: tail.start()]
    return text.strip().strip("*").strip()


def description_problem(description: str, max_tokens: int) -> str | None:
    """Why a cleaned describer reply cannot be the T- of Eq. 3, or None when it can.

    An empty text; a judge verdict ("Score: -1", a reply from the wrong endpoint); or a text longer than the
    `max_tokens` that were asked for (Appendix B.2: 128), which a server that honoured the limit cannot have
    produced. Tokenizers split at whitespace first, so a reply has at least as many tokens as words; 32
    characters per token is far above any tokenizer's average and still stops a megabyte-long "description".
    """
    if not description:
        return "no description in reply"
    if _VERDICT.match(description):
        return "a judge verdict, not a description"
    words = len(description.split())
    if words > max_tokens or len(description) > 32 * max_tokens:
        return f"{words} words, {len(description)} characters: longer than max_tokens={max_tokens} allows"
    return None
