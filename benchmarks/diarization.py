"""Diarization of a long synthetic recording: real-time factor and peak memory.

    python -m benchmarks.diarization --model_dir exp/ge2e [--minutes 60] [--speakers 4] [--threads 2]
        [--work_dir /tmp/wespk_diar_bench] [--output_md MD]

Builds one recording of ``--minutes`` minutes from the bundled test speakers
(:func:`wespk.diarization.simulation.simulate_conversation`, seed 1), runs
``python -m wespk.bin.diarize`` on it in a child process with
``--threads`` threads (wall time, real-time factor, peak RSS of the child,
DER against the reference), then, in this process, times the clustering of
as many synthetic embeddings as the recording has sub-segment positions the
bounded way (chunked, the default above 3000 sub-segments) against the
baseline of one dense spectral clustering of all of them (time and the peak
memory numpy allocates, by tracemalloc). The child's CPU time (user + sys)
is reported beside its wall time: on a shared machine the wall time counts
the other processes too. The model dir can be made with
``python -m wespk.bin.checkpoint_tool convert-resemblyzer exp/ge2e``.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benchmarks.timing import cpu_name, load_averages

REPO = Path(__file__).resolve().parents[1]


def make_recording(work_dir: Path, minutes: float, speakers: int, seed: int = 1):
    import soundfile

    from wespk.diarization.rttm import write_rttm
    from wespk.diarization.simulation import SAMPLE_RATE, ConversationSpec, load_speech, speaker_recordings
    from wespk.diarization.simulation import simulate_conversation
    from wespk.diarization.pipeline import resolve_vad_method
    from wespk.features.vad import VoiceActivityDetector
    wav, rttm = work_dir / "long.wav", work_dir / "rttm"
    if wav.is_file() and rttm.is_file():
        return wav, rttm
    vad = VoiceActivityDetector(resolve_vad_method("auto"))
    sources = speaker_recordings(str(REPO / "corpus" / "mini" / "test"))
    speech = {s: [load_speech(p, vad) for p in paths] for s, paths in sources.items()}
    spec = ConversationSpec()
    mean_turn = (spec.min_turn + spec.max_turn) / 2 + (spec.min_pause + spec.max_pause) / 2
    samples, turns = simulate_conversation(speech, np.random.default_rng(seed), "long", spec,
                                           num_speakers=speakers, num_turns=int(minutes * 60 / mean_turn))
    work_dir.mkdir(parents=True, exist_ok=True)
    soundfile.write(wav, samples, SAMPLE_RATE, subtype="PCM_16")
    write_rttm(rttm, turns)
    (work_dir / "wav.scp").write_text(f"long {wav}\n")
    return wav, rttm


def run_child(model_dir: str, work_dir: Path, threads: int):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = work_dir / "out"
    cmd = [sys.executable, "-m", "wespk.bin.diarize", "--model_dir", model_dir, "--data", str(work_dir),
           "--out_dir", str(out), "--ref_rttm", str(work_dir / "rttm"), "--plot"]
    log_path = work_dir / "diarize.log"
    begin = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, env=env, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - begin
    if status != 0:
        raise RuntimeError(f"diarize failed, see {log_path}:\n{log_path.read_text()[-3000:]}")
    scores = json.loads((out / "der.json").read_text())
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, scores, " ".join(cmd)


def clustering_comparison(n: int, dim: int = 256, speakers: int = 4, seed: int = 1):
    """Chunked vs dense clustering of ``n`` synthetic embeddings (``speakers`` clusters in turns)."""
    from wespk.diarization.clustering import ClusteringConfig, cluster_embeddings
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((speakers, dim))
    truth = np.repeat(np.arange(n // 6 + 1) % speakers, 6)[:n]
    embeddings = centres[truth] + 0.6 * rng.standard_normal((n, dim))
    rows = {}
    for name, config in (("chunked (default)", ClusteringConfig()),
                         ("dense spectral (baseline)", ClusteringConfig(max_dense=max(n, 1000)))):
        tracemalloc.start()
        begin = time.perf_counter()
        labels = cluster_embeddings(embeddings, config)
        seconds = time.perf_counter() - begin
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows[name] = (seconds, peak, int(labels.max()) + 1)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work_dir", default="/tmp/wespk_diar_bench")
    parser.add_argument("--skip_clustering", action="store_true", help="only the end-to-end run")
    parser.add_argument("--output_md", default=None)
    args = parser.parse_args(argv)
    work_dir = Path(args.work_dir)
    load_before = load_averages()
    wav, _ = make_recording(work_dir, args.minutes, args.speakers)
    import soundfile
    duration = soundfile.info(str(wav)).duration
    seconds, cpu_seconds, peak_rss, scores, command = run_child(args.model_dir, work_dir, args.threads)
    total = scores["recordings"]["ALL"]
    lines = [f"CPU: {cpu_name()}; {args.threads} threads; load average before {load_before}",
             f"recording: {duration / 60:.1f} min, {args.speakers} speakers (seed 1); model {args.model_dir}",
             f"command: {command}", "",
             "| run | wall time (s) | real-time factor | CPU time (s) | CPU time / real time / threads "
             "| peak memory | DER % | speakers found |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |",
             f"| wespk.bin.diarize (child process) | {seconds:.1f} | {seconds / duration:.4f} | {cpu_seconds:.1f} | "
             f"{cpu_seconds / duration / args.threads:.4f} | "
             f"{peak_rss / 2**30:.2f} GB RSS | {100 * total['der']:.2f} | "
             f"{scores['recordings']['long']['hypothesis_speakers']} of {args.speakers} |"]
    if not args.skip_clustering:
        n = int(duration / 0.75)
        rows = clustering_comparison(n, speakers=args.speakers)
        lines += ["", f"clustering {n} synthetic 256-dim embeddings of {args.speakers} speakers (as many as an hour "
                  "of speech gives at a 0.75 s shift; in this process, numpy peak by tracemalloc):", "",
                  "| clustering | time (s) | peak memory | speakers |", "| --- | --- | --- | --- |"]
        base = rows["dense spectral (baseline)"]
        for name, (sec, peak, count) in rows.items():
            lines.append(f"| {name} | {sec:.2f} ({sec / base[0]:.2f} x baseline) | {peak / 2**20:.0f} MB "
                         f"({peak / base[1]:.2f} x) | {count} |")
    lines.append(f"\nload average after {load_averages()}")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output_md:
        Path(args.output_md).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
