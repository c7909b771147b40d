"""`ovip serve policy`: the policy served as vLLM serves a VLM, PEFT adapters loaded and unloaded at runtime.

The paper samples with dedicated samplers beside the trainer (Appendix B.2, "Software infrastructure";
Appendix D: four samplers). This server speaks the subset of vLLM's OpenAI-compatible API a trainer needs,
so the same client drives `ovip serve policy` on a CPU and `vllm serve` on a GPU:

- `POST /v1/chat/completions`: one user message whose content holds a text part and at most one `image_url`
  part, a base64 data URL (a URL or path is refused: the server never fetches or opens what a client names);
  `n` samples, `temperature` (0 decodes greedily, n = 1), `top_p`, `max_tokens` (or `max_completion_tokens`),
  `seed` (the prompt's seed: `ovip.policy.rollout.prompt_seed`; none: the server draws one), `logprobs: true`
  (per sampled token its log-prob at temperature 1 without top-p, vLLM's raw log-probs: what the trainer's
  own forward gives) and vLLM's `return_tokens_as_token_ids`. `model` names the adapter to sample with, or
  the base model; an unknown name is 404 naming it. The reply's `model` names the adapter that sampled it,
  `finish_reason` is "length" for a sample cut at `max_tokens`, "stop" otherwise.
- `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` and `POST /v1/unload_lora_adapter {"lora_name"}`,
  vLLM's runtime LoRA endpoints (vLLM needs `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` for them). A path loads
  only when it lies under the adapter root (`--adapter-root`, symbolic links resolved first; without a root
  every load is refused) and holds a PEFT adapter saved as safetensors (`adapter_config.json` +
  `adapter_model.safetensors`: a pickled `.bin` is never read). Loading a name that is loaded is 400 unless
  the body says `"load_inplace": true` (vLLM's flag), which replaces it.
- `GET /v1/models`: the base model and the loaded adapters (each with its `parent` and `root`, as vLLM lists
  them); `GET /health`.

Sampling is `ovip.policy.rollout.generate_samples`: the n samples of a request in one generate call with the
image encoded once, and requests that wait while the model is busy (or arrive within `batch_wait` seconds of
each other) with the same adapter and sampling settings drawn in one call of at most `max_batch` rows
(prompts x n). Each prompt samples from its own seed, so a request gets the same samples alone or batched
(up to float rounding); with `--model world` they are the samples the training loop draws in-process with
the same seed and adapter. Adapters are loaded onto the one base model with PEFT (`PeftModel.load_adapter`,
`set_adapter`, `delete_adapter`); one thread at a time uses the model, so a load waits for the running
generate call and the next call sees the new adapter.

Not served, and refused with 400 when asked for: streaming, several turns or images per request,
`top_logprobs` > 0, stop strings, penalties, top_k, min_p, logit_bias, tools. `ovip.services.server.serve`
puts the shared guard (token off loopback, body and time caps) in front.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import warnings
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from ovip.data.images import MAX_PIXELS
from ovip.policy.rollout import Sampled, generate_samples
from ovip.services.batching import Batcher
from ovip.services.policy_protocol import RequestError, SampleJob, completion, parse_request, short

ADAPTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")  # PEFT keys modules by adapter name: no dots


class PolicyBackend:
    """The served policy: one base model, the PEFT adapters loaded onto it by name, and `generate(jobs)`.

    model: a transformers image-text-to-text model (eval mode, no grad) and its processor; `name` is what
    clients call the base model. `adapter_root`: the folder adapter paths must lie under (None refuses every
    load). At most `max_loras` adapters are held at once. Every method may be called from any thread; one
    at a time uses the model.
    """

    def __init__(
        self, model, processor, name: str, adapter_root: str | Path | None = None, max_loras: int = 4
    ):
        if max_loras < 1:
            raise ValueError(f"max_loras must be >= 1, got {max_loras}")
        self.model, self.processor, self.name = model.eval().requires_grad_(False), processor, name
        self.adapter_root = Path(adapter_root).resolve() if adapter_root is not None else None
        self.max_loras = max_loras
        self.adapters: dict[str, str] = {}  # name -> the folder it was loaded from
        self.lock = threading.Lock()

    def names(self) -> list[str]:
        with self.lock:
            return [self.name, *self.adapters]

    def models(self) -> list[dict]:
        """`GET /v1/models` entries: the base model, then each adapter with its parent and folder."""
        created = int(time.time())
        base = {"id": self.name, "object": "model", "created": created, "owned_by": "ovip", "root": self.name}
        with self.lock:
            loaded = dict(self.adapters)
        return [base] + [
            {
                "id": n,
                "object": "model",
                "created": created,
                "owned_by": "ovip",
                "root": p,
                "parent": self.name,
            }
            for n, p in loaded.items()
        ]

    def check_model(self, name: str) -> None:
        if name != self.name and name not in self.adapters:
            raise RequestError(
                404, f"The model '{name}' does not exist (served: {', '.join(map(repr, self.names()))})"
            )

    def adapter_folder(self, path: str) -> Path:
        """`path` resolved, if it lies under the adapter root and holds a safetensors PEFT adapter."""
        if self.adapter_root is None:
            raise RequestError(
                403, "loading adapters is off: start the server with --adapter-root DIR (the folder adapters "
                "are read from)"
            )  # fmt: skip
        folder = Path(path).expanduser().resolve()
        if not folder.is_relative_to(self.adapter_root):
            raise RequestError(
                403, f"lora_path {path!r} is outside the adapter root {str(self.adapter_root)!r}"
            )
        missing = [
            f for f in ("adapter_config.json", "adapter_model.safetensors") if not (folder / f).is_file()
        ]
        if missing:
            raise RequestError(
                400, f"lora_path {path!r} is not a PEFT adapter folder saved as safetensors (no {missing[0]})"
            )
        return folder

    def load_adapter(self, name: str, path: str, replace: bool = False) -> None:
        """Load the adapter at `path` as `name` (`RequestError` for a bad name, path or adapter)."""
        if not isinstance(name, str) or not ADAPTER_NAME.fullmatch(name) or name == self.name:
            raise RequestError(
                400,
                f"lora_name must be 1-128 letters, digits, '-' or '_', not the base model's name; "
                f"got {name!r}",
            )
        if name in "lora_":  # PEFT finds an adapter's weights by name: "a" would match every "lora_A" key
            raise RequestError(
                400, f"lora_name {name!r} is part of PEFT's 'lora_' prefix: choose another name"
            )
        if not isinstance(path, str) or not path:
            raise RequestError(400, f"lora_path must be a folder path, got {path!r}")
        folder = self.adapter_folder(path)
        with self.lock:
            if name in self.adapters and not replace:
                raise RequestError(
                    400,
                    f"The lora adapter '{name}' has already been loaded "
                    "(send load_inplace: true to replace it)",
                )
            if name not in self.adapters and len(self.adapters) >= self.max_loras:
                raise RequestError(
                    400,
                    f"{len(self.adapters)} adapters are loaded (--max-loras {self.max_loras}): "
                    "unload one first",
                )
            if name in self.adapters:
                self._delete(name)
            try:
                self._load(name, folder)
            except Exception as e:  # a config of another model, wrong shapes, a corrupt file
                raise RequestError(
                    400, f"cannot load lora_path {path!r}: {type(e).__name__}: {short(e)}"
                ) from None
            self.adapters[name] = str(folder)

    def unload_adapter(self, name: str) -> None:
        with self.lock:
            if name not in self.adapters:
                raise RequestError(
                    404, f"The lora adapter '{name}' cannot be found (loaded: {sorted(self.adapters)})"
                )
            self._delete(name)
            del self.adapters[name]

    def _load(self, name: str, folder: Path) -> None:
        from peft import PeftModel

        if self.adapters:
            self.model.load_adapter(str(folder), adapter_name=name, is_trainable=False)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name).eval()

    def _delete(self, name: str) -> None:
        if len(self.adapters) > 1:
            # PEFT warns "Adapter X was active which is now deleted": the next generate call sets one.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                self.model.delete_adapter(name)
        else:  # PEFT cannot hold zero adapters: take the LoRA layers out, back to the plain base model
            self.model = self.model.unload().eval()

    def generate(self, jobs: list[SampleJob]) -> list[list[Sampled]] | RequestError:
        """The samples of `jobs` (equal keys) in one generate call, or the error for all of them."""
        first = jobs[0]
        with self.lock:
            if first.adapter != self.name and first.adapter not in self.adapters:  # unloaded while it waited
                return RequestError(404, f"The model '{first.adapter}' does not exist (unloaded)")
            args = dict(
                images=[j.image for j in jobs],
                queries=[j.query for j in jobs],
                k=first.n,
                temperature=first.temperature,
                top_p=first.top_p,
                max_new_tokens=first.max_tokens,
                seeds=[j.seed for j in jobs],
                do_sample=first.temperature > 0,
            )
            try:
                if first.adapter == self.name and self.adapters:
                    with self.model.disable_adapter():
                        return generate_samples(self.model, self.processor, **args)
                if first.adapter != self.name:
                    self.model.set_adapter(first.adapter)
                return generate_samples(self.model, self.processor, **args)
            except Exception as e:
                return RequestError(500, f"generation failed: {type(e).__name__}: {short(e)}")


def make_policy_app(
    backend: PolicyBackend,
    max_batch: int = 256,
    batch_wait: float = 0.01,
    max_n: int = 64,
    max_tokens: int = 2048,
    max_pixels: int = MAX_PIXELS,
) -> FastAPI:
    """A FastAPI app with the endpoints of the module docstring (no `Guard` yet: `ovip.services.server.serve`
    adds it). `max_n` and `max_tokens` cap a request's n and max_tokens (larger is 400 naming the cap);
    `max_batch` caps the rows of one generate call (a request's n rows always fit: max_n <= max_batch)."""
    if not 1 <= max_n <= max_batch:
        raise ValueError(f"need 1 <= max_n <= max_batch, got max_n={max_n}, max_batch={max_batch}")
    app = FastAPI(title="ovip policy")
    batcher = Batcher(  # a job's size is its rows: prompts x n
        backend, max_batch, batch_wait, max_queue=1024, size=lambda job: job.n,
        failed=lambda e: RequestError(500, f"generation failed: {type(e).__name__}: {short(e)}"),
    )  # fmt: skip
    app.state.batcher, app.state.backend = batcher, backend
    caps = {"max_n": max_n, "max_tokens": max_tokens, "max_pixels": max_pixels}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": backend.models()}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        try:
            job, options = parse_request(await _json(request), backend, **caps)
        except RequestError as e:
            return _error(e.status, e.message)
        if batcher.busy():
            return _error(503, "queue full; retry later")
        result = await batcher.submit(job)
        if isinstance(result, RequestError):
            return _error(result.status, result.message)
        return JSONResponse(completion(result, job.adapter, backend.processor.tokenizer, **options))

    @app.post("/v1/load_lora_adapter")
    async def load_lora_adapter(request: Request):
        try:
            body = await _json(request)
            name, path = body.get("lora_name"), body.get("lora_path")
            replace = body.get("load_inplace", False) is True
            await asyncio.to_thread(backend.load_adapter, name, path, replace)
        except RequestError as e:
            return _error(e.status, e.message)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    @app.post("/v1/unload_lora_adapter")
    async def unload_lora_adapter(request: Request):
        try:
            name = (await _json(request)).get("lora_name")
            await asyncio.to_thread(backend.unload_adapter, name)
        except RequestError as e:
            return _error(e.status, e.message)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    return app


def policy_app(args, cfg, path: str) -> FastAPI:
    """The app of `ovip serve policy` for the model folder or id `path` (the CLI resolves `--model world` to
    the world's base model) from its command-line arguments (`--model`,
    `--served-model-name`, `--device`, `--dtype`, `--adapter-root`, `--max-loras`, `--max-batch`,
    `--batch-wait`, `--max-n`, `--max-tokens`) and recipe `cfg` (device, dtype and attention kernel default
    to its `model.*`, so `--model world` loads the base model exactly as training does). A model that does
    not load stops here."""
    from ovip.config import check_device
    from ovip.policy.model import Policy

    device, dtype = args.device or cfg.model.device, args.dtype or cfg.model.dtype
    check_device(device, "--device")
    extra = {"attn_implementation": cfg.model.attn_implementation} if cfg.model.attn_implementation else {}
    policy = Policy.from_pretrained(path, dtype=dtype, device=device, finetune="none", **extra)
    backend = PolicyBackend(
        policy.model,
        policy.processor,
        args.served_model_name or args.model,
        args.adapter_root,
        args.max_loras,
    )
    return make_policy_app(
        backend, args.max_batch or 256, args.batch_wait, max_n=args.max_n, max_tokens=args.max_tokens
    )


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError as e:
        raise RequestError(400, f"the body is not JSON: {short(e)}") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object")
    return body


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": status}}, status
    )
