"""The built-in world: scenes, renderer, text, parser, splits, tiny VLM and pretraining, judge/describer, benchmarks."""
