"""Policy: load a VLM with LoRA (model.py), batch conditions (batch.py), log-probs (logprobs.py), rollout (rollout.py)."""
