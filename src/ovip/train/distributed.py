"""Data parallelism through accelerate: the ranks of a run and the few collectives the online loop needs.

    accelerate launch --multi_gpu --num_processes N -m ovip.cli train --config RECIPE     (= ovip train --nproc N)
    accelerate launch --config_file configs/accelerate/zero3.yaml -m ovip.cli train ...   (FSDP, DeepSpeed ZeRO)

The engine is accelerate's (Accelerator.prepare: DDP, FSDP or DeepSpeed), never a hand-written all-reduce: the
gradients of a step go through `Accelerator.backward` and are reduced on its last micro-batch (`no_sync` before
it), and every rank takes the same optimizer step. On CPU the same code runs over gloo: `accelerate launch
--multi_gpu --num_processes 2` starts the ranks with torchrun and a policy on `cpu` selects accelerate's
MULTI_CPU backend (accelerate's `--cpu` flag alone starts a single process unless MPI is used). What the loop
adds to the engine, so that N ranks run Algorithm 1 (Table 6) as the paper's four sampling processes did
(Appendix D):

* prompts: prompt i of the data order goes to rank i % N, inside the rollout batches a single process would
  make (`share`), so every rank runs the same loop iterations and the data cursor, which the learning-rate
  schedule and the method schedules follow, is the same on every rank. A rank whose share of a batch is empty
  still joins the batch's collectives;
* buffer: each rank keeps its own experience buffer (Appendix F) and trains on N / world of its experiences per
  step; a step happens when every rank holds its share (`min` of the buffer sizes, one collective). The time a
  rank waits there for the slowest one is `time/sync_wait`, the stall Appendix D describes ("repeated sampling by
  one subprocess may block others due to synchronization constraints");
* stops: a rank whose services exceed the error budget stops every rank, each with its checkpoint (`gather`
  of the stop messages after every batch); a rank that dies (SIGKILL) makes the others' next collective fail,
  and the launcher (torchrun) ends the job; `train.collective_timeout` bounds any other wait;
* logs: rank 0 writes metrics.jsonl, experiences.jsonl and summary.json for all ranks (`gather`).

A single process is the same code with world 1, where every collective returns its input.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from datetime import timedelta

import torch

from ovip.errors import ConfigError


class Ranks:
    """The processes of a run (`rank` of `world`) over an `accelerate.Accelerator`."""

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.rank = accelerator.process_index
        self.world = accelerator.num_processes
        self.main = accelerator.is_main_process
        self.engine = str(accelerator.distributed_type).split(".")[
            -1
        ]  # NO, MULTI_GPU, MULTI_CPU, FSDP, DEEPSPEED

    @classmethod
    def start(cls, device: str = "cpu", timeout: float = 1800.0) -> Ranks:
        """The Accelerator of this process. Under a launcher (WORLD_SIZE > 1) a policy on `cpu`, or a machine
        without CUDA, selects gloo; otherwise accelerate picks the engine its launch configured. The model is
        placed by ovip (`policy_device`), not by accelerate, so one process keeps `model.device` as it was."""
        from accelerate import Accelerator
        from accelerate.utils import InitProcessGroupKwargs

        launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
        cpu = launched and (str(device) == "cpu" or not torch.cuda.is_available())
        handlers = [InitProcessGroupKwargs(timeout=timedelta(seconds=timeout))]
        return cls(Accelerator(cpu=cpu, device_placement=False, kwargs_handlers=handlers))

    # ----- the run's shape ------------------------------------------------------------------------------------
    def policy_device(self, configured: str) -> str:
        """Where this rank's policy lives: the recipe's device for one process or on CPU, else this rank's GPU."""
        device = self.accelerator.device
        return configured if self.world == 1 or device.type == "cpu" else str(device)

    def local_batch(self, batch_size: int) -> int:
        """Experiences per rank and optimizer step: the global batch N split evenly."""
        if batch_size % self.world:
            raise ConfigError(
                f"train.batch_size: {batch_size} experiences per step cannot be split evenly over "
                f"{self.world} ranks; use a multiple of {self.world}"
            )
        return batch_size // self.world

    def share(self, start: int, n: int) -> list[int]:
        """This rank's prompts of the rollout batch [start, start + n): every world-th one."""
        return [i for i in range(start, start + n) if i % self.world == self.rank]

    @property
    def sharded(self) -> bool:
        """Weights split across ranks (FSDP, ZeRO-3): every forward is a collective unless gathered first."""
        return self.engine == "FSDP" or (self.engine == "DEEPSPEED" and self._zero_stage() == 3)

    # ----- the engine -----------------------------------------------------------------------------------------
    def prepare(self, model, optimizer, micro_batch_size: int, max_grad_norm: float):
        """(training module, optimizer) through `Accelerator.prepare`: the DDP/FSDP/DeepSpeed wrapper, or the
        model itself for one process."""
        if self.engine == "DEEPSPEED":  # no dataloader to read the micro-batch from (accelerate requires one)
            ds = self.accelerator.state.deepspeed_plugin.deepspeed_config
            for key, value in (
                ("train_micro_batch_size_per_gpu", micro_batch_size),
                ("gradient_accumulation_steps", 1),
                ("gradient_clipping", max_grad_norm),
            ):
                if ds.get(key, "auto") == "auto":
                    ds[key] = value
        return self.accelerator.prepare(model, optimizer)

    @contextlib.contextmanager
    def accumulating(self, train_model, last: bool):
        """One micro-batch of a step: gradients stay local (`no_sync`) until the last, whose backward reduces
        them; DeepSpeed reads the same boundary from `sync_gradients`."""
        self.accelerator.sync_gradients = last
        try:
            with contextlib.nullcontext() if last else self.accelerator.no_sync(train_model):
                yield
        finally:
            self.accelerator.sync_gradients = True

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss)

    def clip_grad_norm(self, train_model, parameters, max_norm: float) -> torch.Tensor:
        """The global gradient norm, clipped (FSDP clips over its own flat parameters)."""
        if self.engine == "FSDP":
            parameters = train_model.parameters()
        norm = self.accelerator.clip_grad_norm_(parameters, max_norm)
        return torch.as_tensor(norm if norm is not None else float("nan"))

    @contextlib.contextmanager
    def full_model(self, train_model, model):
        """`model` (the unwrapped policy) with every weight on this rank, for generation and the reference's
        no-grad forwards, which differ in number between ranks. DDP and ZeRO-1/2 keep every weight everywhere;
        ZeRO-3 gathers them (`deepspeed.zero.GatheredParameters`, as TRL's `unwrap_model_for_generation` does)
        and FSDP2 unshards each unit and keeps it unsharded until the block ends. Every rank enters together."""
        if not self.sharded or self.world == 1 or train_model is None:
            yield model
        elif self.engine == "DEEPSPEED":
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(train_model.parameters())):
                yield model
        else:
            from torch.distributed.fsdp import FSDPModule

            units = [m for m in train_model.modules() if isinstance(m, FSDPModule)]
            for unit in units:
                unit.set_reshard_after_forward(False, recurse=False)
                unit.unshard()
            try:
                yield model
            finally:
                for unit in units:
                    unit.reshard()
                    unit.set_reshard_after_forward(True, recurse=False)

    def adapter_state(self, train_model) -> dict | None:
        """The full trained state for rank 0 to save (a collective) when weights are sharded; None otherwise
        (the unwrapped model holds them)."""
        if not self.sharded or self.world == 1:
            return None
        return self.accelerator.get_state_dict(train_model)

    # ----- collectives (identity for one process) -------------------------------------------------------------
    def _reduce(self, value: float, how: str) -> float:
        if self.world == 1:
            return value
        values = self.accelerator.gather(torch.tensor([float(value)], device=self.accelerator.device))
        return float(getattr(values, how)())

    def min(self, value: int) -> int:
        return int(self._reduce(value, "min"))

    def mean(self, value: float) -> float:
        return self._reduce(value, "mean")

    def gather(self, obj) -> list:
        """[rank 0's obj, rank 1's obj, ...] on every rank."""
        if self.world == 1:
            return [obj]
        from accelerate.utils import gather_object

        return gather_object([obj])

    def barrier(self) -> None:
        if self.world > 1:
            self.accelerator.wait_for_everyone()

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the block first (building the world, caching a base model), then the others."""
        with self.accelerator.main_process_first():
            yield

    def _zero_stage(self) -> int:
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        return int(getattr(plugin, "zero_stage", 0) or 0)


def launched_rank() -> int:
    """This process's rank under a launcher (torchrun sets RANK), 0 otherwise; known before any Accelerator."""
    return int(os.environ.get("RANK", "0"))


def shutdown(finished: bool = False) -> None:
    """Tear the process group down at the end of a run, so no rank exits with it still open.

    After a finished run, or a stop every rank agreed on, every rank first meets the others (as accelerate's
    `end_training` does): a rank that destroyed its group and exited while a peer still used the connection could
    bring the peer's gloo threads down with `terminate called without an active exception` (seen in CI on 2-rank
    runs). After a failure the peers may be gone, so there is no barrier then; a barrier that fails because a peer
    died is ignored, the group is destroyed all the same.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if finished and torch.distributed.get_world_size() > 1:
            try:
                torch.distributed.barrier()
            except RuntimeError:
                pass
        torch.distributed.destroy_process_group()


def launch_command(nproc: int, argv: list[str], port: int | None = None) -> list[str]:
    """`ovip ARGV` as `accelerate launch` of `nproc` ranks with the packaged DDP config (`ovip train --nproc N`);
    the `--nproc` option is dropped, a free port on this machine is the rendezvous."""
    from pathlib import Path

    rest, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == "--nproc":
            skip = True
        elif not token.startswith("--nproc="):
            rest.append(token)
    config = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "ddp.yaml"
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "--num_processes",
        str(nproc),
        "--main_process_port",
        str(port or free_port()),
        "-m",
        "ovip.cli",
        *rest,
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
