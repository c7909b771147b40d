"""The HTTP side of OViP (Appendix B.2, "Software infrastructure": the LLM and the diffusion model run as
services): one client transport with deadlines, replicas and failover; the `ovip serve` servers (judge and
describer over chat completions, images over the OpenAI Images API); the preflight check of a run's services."""
