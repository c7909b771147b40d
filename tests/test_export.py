"""`ovip export`: a merged folder gives the log-probs of base + adapter and loads with plain transformers; an
adapter export loads with PEFT; a full fine-tune exports its model folder as saved; refusals are one line.

Log-probs are the project's one log-prob function (`sequence_logps`) on the same conditions throughout."""

import filecmp
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from ovip.cli import main
from ovip.policy.batch import Condition
from ovip.policy.logprobs import sequence_logps
from ovip.policy.model import LoraSpec, Policy
from ovip.policy.tiny import tiny_llava

CONDITIONS = [
    Condition(Image.new("RGB", (32, 32), (200, 10, 10)), "is there a red cube ?", "yes , a red cube ."),
    Condition(Image.new("RGB", (48, 40), (10, 10, 200)), "what color is the ball ?", "the ball is blue ."),
]


def logps(model, processor) -> torch.Tensor:
    with torch.no_grad():
        return sequence_logps(model, processor, CONDITIONS).logps


def load(folder):
    return AutoModelForImageTextToText.from_pretrained(folder), AutoProcessor.from_pretrained(folder)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny LLaVA saved as a base folder and a LoRA adapter on it: (base folder, adapter folder, log-probs
    of the base, log-probs of base + adapter). PEFT starts lora_B at zero (the adapter a no-op); it is drawn
    at random here so that the adapter moves the log-probs and matching them means something."""
    root = tmp_path_factory.mktemp("export").resolve()
    model, processor = tiny_llava()
    model.save_pretrained(root / "base")
    processor.save_pretrained(root / "base")
    policy = Policy.from_pretrained(str(root / "base"), lora=LoraSpec(r=4, alpha=8, dropout=0.0))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
    policy.model.save_pretrained(root / "adapter")
    adapted = logps(policy.model, processor)
    with policy.reference() as base:
        before = logps(base, processor)
    assert (adapted - before).abs().max() > 1e-2
    return root / "base", root / "adapter", before, adapted


@pytest.fixture(scope="module")
def merged(tiny, tmp_path_factory):
    _, adapter, _, _ = tiny
    out = tmp_path_factory.mktemp("merged") / "out"
    assert main(["export", str(adapter), "-o", str(out), "--merge"]) == 0
    return out


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("ovip: error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_merged_llava_gives_the_log_probs_of_base_plus_adapter(tiny, merged):
    base, adapter, _, adapted = tiny
    model, processor = load(merged)
    assert type(model).__name__ == "LlavaForConditionalGeneration" and not hasattr(model, "peft_config")
    assert not (merged / "adapter_config.json").exists()  # transformers would load it as an adapter
    torch.testing.assert_close(logps(model, processor), adapted, atol=1e-5, rtol=0)
    record = json.loads((merged / "ovip_export.json").read_text())
    assert record["kind"] == "merged" and record["base"] == str(base) and record["adapter"] == str(adapter)
    assert record["dtype"] == "float32" and model.dtype == torch.float32
    readme = (merged / "README.md").read_text()
    assert f"vllm serve {merged.resolve()}" in readme and "--model llava_hf" in readme


def test_merged_folder_loads_without_ovip(merged):
    """A fresh interpreter in which `import ovip` fails loads the folder with transformers alone; its logits
    equal this process's on the same inputs."""
    script = f"""
import sys
sys.modules["ovip"] = None  # any import of ovip (or of a module under it) now raises ImportError
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
model = AutoModelForImageTextToText.from_pretrained({str(merged)!r})
processor = AutoProcessor.from_pretrained({str(merged)!r})
messages = [{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": "is there a cube ?"}}]}}]
text = processor.apply_chat_template(messages, add_generation_prompt=True)
inputs = processor(text=[text], images=[Image.new("RGB", (32, 32), (200, 10, 10))], return_tensors="pt")
with torch.no_grad():
    torch.save(model(**inputs).logits, {str(merged.parent / "logits.pt")!r})
print(type(model).__name__, type(processor).__name__)
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["LlavaForConditionalGeneration", "LlavaProcessor"]
    model, processor = load(merged)
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "is there a cube ?"}]}
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.new("RGB", (32, 32), (200, 10, 10))], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(torch.load(merged.parent / "logits.pt"), model(**inputs).logits)


def test_adapter_export_loads_with_peft_and_names_its_base(tiny, tmp_path, capsys):
    """The adapter's config names a base that is gone; `--model` gives the base, and the export's
    adapter_config.json names that one (absolute), which PEFT then loads."""
    from peft import PeftModel

    base, adapter, _, adapted = tiny
    moved = tmp_path / "adapter"
    moved.mkdir()
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        (moved / name).write_bytes((adapter / name).read_bytes())
    config = json.loads((moved / "adapter_config.json").read_text())
    (moved / "adapter_config.json").write_text(
        json.dumps({**config, "base_model_name_or_path": "/gone/base"})
    )
    out = tmp_path / "lora"
    assert main(["export", str(moved), "-o", str(out)]) == 2  # the recorded base is gone
    one_line_error(capsys, "/gone/base", "no such folder")
    assert main(["export", str(moved), "-o", str(out), "--model", str(base)]) == 0
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base)
    readme = (out / "README.md").read_text()
    assert str(base) in readme and "PeftModel.from_pretrained" in readme
    assert f"--enable-lora --lora-modules ovip={out.resolve()} --max-lora-rank 8" in readme  # rank 4 -> 8
    model = PeftModel.from_pretrained(
        AutoModelForImageTextToText.from_pretrained(config["base_model_name_or_path"]), str(out)
    )
    torch.testing.assert_close(logps(model, AutoProcessor.from_pretrained(out)), adapted, atol=1e-5, rtol=0)


def test_run_merges_in_its_recipe_dtype_unless_dtype_given(tiny, tmp_path):
    """A LoRA run whose recipe says bfloat16 merges in bfloat16; `--dtype float32` overrides it; a checkpoint's
    adapter folder inside the run is exported with the run's recipe and names that checkpoint."""
    from safetensors.torch import load_file

    from ovip.buffer import ExperienceBuffer
    from ovip.train import checkpoint

    base, adapter, _, adapted = tiny
    run = tmp_path / "run"
    policy = Policy.from_pretrained(str(base), adapter=str(adapter))
    optimizer = torch.optim.AdamW(policy.trainable_parameters())
    step = checkpoint.save(run, policy, optimizer, ExperienceBuffer(), {"step": 2, "cursor": 4})
    recipe = {"model": {"path": str(base), "dtype": "bfloat16", "lora_r": 4, "lora_alpha": 8}}
    (run / "config.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["export", str(run), "-o", str(tmp_path / "bf16"), "--merge"]) == 0
    weights = load_file(tmp_path / "bf16" / "model.safetensors")
    assert {w.dtype for w in weights.values()} == {torch.bfloat16}
    assert (
        main(["export", str(step / "adapter"), "-o", str(tmp_path / "fp32"), "--merge", "--dtype", "float32"])
        == 0
    )
    record = json.loads((tmp_path / "fp32" / "ovip_export.json").read_text())
    assert record["checkpoint"] == str(step.resolve()) and record["dtype"] == "float32"
    torch.testing.assert_close(logps(*load(tmp_path / "fp32")), adapted, atol=1e-5, rtol=0)


def test_full_finetune_run_exports_its_model_folder_as_saved(tiny, tmp_path, capsys):
    from ovip.buffer import ExperienceBuffer
    from ovip.train import checkpoint

    base, _, before, _ = tiny
    run = tmp_path / "run"
    model, processor = tiny_llava(seed=5)
    policy = Policy(model, processor, finetune="full")
    optimizer = torch.optim.AdamW(policy.trainable_parameters())
    step = checkpoint.save(run, policy, optimizer, ExperienceBuffer(), {"step": 3, "cursor": 6})
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"path": str(base), "finetune": "full"}}))
    out = tmp_path / "out"
    assert main(["export", str(run), "-o", str(out)]) == 2
    one_line_error(capsys, "full fine-tune", "--merge")
    assert main(["export", str(run), "-o", str(out), "--merge", "--dtype", "bfloat16"]) == 2
    one_line_error(capsys, "as saved", "float32")
    assert main(["export", str(run), "-o", str(out), "--merge"]) == 0
    saved = step / "model"
    assert not filecmp.dircmp(saved, out).diff_files
    assert {p.name for p in saved.iterdir()} <= {p.name for p in out.iterdir()}
    loaded, loaded_processor = load(out)
    expected = logps(model, processor)
    assert (expected - before).abs().max() > 1e-2  # another model than the base whose processor it carries
    torch.testing.assert_close(logps(loaded, loaded_processor), expected, atol=1e-5, rtol=0)
    assert json.loads((out / "ovip_export.json").read_text())["kind"] == "full"


def test_refusals_are_one_line(tiny, tmp_path, capsys):
    _, adapter, _, _ = tiny
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"path": "world"}}))
    assert main(["export", str(run), "-o", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "no complete checkpoint", str(run / "checkpoints"))
    assert main(["export", str(tmp_path / "nothing"), "-o", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "no such folder")
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "neither a run folder", "adapter_config.json")
    assert main(["export", str(adapter), "-o", str(adapter)]) == 2
    one_line_error(capsys, "holds the source")
    assert main(["export", str(adapter), "-o", str(tmp_path / "out"), "--dtype", "fp8"]) == 2
    one_line_error(capsys, "--dtype must be one of")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "adapter_config.json").write_text(json.dumps({"r": 4, "peft_type": "LORA"}))
    assert main(["export", str(bare), "-o", str(tmp_path / "out")]) == 2
    one_line_error(capsys, "names no base model", "--model")
    assert not (tmp_path / "out").exists()

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main(["export", str(adapter), "-o", str(busy)]) == 2
    one_line_error(capsys, "not empty", "--overwrite")
    assert main(["export", str(adapter), "-o", str(busy), "--overwrite"]) == 2
    one_line_error(capsys, "not one")
    assert (busy / "notes.txt").read_text() == "mine"

    earlier = tmp_path / "earlier"
    assert main(["export", str(adapter), "-o", str(earlier)]) == 0
    (earlier / "stale.bin").write_text("from before")
    assert main(["export", str(adapter), "-o", str(earlier)]) == 2
    one_line_error(capsys, "not empty")
    assert main(["export", str(adapter), "-o", str(earlier), "--overwrite"]) == 0
    assert not (earlier / "stale.bin").exists() and (earlier / "adapter_model.safetensors").is_file()
    assert not list(tmp_path.glob(".*export-tmp"))


def test_world_run_exports_merged_and_as_adapter(tiny_world, uninterrupted_run, tmp_path, monkeypatch):
    """A trained tiny-world run (`model.path: world`): the merged export equals base + the run's newest adapter
    on the world's base model, and the adapter export names that base model's folder."""
    from peft import PeftModel

    from ovip.config import from_dict, read_yaml
    from ovip.train.checkpoint import latest
    from ovip.world.resolve import model_path

    _, _, environ = tiny_world
    monkeypatch.setenv("OVIP_CACHE", environ["OVIP_CACHE"])
    base = model_path(from_dict(read_yaml(uninterrupted_run / "config.yaml")))  # cached by the run
    policy = Policy.from_pretrained(base, adapter=str(uninterrupted_run), finetune="none")
    adapted = logps(policy.model, policy.processor)
    with policy.reference() as reference:
        assert (adapted - logps(reference, policy.processor)).abs().max() > 1e-3  # training moved them

    merged, lora = tmp_path / "merged", tmp_path / "lora"
    assert main(["export", str(uninterrupted_run), "-o", str(merged), "--merge"]) == 0
    record = json.loads((merged / "ovip_export.json").read_text())
    assert record["checkpoint"] == str(latest(uninterrupted_run).resolve())
    assert record["base"] == str(base) and record["dtype"] == "float32"
    torch.testing.assert_close(logps(*load(merged)), adapted, atol=1e-5, rtol=0)

    assert main(["export", str(uninterrupted_run), "-o", str(lora)]) == 0
    assert json.loads((lora / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), str(lora))
    torch.testing.assert_close(logps(model, AutoProcessor.from_pretrained(lora)), adapted, atol=1e-5, rtol=0)
