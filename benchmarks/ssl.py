"""CPU benchmark of SSL-frontend speaker models: training steps and extraction.

``python -m benchmarks.ssl [--size base_plus|tiny] [--batch 4] [--seconds 3] [--repeats 7]
[--threads N] [--no_memory]``

The model is a random-init WavLM of the Base+ size (12 layers, 768 dims,
group-norm conv stack: ``--size base_plus``; ``tiny`` is a 2-layer, 64-dim one
for a quick check) with an MHFA backend (64 heads, 128 compressed dims,
256-dim embedding) and a linear classification head over 100 classes.
Contenders, timed in turns (median of ``--repeats`` rounds after one warm-up
call each):

* ``wespk frozen`` / ``wespk joint``: one training step of wespk's
  ``SSL_MHFA`` (frontend frozen, or trained at ``frontend_lr_ratio`` 0.1 with
  wespk's parameter groups), cross-entropy, SGD;
* ``plain frozen`` / ``plain joint``: the same step written directly on
  ``transformers``: ``WavLMModel(..., output_hidden_states=True)`` (under
  ``no_grad`` when frozen), the hidden states stacked and the same MHFA
  module, the same loss and optimizer;
* ``wespk extract`` / ``plain extract``: an eval-mode forward under
  ``no_grad`` of the same batch.

The ratio column is the plain loop's time over wespk's (above 1: wespk is
faster), taken in each round from the two neighbouring calls and given as the
median over the rounds with its range (the load of other processes moves
between rounds far more than between two calls seconds apart). Peak memory is
the growth of the peak resident set size of a fresh process (Linux ``/proc``)
that builds one contender and runs it twice (``--no_memory`` skips it).
"""

import argparse
import os
import statistics
import sys
import time
from types import MappingProxyType
from typing import Callable, Tuple

import torch
import torch.nn.functional as F

from benchmarks.timing import cpu_name, in_fresh_process, load_averages, paired_ratios, round_robin_times

SIZES = MappingProxyType({
    # WavLM Base+: the official cfg's sizes (the conv stack and pos conv are WavLMConfig's defaults)
    "base_plus": MappingProxyType({"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                                   "intermediate_size": 3072, "feat_extract_norm": "group",
                                   "do_stable_layer_norm": False}),
    "tiny": MappingProxyType({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                              "intermediate_size": 128, "conv_dim": [32] * 7, "num_conv_pos_embeddings": 16,
                              "num_conv_pos_embedding_groups": 4, "feat_extract_norm": "group",
                              "do_stable_layer_norm": False}),
})
NUM_CLASSES = 100
LR = 0.01
CONTENDERS = ("wespk frozen", "plain frozen", "wespk joint", "plain joint", "wespk extract", "plain extract")


def build_wespk(size: str, frozen: bool):
    """wespk's SSL_MHFA with a linear head and its optimizer (wespk's parameter groups)."""
    from wespk.frontends.training import frontend_param_groups
    from wespk.models import get_speaker_model
    from wespk.train.trainer import encoder_param_groups
    torch.manual_seed(0)
    model = get_speaker_model("SSL_MHFA")(frontend="wavlm", embed_dim=256, head_nb=64, compression_dim=128,
                                          frontend_args={"config": dict(SIZES[size]), "frozen": frozen},
                                          frontend_lr_ratio=0.1)
    model.add_module("projection", torch.nn.Linear(256, NUM_CLASSES))
    groups = frontend_param_groups(model, encoder_param_groups(model, [], 1.0))
    for group in groups:
        group["lr"] = LR * group["lr_ratio"]
    return model, torch.optim.SGD(groups, lr=LR, momentum=0.9)


def build_plain(size: str, frozen: bool):
    """The same computation on transformers directly: WavLMModel + an MHFA module + a linear head."""
    from transformers import WavLMConfig, WavLMModel
    from wespk.frontends.aggregation import MHFA
    torch.manual_seed(0)
    config = WavLMConfig(**dict(SIZES[size]), layerdrop=0.0, mask_time_prob=0.0)
    wavlm = WavLMModel(config)
    pooling = MHFA(config.num_hidden_layers + 1, config.hidden_size, head_nb=64, compression_dim=128,
                   embed_dim=256)
    head = torch.nn.Linear(256, NUM_CLASSES)
    params = [{"params": list(pooling.parameters()) + list(head.parameters()), "lr": LR}]
    if frozen:
        wavlm.requires_grad_(False)
    else:
        params.append({"params": list(wavlm.parameters()), "lr": LR * 0.1})
    return (wavlm, pooling, head), torch.optim.SGD(params, lr=LR, momentum=0.9)


def plain_embed(parts, wav: torch.Tensor, frozen: bool) -> torch.Tensor:
    wavlm, pooling, _ = parts
    if frozen:
        with torch.no_grad():
            hidden = wavlm(wav, output_hidden_states=True).hidden_states
    else:
        hidden = wavlm(wav, output_hidden_states=True).hidden_states
    return pooling(torch.stack(hidden, dim=-1).transpose(1, 2))  # [B, D, T, L]


def batch_of(batch: int, seconds: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The random waveform batch and labels every contender gets."""
    generator = torch.Generator().manual_seed(1)
    wav = torch.randn(batch, int(seconds * 16000), generator=generator) * 0.1
    return wav, torch.arange(batch) % NUM_CLASSES


def make_contender(contender: str, size: str, batch: int, seconds: float) -> Callable[[], object]:
    """One contender's call: a training step (``frozen``, ``joint``) or an eval forward (``extract``)."""
    wav, labels = batch_of(batch, seconds)
    kind, mode = contender.split()
    frozen = mode != "joint"
    if kind == "wespk":
        model, optimizer = build_wespk(size, frozen)
        lengths = torch.full((batch,), wav.shape[1])

        def embed(training: bool) -> torch.Tensor:
            return model(wav, lengths)

        def train_mode() -> None:
            model.train()
        head = model.projection
    else:
        parts, optimizer = build_plain(size, frozen)

        def embed(training: bool) -> torch.Tensor:
            return plain_embed(parts, wav, frozen)

        def train_mode() -> None:
            for part in parts:
                part.train()
            if frozen:
                parts[0].eval()
        head = parts[2]
        model = torch.nn.ModuleList(parts)
    if mode == "extract":
        model.eval()

        def extract():
            with torch.no_grad():
                return embed(False)
        return extract

    def step():
        train_mode()
        loss = F.cross_entropy(head(embed(True)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def peak_memory_mb(contender: str, size: str, batch: int, seconds: float, threads: int) -> float:
    """Peak resident memory growth (MB) of this (fresh) process while it builds one contender and
    runs it twice: the high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``) minus
    the resident size before."""
    if threads:
        torch.set_num_threads(threads)
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as clear:
        clear.write("5")  # reset the peak RSS to the current RSS
    before = _status_kb("VmRSS")
    run = make_contender(contender, size, batch, seconds)
    run()
    run()
    return (_status_kb("VmHWM") - before) / 1024.0


def with_progress(name: str, run: Callable[[], object]) -> Callable[[], object]:
    """``run`` that prints its name and time to stderr after each call (long runs show progress)."""
    def call():
        begin = time.perf_counter()
        result = run()
        print(f"benchmarks.ssl: {name}: {time.perf_counter() - begin:.2f} s", file=sys.stderr, flush=True)
        return result
    return call


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base_plus")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: PyTorch's)")
    parser.add_argument("--no_memory", dest="memory", action="store_false",
                        help="skip the peak-memory runs (one fresh process per contender)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = load_averages()
    runs = {name: with_progress(name, make_contender(name, args.size, args.batch, args.seconds))
            for name in CONTENDERS}
    times = round_robin_times(runs, {name: 1 for name in runs}, repeats=args.repeats)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    memory = {}
    if args.memory:
        for name in CONTENDERS:
            memory[name] = in_fresh_process(peak_memory_mb, name, args.size, args.batch, args.seconds,
                                            args.threads)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"load average (1, 5, 15 min): {load_before} before, {load_averages()} after")
    print(f"WavLM {args.size} (random init) + MHFA; batch {args.batch} x {args.seconds:g} s; "
          f"median of {args.repeats} rounds")
    print()
    print("| contender | s/step | plain / wespk (median of rounds) | range over rounds | peak MB |")
    print("| --- | ---: | ---: | --- | ---: |")
    for name in CONTENDERS:
        kind, mode = name.split()
        ratio, spread = "1.00", ""
        if kind == "wespk":
            ratios = paired_ratios(times, f"plain {mode}", name)
            ratio, spread = f"{statistics.median(ratios):.3f}", f"{min(ratios):.3f} - {max(ratios):.3f}"
        peak = f"{memory[name]:.0f}" if name in memory else "-"
        print(f"| {name} | {seconds[name]:.3f} | {ratio} | {spread} | {peak} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
