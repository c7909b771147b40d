"""The rollout engines (`rollout.engine`): where the k samples of a prompt are drawn (Eq. 1).

    local    `ovip.train.rollout.LocalSampler`: the policy in the training process, in the loop's thread
    server   `ovip.train.rollout_server.ServerSampler`: policy servers beside the trainer (`ovip serve policy`,
             `vllm serve`), fed with the trainer's LoRA adapter as it trains

Each is built as `SAMPLERS[name](cfg, policy, examples, ranks, timers, run_dir)` and answers the
`ovip.train.rollout.Sampler` protocol; `pushes_adapter` says whether it needs a LoRA adapter to push.
"""

from __future__ import annotations

from ovip.config import registry
from ovip.config.sections import RolloutEngine
from ovip.train.rollout import LocalSampler
from ovip.train.rollout_server import ServerSampler

SAMPLERS = registry(RolloutEngine, {"local": LocalSampler, "server": ServerSampler})
