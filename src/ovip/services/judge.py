"""`ovip serve judge`: a chat-completions server for G_r and G_diff (Appendix B.2, "Software infrastructure").

Two backends behind `ovip.feedback.server.make_app`:

- `world_reply`: the built-in world's rule-based judge and describer (`ovip.world.judge`). It reads the
  paper's own prompts (Table 9 for the judge, Tables 10-11 for the describer, as `ovip.feedback.prompts`
  fills them) back into their fields and answers "Score: x" or a description, so a run with `--judge.kind
  openai` against this server gets exactly what the in-process world judge gives. Any other prompt is 400.
- `hf_chat_reply`: any local Hugging Face causal LM with a chat template (`AutoModelForCausalLM`), one
  request at a time; for real runs a vLLM server (`vllm serve Qwen/Qwen2.5-7B-Instruct`) is the fast choice.
"""

from __future__ import annotations

import re
import threading

from ovip.feedback.server import ReplyError

_JUDGE = re.compile(
    r"# Question\n(?P<question>.*)\n\n# Response\n(?P<response>.*)\n\n# Correct answer\n"
    r"(?P<answer>.*)\n\Z",
    re.DOTALL,
)
_DESCRIBE = re.compile(
    r"# Requirements\n.*\*\*<Question>\*\*\n(?P<question>.*)\n\*\*<Answer>\*\*\n(?P<answer>.*)"
    r"\n\*\*<Response>\*\*\n(?P<response>.*)\n\Z",
    re.DOTALL,
)


def _prompt_text(messages: list[dict]) -> str:
    content = messages[-1].get("content") if messages else None
    if isinstance(content, list):  # multimodal content parts: the text ones
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str):
        raise ReplyError(400, "the last message has no text content")
    return content


def world_reply():
    """`reply_fn` for `make_app`: the world judge for Table 9 prompts, the world describer for Table 10 (over
    the whole world lexicon, as the in-process judge the loop builds for `judge.kind world`)."""
    from ovip.world.judge import WorldDescriber, WorldJudge

    judge, describer = WorldJudge(), WorldDescriber()

    def reply(messages: list[dict], params: dict) -> str:
        text = _prompt_text(messages)
        if (m := _JUDGE.search(text)) is not None:
            score = judge.score(m["question"], m["response"], m["answer"])
            return f"Score: {score:g}\n"
        if (m := _DESCRIBE.search(text)) is not None:
            # OViP's swap (ovip.feedback.openai_describer): the <Answer> slot holds the REJECTED answer.
            description = describer.describe(m["question"], chosen=m["response"], rejected=m["answer"])
            if not description.ok:
                raise ReplyError(422, description.error or "no description")
            return description.text
        raise ReplyError(
            400, "the world judge answers only the paper's judge (Table 9) and description (Table 10) prompts"
        )

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
