"""Load any Hugging Face image-text-to-text model as the policy, with LoRA (PEFT) or a full fine-tune.

The reference model pi_ref is the initial policy (Eq. 4-5: pi_ref). With LoRA it is the SAME module with
the adapters disabled, under `no_grad` — never a second copy. A full fine-tune has nothing to disable, so it
keeps a frozen deep copy and pays one extra model's memory for it (`Policy.reference_copy_bytes`).
"""

from __future__ import annotations

import contextlib
import copy
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoraSpec:
    """LoRA settings; `target_modules=None` means every linear layer of the language model."""

    r: int = 256
    alpha: int = 512
    dropout: float = 0.05
    target_modules: list[str] | str | None = None


def language_model_linear_names(model: nn.Module) -> list[str]:
    """Leaf names of the language model's linear layers (q_proj, ..., down_proj); lm_head excluded.

    This is LLaMA-Factory's `lora_target all` with the vision tower and projector frozen, which the authors'
    command line uses.
    """
    leaves = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and "language_model" in name and not name.endswith("lm_head"):
            leaves.add(name.rsplit(".", 1)[-1])
    if not leaves:
        raise ValueError("found no linear layer under a `language_model` module; pass lora target_modules")
    return sorted(leaves)


def apply_lora(model: nn.Module, spec: LoraSpec) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    targets = spec.target_modules
    if targets is None:
        # A regex so that vision-tower layers with the same leaf names (q_proj in CLIP) are not adapted.
        targets = rf".*language_model.*\.({'|'.join(map(re.escape, language_model_linear_names(model)))})"
    config = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=targets)
    with peft_reading_checkpointing():
        return get_peft_model(model, config)


@contextlib.contextmanager
def peft_reading_checkpointing():
    """Around the construction of a `PeftModel`: drops the one FutureWarning its constructor causes.

    peft (0.17 to 0.21, the newest) reads `model.is_gradient_checkpointing` there to decide whether the input
    embeddings need gradients; transformers 5 renamed that property `is_activation_checkpointing` and warns
    on every read of the old name, so each adapter loaded printed "`is_gradient_checkpointing` is deprecated"
    though nothing in ovip reads it. ovip calls the new names (`activation_checkpointing_enable`,
    `is_activation_checkpointing`); only that message from that property is ignored, only inside this block.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="`is_gradient_checkpointing` is deprecated",
            category=FutureWarning,
            module="transformers.modeling_utils",
        )
        yield


def resolve_adapter(path: str | Path) -> Path:
    """An adapter folder from an adapter folder, a checkpoint folder or a run folder (its latest checkpoint)."""
    path = Path(path)
    if (path / "adapter_config.json").exists():
        return path
    if (path / "adapter" / "adapter_config.json").exists():
        return path / "adapter"
    latest = path / "checkpoints" / "latest"
    if latest.exists():
        return resolve_adapter(path / "checkpoints" / latest.read_text().strip())
    raise FileNotFoundError(
        f"no PEFT adapter at {path} (expected adapter_config.json, adapter/, or a run folder)"
    )


def check_model_path(path: str | Path) -> None:
    """A local path that does not exist is an error here, before the hub client reads it as a repo id.

    Hub ids look like `org/name`; anything absolute, relative (`./`, `../`, `~`) or with more than one `/`
    is taken as a local path.
    """
    text = str(path)
    local = text.startswith(("/", ".", "~")) or text.count("/") > 1 or Path(text).exists()
    if local and not Path(text).expanduser().is_dir():
        what = "a file, not a model folder" if Path(text).expanduser().exists() else "no such folder"
        raise FileNotFoundError(f"model {text}: {what} (expected a Hugging Face model folder or hub id)")


class Policy:
    """The trainable VLM pi_theta, its processor, and access to pi_ref.

    `finetune="lora"` (default) wraps the model with PEFT; `"full"` trains every language-model weight
    (vision tower frozen) and keeps a frozen copy as the reference.
    """

    def __init__(
        self,
        model: nn.Module,
        processor,
        finetune: str = "lora",
        lora: LoraSpec | None = None,
        freeze_vision: bool = True,
    ):
        if finetune not in ("lora", "full", "none"):
            raise ValueError(f"finetune must be 'lora', 'full' or 'none', got {finetune!r}")
        self.processor = processor
        self.finetune = finetune
        self._reference_copy = None
        if finetune == "lora":
            if not hasattr(model, "peft_config"):  # a loaded PeftModel keeps its adapter and trainable flags
                model = apply_lora(model, lora or LoraSpec())
        elif finetune == "full":
            for name, p in model.named_parameters():
                p.requires_grad_(not (freeze_vision and ("vision" in name or "visual" in name)))
            self._reference_copy = copy.deepcopy(model).eval().requires_grad_(False)
        else:
            model.requires_grad_(False)
        self.model = model

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        dtype: str = "float32",
        device: str = "cpu",
        adapter: str | None = None,
        attn_implementation: str | None = None,
        **kwargs,
    ) -> Policy:
        """Load model + processor from a local path or hub id; optionally a trained PEFT adapter on top.

        The processor comes from `load_processor` (Qwen2-VL / Qwen2.5-VL load for images only when
        torchvision is absent). A path that is neither a folder nor a reachable hub id is one
        FileNotFoundError line, not the hub's traceback.
        """
        from transformers import AutoModelForImageTextToText

        from ovip.policy.processor import first_line, load_processor

        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        check_model_path(path)
        try:
            extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
            model = AutoModelForImageTextToText.from_pretrained(path, dtype=DTYPES[dtype], **extra).to(device)
            processor = load_processor(path)
        except OSError as e:  # the hub client's errors (unknown id, no network) are OSErrors of several lines
            raise FileNotFoundError(f"cannot load model {str(path)!r}: {first_line(e)}") from None
        if adapter is not None:
            from peft import PeftModel

            # finetune="none" loads the adapter frozen (evaluation); the reference is still the disabled adapter.
            trainable = kwargs.pop("finetune", "lora") == "lora"
            with peft_reading_checkpointing():
                model = PeftModel.from_pretrained(
                    model, str(resolve_adapter(adapter)), is_trainable=trainable
                )
            return cls(model, processor, finetune="lora", **kwargs)
        return cls(model, processor, **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    @contextlib.contextmanager
    def reference(self):
        """Yield pi_ref under no_grad: the adapters disabled (LoRA) or the frozen copy (full fine-tune)."""
        with torch.no_grad():
            if self._reference_copy is not None:
                yield self._reference_copy
            elif self.finetune == "lora":
                with self.model.disable_adapter():
                    yield self.model
            else:
                yield self.model

    @property
    def reference_copy_bytes(self) -> int:
        """Extra memory the reference costs: 0 with LoRA, one model's weights with a full fine-tune."""
        if self._reference_copy is None:
            return 0
        return sum(p.numel() * p.element_size() for p in self._reference_copy.parameters())
