"""The online loop at service speed: prompts/s of the sequential and the overlapped loop against HTTP services
with latency, next to the sampling stage alone, and 1 vs 2 image-service replicas, measured side by side; and
the overlapped loop sampled by a policy server (`rollout.engine server`) next to that server's sampling alone.

    python benchmarks/bench_pipeline.py                      # the world recipe, 64 prompts per mode
    python benchmarks/bench_pipeline.py --only-server        # the policy-server comparison alone

Services run as subprocesses of this script, so that their work never holds the loop's interpreter lock:
the world judge (100 ms a call, at most 64 at once), the world describer (300 ms a call, at most 32 at once)
and the world renderer behind the OpenAI Images API (300 ms per pipeline call of at most 8 images, so one
replica draws 8 images per 300 ms; a second replica on another port doubles that). The latencies stand for
an LLM judge, an LLM describer and a diffusion model on their own GPUs (the paper's setting, Appendix D).
Each mode loads the policy afresh and runs `OnlineTrainer.run` over the same prompts; "sampling alone" times
`OnlineTrainer.sample_batch` over the same batches with no service and no update, and "in-process" runs the
loop with the world's services called in-process (no HTTP, no latency): the most any pipeline can reach,
since reference log-probs and updates stay in the main thread.

The server comparison starts `ovip serve policy --model world` as a process of its own (one torch thread, as
this process), with the same services, and measures, in `--server-repeats` rounds whose order alternates: the
server's sampling stage alone (every batch's prompts sent to it, the adapter pushed once, no service, no
update), the overlapped loop sampled by it (`train.max_staleness` unset: one batch ahead), and the overlapped
loop with `--max-staleness` (more batches in flight). Numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def serve(kind: str, port: int, latency: float, limit: int) -> None:
    """One service with `latency` seconds per call (per pipeline call for images), `limit` at once."""
    import uvicorn

    from ovip.config.world import WorldConfig
    from ovip.feedback.serve import world_reply
    from ovip.negatives.serve import WorldBackend, make_images_app
    from ovip.services.chat_server import make_app

    if kind == "images":

        class Slow(WorldBackend):
            def generate(self, jobs):
                time.sleep(latency)
                return super().generate(jobs)

        app = make_images_app(Slow(WorldConfig()), "world", max_batch=limit, batch_wait=0.005)
    else:
        reply, gate = world_reply(), threading.BoundedSemaphore(limit)

        def slow(messages, params):
            with gate:  # a server that serves `limit` requests at a time; the others queue
                time.sleep(latency)
                return reply(messages, params)

        app = make_app(slow, model="world", strict_model=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(kind: str, latency: float, limit: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            kind,
            "--port",
            str(port),
            "--latency",
            str(latency),
            "--limit",
            str(limit),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return proc, wait_healthy(port, 300, f"{kind} service")


def wait_healthy(port: int, tries: int, what: str) -> str:
    """The base URL (ending in /v1) once the server on `port` answers /health, within `tries` x ~0.1 s."""
    url = f"http://127.0.0.1:{port}"
    for _ in range(tries):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return url + "/v1"
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"the {what} did not start")


class ThreadPeak:
    """The most threads alive in this process while the block runs."""

    def __enter__(self):
        self.peak, self.stop = threading.active_count(), threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, threading.active_count())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def cpu_seconds(pids: list[int]) -> list[float]:
    """CPU seconds (user + system, every thread) used so far by this process and by each of `pids`."""
    tick = os.sysconf("SC_CLK_TCK")
    out = [sum(os.times()[:2])]
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out.append((int(fields[11]) + int(fields[12])) / tick)  # utime, stime
    return out


def stage_seconds(trainer) -> dict[str, float]:
    lines = [json.loads(x) for x in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    from ovip.train.timers import STAGES

    out = {}
    for key in STAGES:
        out[key] = sum(m.get(f"time/{key}", 0.0) for m in lines) + trainer.timers.seconds.get(key, 0.0)
    return out


def measure(
    cfg, mode: str, images_url: str, out: Path, policy_url: str = "", max_staleness=None, pids=()
) -> dict:
    """One mode's run: "sampling" (the stage alone), "in-process", a pipeline mode, or (with `policy_url`)
    "server sampling" / "server overlapped", sampled by the policy server."""
    from ovip.config import from_dict, to_dict
    from ovip.train.run import make_trainer

    data = to_dict(cfg)
    alone = mode in ("sampling", "server sampling")
    pipeline = "concurrent" if alone or mode == "in-process" else mode.removeprefix("server ")
    folder = out / (mode.replace(" ", "-") + (f"-{max_staleness}" if max_staleness else ""))
    data["train"].update(pipeline=pipeline, output_dir=str(folder), max_staleness=max_staleness)
    data["negatives"]["base_url"] = images_url
    if policy_url:
        data["rollout"].update(engine="server", base_url=policy_url, model="world")
    if mode == "in-process":  # the world's judge, describer and renderer called in-process: no latency at all
        data["judge"]["kind"] = data["describer"]["kind"] = data["negatives"]["kind"] = "world"
    trainer = make_trainer(from_dict(data))
    prompts = trainer.total_prompts
    load = os.getloadavg()[0]
    cpu = cpu_seconds(list(pids))
    with ThreadPeak() as threads:
        begin = time.perf_counter()
        if alone:
            if policy_url:  # the adapter the loop's first batch samples with, as the loop pushes it
                trainer._prepare()
                trainer.sampler.start(0, trainer.train_model)
            flights = [trainer.sample_batch(s) for s in range(0, prompts, cfg.rollout.prompts_per_batch)]
            sampled = sum(f.result().seconds for f in flights)
        else:
            trainer.run()
        seconds = time.perf_counter() - begin
    cpu = [b - a for a, b in zip(cpu, cpu_seconds(list(pids)), strict=True)]
    if alone:
        trainer.sampler.close()
    stages = {"sampling": trainer.timers.seconds["sampling"] + sampled} if alone else stage_seconds(trainer)
    return {
        "mode": mode + (f", max_staleness {max_staleness}" if max_staleness else ""),
        "seconds": seconds,
        "prompts_per_s": prompts / seconds,
        "threads": threads.peak,
        "load": load,
        "load_after": os.getloadavg()[0],
        "stages": stages,
        "steps": trainer.step,
        "pairs": trainer.counters.pairs,
        "staleness": trainer.counters.staleness_max,
        "cpu": cpu,  # this process, then each of `pids`
    }


def start_policy(config: str, root: Path) -> tuple[subprocess.Popen, str]:
    """`ovip serve policy --model world` in a process of its own, one torch thread, adapters read from `root`."""
    port = free_port()
    command = [sys.executable, "-m", "ovip.cli", "serve", "policy", "--model", "world", "--port", str(port)]
    command += ["--config", config, "--adapter-root", str(root)]
    proc = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    return proc, wait_healthy(port, 1200, "policy server")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--prompts", type=int, default=64, help="prompts per mode (batches of rollout.prompts_per_batch)"
    )
    p.add_argument("--judge-latency", type=float, default=0.1)
    p.add_argument("--judge-limit", type=int, default=64)
    p.add_argument("--describer-latency", type=float, default=0.3)
    p.add_argument("--describer-limit", type=int, default=32)
    p.add_argument("--image-latency", type=float, default=0.3)
    p.add_argument("--image-limit", type=int, default=8, help="images per pipeline call (per replica)")
    p.add_argument("--config", default="world")
    p.add_argument("--only-server", action="store_true", help="only the policy-server comparison")
    p.add_argument("--server-repeats", type=int, default=3, help="rounds of the policy-server comparison")
    p.add_argument(
        "--max-staleness", type=int, default=3, help="the deeper overlapped loop's train.max_staleness"
    )
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--latency", type=float, help=argparse.SUPPRESS)
    p.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args, extra = p.parse_known_args()
    if args.serve:
        return serve(args.serve, args.port, args.latency, args.limit)

    import torch

    from ovip.config import load

    torch.set_num_threads(1)  # one torch thread here, one in the policy server: on a small machine, two
    # threads of one process contend with each other and with the services (docs/performance.md)
    procs = []
    out = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        judge, judge_url = start("judge", args.judge_latency, args.judge_limit)
        describer, describer_url = start("describer", args.describer_latency, args.describer_limit)
        image_1, image_url_1 = start("images", args.image_latency, args.image_limit)
        image_2, image_url_2 = start("images", args.image_latency, args.image_limit)
        policy, policy_url = start_policy(args.config, out)
        procs = [judge, describer, image_1, image_2, policy]
        cfg = load(
            args.config,
            [
                "--train.max_examples",
                str(args.prompts),
                "--train.save_every",
                "0",
                "--judge.kind",
                "openai",
                "--judge.base_url",
                judge_url,
                "--judge.model",
                "world",
                "--judge.max_concurrency",
                str(args.judge_limit),
                "--describer.kind",
                "openai",
                "--describer.base_url",
                describer_url,
                "--describer.model",
                "world",
                "--describer.max_concurrency",
                str(args.describer_limit),
                "--negatives.kind",
                "http",
                "--negatives.base_url",
                image_url_1,
                "--negatives.model",
                "world",
                "--negatives.height",
                "64",
                "--negatives.width",
                "64",
                "--negatives.max_concurrency",
                str(args.image_limit),
                *extra,
            ],
        )
        print(
            f"world recipe, {args.prompts} prompts x k={cfg.rollout.k}, {cfg.rollout.prompts_per_batch} prompts "
            f"per batch; judge {args.judge_latency * 1000:.0f} ms (<= {args.judge_limit} at once), describer "
            f"{args.describer_latency * 1000:.0f} ms (<= {args.describer_limit}), images "
            f"{args.image_latency * 1000:.0f} ms per call of <= {args.image_limit}; torch threads "
            f"{torch.get_num_threads()} here, 1 in the policy server; {os.cpu_count()} CPUs",
            flush=True,
        )
        both = f"{image_url_1},{image_url_2}"
        runs = []
        if not args.only_server:
            runs = [
                measure(cfg, "sampling", image_url_1, out),
                measure(cfg, "in-process", image_url_1, out),
                measure(cfg, "sequential", both, out),
                measure(cfg, "concurrent", both, out),
                measure(cfg, "overlapped", both, out),
            ]
            one = measure(cfg, "overlapped", image_url_1, out / "one-replica")
            one["mode"] = "overlapped, 1 image replica"
            runs.append(one)
        served = []
        for repeat in range(args.server_repeats):
            order = [
                ("server sampling", None),
                ("server overlapped", None),
                ("server overlapped", args.max_staleness),
            ]
            for mode, staleness in order if repeat % 2 == 0 else order[::-1]:
                pids = [policy.pid, judge.pid, describer.pid, image_1.pid, image_2.pid]
                result = measure(cfg, mode, both, out / f"server-{repeat}", policy_url, staleness, pids)
                print(
                    f"  round {repeat + 1}: {result['mode']}: {result['prompts_per_s']:.2f} prompts/s",
                    flush=True,
                )
                served.append(result)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    if runs:
        report(runs)
    report_server(served)


def report(runs: list[dict]) -> None:
    alone, ceiling = runs[0]["prompts_per_s"], runs[1]["prompts_per_s"]
    print(
        f"\n{'mode':<30}{'seconds':>8}{'prompts/s':>10}{'x sampling':>11}{'x in-process':>13}{'steps':>6}"
        f"{'pairs':>6}{'threads':>8}{'load':>6}   stage seconds: sampling / scoring / description / "
        f"negative_image / forward / post_processing / service_wait"
    )
    for r in runs:
        stages = " / ".join(f"{v:.1f}" for v in r["stages"].values())
        print(
            f"{r['mode']:<30}{r['seconds']:>8.1f}{r['prompts_per_s']:>10.2f}{r['prompts_per_s'] / alone:>11.2f}"
            f"{r['prompts_per_s'] / ceiling:>13.2f}{r['steps']:>6}{r['pairs']:>6}{r['threads']:>8}{r['load']:>6.1f}"
            f"   {stages}"
        )
    seq, over, one = runs[2], runs[4], runs[5]
    print(
        f"\noverlapped / sampling alone: {over['prompts_per_s'] / alone:.2f} (target >= 0.8); sequential / "
        f"sampling alone: {seq['prompts_per_s'] / alone:.2f}; overlapped / sequential: "
        f"{over['prompts_per_s'] / seq['prompts_per_s']:.1f}x; overlapped / in-process services: "
        f"{over['prompts_per_s'] / ceiling:.2f}"
    )
    print(
        f"image replicas (overlapped loop): {one['prompts_per_s']:.2f} prompts/s with 1, "
        f"{over['prompts_per_s']:.2f} with 2 ({over['prompts_per_s'] / one['prompts_per_s']:.2f}x); "
        f"negative_image stage {one['stages']['negative_image']:.1f} s vs {over['stages']['negative_image']:.1f} s"
    )


def report_server(served: list[dict]) -> None:
    """Per round, each loop's prompts/s over the same round's server sampling alone; the median and range; the
    CPU seconds each side used, and how many cores they kept busy on average."""
    import statistics

    from ovip.train.timers import STAGES

    rounds = [served[i : i + 3] for i in range(0, len(served), 3)]
    print(
        f"\npolicy server (its own process, 1 torch thread): {'mode':<40}{'seconds':>8}{'prompts/s':>10}"
        f"{'x sampling':>11}{'steps':>6}{'stale':>6}{'threads':>8}{'load':>12}{'CPU s: trainer/policy/services':>32}"
        f"{'cores busy':>11}   stage seconds: {' / '.join(STAGES)}"
    )
    ratios: dict[str, list[float]] = {}
    for i, group in enumerate(rounds):
        alone = next(r for r in group if r["mode"] == "server sampling")["prompts_per_s"]
        for r in group:
            ratio = r["prompts_per_s"] / alone
            ratios.setdefault(r["mode"], []).append(ratio)
            stages = " / ".join(f"{v:.1f}" for v in r["stages"].values())
            cpu = f"{r['cpu'][0]:.1f} / {r['cpu'][1]:.1f} / {sum(r['cpu'][2:]):.1f}"
            print(
                f"round {i + 1} {r['mode']:<40}{r['seconds']:>8.1f}{r['prompts_per_s']:>10.2f}{ratio:>11.2f}"
                f"{r['steps']:>6}{r['staleness']:>6}{r['threads']:>8}{r['load']:>6.1f}->{r['load_after']:<5.1f}"
                f"{cpu:>32}{sum(r['cpu']) / r['seconds']:>11.2f}   {stages}"
            )
    for mode, values in ratios.items():
        if mode != "server sampling":
            print(
                f"{mode} / server sampling alone: median {statistics.median(values):.2f} "
                f"(range {min(values):.2f}-{max(values):.2f} over {len(values)} rounds; target >= 0.8)"
            )


if __name__ == "__main__":
    main()
