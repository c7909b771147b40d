"""Feedback: G_r (judge) and G_diff (describer) over OpenAI-compatible endpoints, the paper's prompts, a local server."""
