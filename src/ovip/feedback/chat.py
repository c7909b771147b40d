"""One chat-completions request to an OpenAI-compatible endpoint (vLLM, SGLang, OpenAI), failures as values.

The paper serves G_r and G_diff behind FastAPI services (Appendix B.2, "Software infrastructure"); the authors'
client retries forever on any error (`trainer.py`, `_get_critic_score`). Here a request has a timeout and a
bounded number of retries (done by the `openai` client, with its exponential back-off on connection errors,
timeouts, 408/409/429 and 5xx), and whatever still goes wrong comes back as an error string, so one bad
reply never stops the online loop (../../../shared/STYLE.md rule 10).
"""

from __future__ import annotations

import os

import openai

# vLLM and SGLang accept any key; the client refuses to start without one.
PLACEHOLDER_API_KEY = "EMPTY"


def make_client(
    base_url: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0, max_retries: int = 2
) -> openai.OpenAI:
    """An `openai.OpenAI` client for `base_url` (e.g. "http://127.0.0.1:8000/v1").

    The key is read from the environment variable `api_key_env`; when it is unset, a placeholder is used.
    """
    api_key = os.environ.get(api_key_env) or PLACEHOLDER_API_KEY
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)


def chat(client: openai.OpenAI, model: str, prompt: str, **params) -> tuple[str | None, str | None]:
    """Send `prompt` as the single user message (as the authors do) and return (reply text, error).

    Exactly one of the two is not None. `params` are chat-completions fields: temperature, top_p, max_tokens.
    """
    try:
        completion = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], **params
        )
    except openai.APITimeoutError:
        return None, f"timeout after {client.timeout}s ({client.max_retries} retries)"
    except openai.APIStatusError as e:
        return None, f"HTTP {e.status_code}: {_short(e.message)}"
    except openai.APIConnectionError as e:
        return None, f"connection error: {_short(str(e.__cause__ or e))}"
    except Exception as e:  # a malformed body, a client bug: still a failed call, not a crash
        return None, f"{type(e).__name__}: {_short(str(e))}"
    choices = getattr(completion, "choices", None)
    if not choices or choices[0].message is None or not choices[0].message.content:
        return None, "empty reply"
    return choices[0].message.content, None


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
