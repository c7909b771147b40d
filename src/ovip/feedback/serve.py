"""`ovip serve judge`: a chat-completions server for G_r and G_diff (Appendix B.2, "Software infrastructure").

Two backends behind `ovip.services.chat_server.make_app`:

- `world_reply`: the built-in world's rule-based judge and describer (`ovip.world.judge`). It reads the
  paper's own prompts (Table 9 for the judge, Tables 10-11 for the describer, as `ovip.feedback.prompts`
  fills them) back into their fields and answers "Score: x" or a description, so a run with `--judge.kind
  openai` against this server gets exactly what the in-process world judge gives, whatever the policy's
  answers contain (`Template.read`). Any other prompt is 400.
- `hf_chat_reply`: any local Hugging Face causal LM with a chat template (`AutoModelForCausalLM`), one
  request at a time; for real runs a vLLM server (`vllm serve Qwen/Qwen2.5-7B-Instruct`) is the fast choice.
"""

from __future__ import annotations

import string
import threading
from decimal import Decimal

from ovip.feedback.prompts import DESCRIPTION_PROMPT, JUDGE_PROMPT
from ovip.services.chat_server import ReplyError


class Template:
    """A prompt template cut at its placeholders: `literals[i]` is the fixed text before field `names[i]`,
    `literals[-1]` the text after the last field.

    `read(text)` finds the fields of a filled-in prompt in linear time, without a regular expression, and so
    that the fields in `untrusted` (the policy's answers) cannot move a boundary whatever they contain. The
    trusted fields (the question and the reference answer, from the data) are read from the fixed text
    around them: each one before the untrusted ones ends at the FIRST occurrence of the fixed text that
    follows it, each one after them starts after the LAST occurrence of the fixed text that precedes it, so
    for a trusted field that does not itself contain that fixed text the boundary is where the template put
    it. The untrusted fields fill what is left; when there are two of them, the fixed text between them must
    occur exactly once there, else no reading is certain (both fields come from the policy) and the prompt
    is refused with a 400.
    """

    def __init__(self, template: str, untrusted: tuple[str, ...]):
        self.literals, self.names = [], []
        for literal, name, _, _ in string.Formatter().parse(template):
            self.literals.append(literal)
            if name is not None:
                self.names.append(name)
        if len(self.literals) == len(self.names):
            self.literals.append("")
        first = self.names.index(untrusted[0])
        if self.names[first : first + len(untrusted)] != list(untrusted):
            raise ValueError(f"the untrusted fields {untrusted} must be adjacent, in order, in {self.names}")
        self.first, self.last = first, first + len(untrusted) - 1

    def read(self, text: str) -> dict[str, str] | None:
        """The fields of `text`, None when `text` is not this template filled in; `ReplyError(400)` when the
        untrusted fields cannot be told apart."""
        head, tail = self.literals[0], self.literals[-1]
        if len(text) < len(head) + len(tail) or not text.startswith(head) or not text.endswith(tail):
            return None
        fields, start, end = {}, len(head), len(text) - len(tail)
        for i in range(self.first):  # trusted fields before the untrusted ones, left to right
            at = text.find(self.literals[i + 1], start, end)
            if at < 0:
                return None
            fields[self.names[i]], start = text[start:at], at + len(self.literals[i + 1])
        for i in range(len(self.names) - 1, self.last, -1):  # trusted fields after them, right to left
            at = text.rfind(self.literals[i], start, end)
            if at < 0:
                return None
            fields[self.names[i]], end = text[at + len(self.literals[i]) : end], at
        for i in range(self.first, self.last):  # untrusted fields, split at a fixed text seen once
            separator = self.literals[i + 1]
            at = text.find(separator, start, end)
            if at < 0:
                return None
            if text.rfind(separator, start, end) != at:
                raise ReplyError(
                    400,
                    f"ambiguous prompt: {separator.strip()!r} occurs more than once between "
                    f"{self.names[self.first]!r} and {self.names[self.last]!r}, so their boundary is unknown",
                )
            fields[self.names[i]], start = text[start:at], at + len(separator)
        fields[self.names[self.last]] = text[start:end]
        return fields


# Table 9: the response A^i is the policy's; the question and the reference A* are the data's.
JUDGE = Template(JUDGE_PROMPT, untrusted=("response",))
# Tables 10-11: both answers are the policy's (OViP's swap puts the rejected one in <Answer>).
DESCRIBE = Template(DESCRIPTION_PROMPT, untrusted=("answer", "response"))


def _prompt_text(messages: list[dict]) -> str:
    content = messages[-1].get("content") if messages else None
    if isinstance(content, list):  # multimodal content parts: the text ones
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise ReplyError(400, "the last message has no text content")
    return content


def score_text(score: float) -> str:
    """A score as "Score: x" with x the shortest decimal that reads back as the same float (no exponent, so
    `ovip.feedback.prompts.parse_score` reads it)."""
    return f"Score: {format(Decimal(repr(float(score))), 'f')}\n"


def world_reply():
    """`reply_fn` for `make_app`: the world judge for Table 9 prompts, the world describer for Table 10 (over
    the whole world lexicon, as the in-process judge the loop builds for `judge.kind world`), each called
    exactly as the loop calls it, so the served answer is the in-process one."""
    from ovip.world.judge import WorldDescriber, WorldJudge

    judge, describer = WorldJudge(), WorldDescriber()

    def reply(messages: list[dict], params: dict) -> str:
        text = _prompt_text(messages)
        judged, described = JUDGE.read(text), None
        if judged is None and (described := DESCRIBE.read(text)) is None:
            raise ReplyError(
                400,
                "the world judge answers only the paper's judge (Table 9) and description (Table 10) prompts",
            )
        try:
            if judged is not None:
                judgment = judge.judge(judged["question"], [judged["response"]], judged["answer"])[0]
                if not judgment.ok:
                    raise ReplyError(422, judgment.error or "no score")
                return score_text(judgment.score)
            # OViP's swap (ovip.feedback.openai_describer): the <Answer> slot holds the REJECTED answer.
            description = describer.describe(
                described["question"], chosen=described["response"], rejected=described["answer"]
            )
            if not description.ok:
                raise ReplyError(422, description.error or "no description")
            return description.text
        except ReplyError:
            raise
        except Exception as e:  # the rules fail on this text: the same would happen again, so not a 500
            raise ReplyError(422, f"the world judge failed on this text: {type(e).__name__}: {e}") from None

    return reply


def hf_chat_reply(path: str, device: str = "cpu", dtype: str = "float32", default_max_tokens: int = 128):
    """`reply_fn` for `make_app` over a local causal LM with a chat template (loaded at start: a model that does
    not load stops the server before it listens)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device).eval()
    lock = threading.Lock()  # one generate at a time: the model is not shared across threads

    def reply(messages: list[dict], params: dict) -> str:
        chat = [{"role": m.get("role", "user"), "content": _prompt_text([m])} for m in messages]
        ids = tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        temperature = float(params.get("temperature") or 0.0)
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": float(params.get("top_p") or 1.0)}
            if temperature > 0
            else {"do_sample": False}
        )
        max_tokens = int(
            params.get("max_tokens") or params.get("max_completion_tokens") or default_max_tokens
        )
        with lock, torch.no_grad():
            out = model.generate(
                **{k: v.to(device) for k, v in ids.items()},
                max_new_tokens=min(max_tokens, 4096),
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                **sampling,
            )
        text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        return text or " "

    return reply
