"""`ovip export`: a trained policy as a folder that tools outside ovip load (lmms-eval, VLMEvalKit, vLLM).

    ovip export RUN_DIR -o FOLDER --merge   # base + adapter merged: a plain transformers model folder
    ovip export RUN_DIR -o FOLDER           # the PEFT adapter, its base named in adapter_config.json

SOURCE is a run folder (`ovip train` output: its newest complete checkpoint, with the base model and dtype of
its config.yaml; `model.path: world` is the built-in world's base model, built and cached if absent), one of
its checkpoint folders (`RUN_DIR/checkpoints/step-N[/adapter]`), or a PEFT adapter folder from anywhere (its
adapter_config.json names the base; the dtype is then float32 unless `--dtype`). `--model` overrides the base.

`--merge` folds each LoRA update into its weight, W + (alpha / r) B A (PEFT `merge_and_unload`), and saves the
result with `save_pretrained` in the dtype asked for, beside the base's processor (tokenizer, image processor,
chat template): `AutoModelForImageTextToText.from_pretrained(FOLDER)` and `AutoProcessor.from_pretrained(FOLDER)`
load it with neither PEFT nor ovip. Without `--merge` the folder holds the adapter files, adapter_config.json
with `base_model_name_or_path` set to the base (an absolute local path or a hub id), and the processor. A full
fine-tune (`model.finetune: full`) has no adapter: its checkpoint's `model/` folder is the model, and
`--merge` copies it as saved, with the processor.

Either way the folder also gets README.md (what it is, the base it needs, how to load and serve it) and
`ovip_export.json` (the record below). The folder is written beside FOLDER and renamed into place at the end, so
a failed export leaves nothing half-written. A non-empty FOLDER is refused; `--overwrite` replaces it only when
it holds an earlier export (its ovip_export.json), never a folder of other files.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

MARKER = "ovip_export.json"
# vLLM's accepted `--max-lora-rank` values (vllm/config/lora.py, `MaxLoRARanks`); its default is 16.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# lmms-eval's `--model` name for a Hugging Face folder of each model_type (lmms_eval/models/__init__.py).
LMMS_EVAL_MODELS = {"llava": "llava_hf", "qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_5_vl"}


@dataclass
class Export:
    """What an export read and wrote (saved as ovip_export.json).

    kind: "merged" (base + adapter folded), "adapter" (PEFT adapter + processor) or "full" (a full fine-tune's
    model folder as saved). base: the base model, an absolute local path or a hub id. checkpoint: the run's
    checkpoint folder (None for an adapter folder from elsewhere). lora_r: the adapter's rank (None for full).
    """

    folder: str
    kind: str
    source: str
    base: str
    dtype: str
    checkpoint: str | None = None
    adapter: str | None = None
    lora_r: int | None = None


def export(
    source: str | Path,
    output: str | Path,
    merge: bool = False,
    model: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    device: str = "cpu",
) -> Export:
    """Write the export of `source` into `output` (see module doc); returns its record.

    Cheap checks come first (the source's checkpoint, the output folder), so that a refusal never waits for
    the world's base model to be built."""
    from ovip.policy.model import DTYPES

    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(sorted(DTYPES))}, got {dtype!r}")
    source, output = Path(source), Path(output).resolve()  # resolved: `-o .` has a name and a parent
    cfg, checkpoint, adapter, saved_model = locate(source)
    if saved_model is not None:
        if not merge:
            raise ValueError(
                f"{checkpoint} is a full fine-tune (model.finetune: full): it has no adapter; "
                f"--merge exports its saved model folder ({saved_model}) as-is"
            )
        if dtype is not None and dtype != cfg.model.dtype:
            raise ValueError(
                f"--dtype {dtype}: a full fine-tune's model folder is exported as saved, in the run's "
                f"model.dtype {cfg.model.dtype}"
            )
    check_output(output, overwrite, [p for p in (source, adapter, saved_model) if p is not None])
    base, dtype = base_model(cfg, adapter, model), dtype or (cfg.model.dtype if cfg else "float32")
    record = Export(
        folder=str(output),
        kind="full" if saved_model else "merged" if merge else "adapter",
        source=str(source.resolve()),
        base=base,
        dtype=dtype,
        checkpoint=str(checkpoint.resolve()) if checkpoint else None,
        adapter=str(adapter.resolve()) if adapter else None,
        lora_r=_adapter_config(adapter).get("r") if adapter else None,
    )
    tmp = output.parent / f".{output.name}.export-tmp"
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)  # left by an export that was killed; only ever ours
    tmp.mkdir()
    try:
        write(record, tmp, saved_model, device)
        if output.is_dir():
            shutil.rmtree(output)  # empty, or an earlier export (`check_output`)
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def locate(path: Path):
    """(run Config or None, checkpoint folder or None, adapter folder or None, full model folder or None)."""
    from ovip.train import checkpoint as ckpt

    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder (expected a run folder or a PEFT adapter folder)")
    up = [path.resolve(), *path.resolve().parents]  # up[1] is the parent, up[2] the grandparent, ...
    run, step = None, None
    if (path / "config.yaml").is_file():
        run = path
    elif len(up) > 2 and up[1].name == "checkpoints" and (up[2] / "config.yaml").is_file():
        run, step = up[2], path  # RUN_DIR/checkpoints/step-N
    elif len(up) > 3 and up[0].name in ("adapter", "model") and up[2].name == "checkpoints":
        if (up[3] / "config.yaml").is_file():
            run, step = up[3], up[1]  # RUN_DIR/checkpoints/step-N/adapter
    if run is None:
        if not (path / "adapter_config.json").is_file():
            raise FileNotFoundError(
                f"{path} is neither a run folder (config.yaml) nor a PEFT adapter folder (adapter_config.json)"
            )
        return None, None, path, None
    if step is None:
        step = ckpt.latest(run)
        if step is None:
            raise FileNotFoundError(
                f"{run}: no complete checkpoint in {run / 'checkpoints'} (a run saves one every "
                "train.save_every steps and at its end)"
            )
    elif not ckpt.complete(step):
        raise FileNotFoundError(f"{step}: an incomplete checkpoint (no state.json); export the run folder")
    adapter, model = step / "adapter", step / "model"
    if (adapter / "adapter_config.json").is_file():
        return _run_config(run), step, adapter, None
    if (model / "config.json").is_file():
        return _run_config(run), step, None, model
    raise FileNotFoundError(f"{step} holds neither adapter/ (LoRA) nor model/ (full fine-tune)")


def _run_config(run: Path):
    from ovip.config import from_dict, read_yaml

    return from_dict(read_yaml(run / "config.yaml"))


def check_output(output: Path, overwrite: bool, sources: list[Path]) -> None:
    """Refuse an output that is a file, that holds the source, or that is a non-empty folder (with
    `overwrite`, one that holds anything but an earlier export)."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"-o {output} is a file; give a folder")
    out = output.resolve()
    for source in sources:
        if out == source.resolve() or out in source.resolve().parents:
            raise ValueError(f"-o {output} holds the source {source}; choose another folder")
    if output.is_dir() and any(output.iterdir()):
        if not overwrite:
            raise ValueError(
                f"-o {output} exists and is not empty; pass --overwrite to replace an earlier export there, "
                "or choose another folder"
            )
        if not (output / MARKER).is_file():
            raise ValueError(
                f"-o {output}: --overwrite replaces an earlier `ovip export` folder ({MARKER}) only, and "
                f"{output} is not one; choose another folder"
            )


def base_model(cfg, adapter: Path | None, model: str | None) -> str:
    """The base: `model`, else the run's model.path, else the adapter's base_model_name_or_path; 'world'
    resolved to the built-in base model (built on first use) with the run's world settings, or the built-in
    recipe's. A local folder is made absolute."""
    from ovip.config import load
    from ovip.policy.model import check_model_path
    from ovip.world.resolve import model_path

    if cfg is None:
        model = model or _adapter_config(adapter).get("base_model_name_or_path")
        if not model:
            raise ValueError(
                f"{adapter / 'adapter_config.json'} names no base model (base_model_name_or_path); "
                "pass --model PATH"
            )
        cfg = load("world")
    if model:
        cfg.model.path = model
    base = model_path(cfg)
    check_model_path(base)
    return str(Path(base).resolve()) if Path(base).exists() else base


def _adapter_config(adapter: Path) -> dict:
    return json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))


def write(record: Export, folder: Path, saved_model: Path | None, device: str) -> None:
    """The export's files into `folder` (an empty folder)."""
    from ovip.policy.processor import load_processor

    if record.kind == "full":
        shutil.copytree(saved_model, folder, dirs_exist_ok=True)
        load_processor(record.base).save_pretrained(folder)
    elif record.kind == "merged":
        from ovip.policy.model import Policy

        policy = Policy.from_pretrained(
            record.base, dtype=record.dtype, device=device, adapter=record.adapter, finetune="none"
        )
        policy.model.merge_and_unload().save_pretrained(folder)
        policy.processor.save_pretrained(folder)
    else:
        adapter = Path(record.adapter)
        for path in adapter.iterdir():
            if path.is_file() and path.name != "README.md":  # PEFT's model card; ours replaces it
                shutil.copy2(path, folder / path.name)
        config = {**_adapter_config(adapter), "base_model_name_or_path": record.base}
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        load_processor(record.base).save_pretrained(folder)
    (folder / "README.md").write_text(readme(record, _model_type(folder, record)), encoding="utf-8")
    (folder / MARKER).write_text(json.dumps(asdict(record), indent=2) + "\n", encoding="utf-8")


def _model_type(folder: Path, record: Export) -> str | None:
    config = folder / "config.json" if record.kind != "adapter" else Path(record.base) / "config.json"
    if not config.is_file():
        return None  # a hub id: the README names lmms-eval's choices instead
    return json.loads(config.read_text(encoding="utf-8")).get("model_type")


def vllm_rank(r: int) -> int | None:
    """The smallest `--max-lora-rank` vLLM accepts for rank r (None: above vLLM's largest)."""
    return next((v for v in VLLM_LORA_RANKS if v >= r), None)


def readme(record: Export, model_type: str | None) -> str:
    """README.md of an export: what it is, the base it needs, how to load and serve it."""
    folder, base = record.folder, record.base
    origin = f"`{record.checkpoint or record.source}`"
    lmms = LMMS_EVAL_MODELS.get(model_type or "", "llava_hf | qwen2_vl | qwen2_5_vl")
    if record.kind == "adapter":
        rank = vllm_rank(record.lora_r or 0)
        serve = (
            f"vllm serve {base} --enable-lora --lora-modules ovip={folder} --max-lora-rank {rank}"
            if rank
            else f"# rank {record.lora_r} is above vLLM's largest --max-lora-rank: export with --merge"
        )
        return f"""# OViP LoRA adapter

A PEFT LoRA adapter (rank {record.lora_r}) trained with OViP (online vision-language preference
learning) by `ovip train`, exported by `ovip export` from {origin}. It needs its base model:

    {base}

(`base_model_name_or_path` in adapter_config.json). The base's processor (tokenizer, image processor,
chat template) is in this folder.

```python
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor

base = AutoModelForImageTextToText.from_pretrained("{base}", dtype="{record.dtype}")
model = PeftModel.from_pretrained(base, "{folder}")
processor = AutoProcessor.from_pretrained("{folder}")
```

Serve it with vLLM (requests that name the model `ovip` get the adapter):

    {serve}

lmms-eval and VLMEvalKit load a model folder, not an adapter: `ovip export SOURCE -o FOLDER --merge`
writes one. Not run here; see ovip's docs/export.md.
"""
    what = (
        f"A full fine-tune of `{base}` by `ovip train`, as saved"
        if record.kind == "full"
        else f"`{base}` with an OViP-trained LoRA adapter merged into its weights\n"
        "(W + (alpha / r) B A, PEFT `merge_and_unload`)"
    )
    return f"""# OViP-trained model

{what}, in {record.dtype}, with the base's processor
(tokenizer, image processor, chat template). OViP is online vision-language preference learning; this
folder was exported by `ovip export` from {origin}. A plain transformers folder: neither PEFT nor ovip
is needed to load it.

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("{folder}")
processor = AutoProcessor.from_pretrained("{folder}")
```

    vllm serve {folder} --served-model-name ovip
    python -m lmms_eval --model {lmms} --model_args pretrained={folder} --tasks pope --batch_size 1

Not run here; VLMEvalKit and more in ovip's docs/export.md.
"""
