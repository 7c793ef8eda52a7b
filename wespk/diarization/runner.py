"""Diarize a data dir into ``OUT/rttm``, score it and draw it (the body of ``wespk.bin.diarize``)."""

import json
import logging
import os
import time
from typing import Dict, List, Optional

from wespk.diarization.pipeline import DiarizationConfig, Diarizer, read_recordings, read_reco2num_spk
from wespk.diarization.rttm import Turn, read_rttm, write_rttm
from wespk.io.audio import AudioError

logger = logging.getLogger(__name__)

#: Errors that are the user's input (bad files, options, model dir), reported in one line.
DiarizationInputError = (ValueError, OSError, AudioError)


def score_and_plot(reference_path: str, hypothesis: Dict[str, List[Turn]], out_dir: str, collar: float,
                   skip_overlap: bool = False, plot: bool = False) -> list:
    """``OUT/der.md`` and ``OUT/der.json`` (and plots) for hypothesis turns against an RTTM reference."""
    from wespk.diarization.metrics import format_score_table, score_recordings, scores_as_dict, \
        speaker_count_accuracy
    from wespk.io.files import atomic_output
    reference = read_rttm(reference_path)
    missing = sorted(set(hypothesis) - set(reference))
    scores = score_recordings({k: v for k, v in reference.items() if k in hypothesis or not hypothesis},
                              hypothesis, collar=collar, skip_overlap=skip_overlap)
    table = format_score_table(scores, collar)
    count_accuracy = speaker_count_accuracy(scores)
    with atomic_output(os.path.join(out_dir, "der.md")) as f:
        f.write(table)
        f.write(f"\nnumber of speakers right in {100 * count_accuracy:.0f}% of the recordings\n")
    with atomic_output(os.path.join(out_dir, "der.json")) as f:
        json.dump({"collar": collar, "skip_overlap": skip_overlap, "speaker_count_accuracy": count_accuracy,
                   "recordings": scores_as_dict(scores)}, f, indent=1)
    total = scores[-1]
    logger.info("DER %.2f%% (miss %.2f%%, false alarm %.2f%%, confusion %.2f%%), JER %.2f%%, speaker count "
                "right in %.0f%% of %d recordings; collar %.2f s; table in %s", 100 * total.der,
                100 * total.rate(total.missed), 100 * total.rate(total.false_alarm),
                100 * total.rate(total.confusion), 100 * (total.jer or 0), 100 * count_accuracy,
                len(scores) - 1, collar, os.path.join(out_dir, "der.md"))
    if missing:
        logger.warning("no reference for %d recording(s): %s", len(missing), " ".join(missing[:5]))
    if plot:
        from wespk.diarization.plots import plot_timeline
        for recording, turns in sorted(hypothesis.items()):
            score = next((s for s in scores if s.recording == recording), None)
            title = f"{recording}: DER {100 * score.der:.1f}%" if score is not None else recording
            plot_timeline(os.path.join(out_dir, "plots", f"{recording}.png"), turns, reference.get(recording), title)
    return scores


def run_diarization(model_dir: str, data: str, out_dir: str, config: DiarizationConfig = DiarizationConfig(),
                    reco2num_spk: Optional[str] = None, ref_rttm: Optional[str] = None, collar: float = 0.25,
                    skip_overlap: bool = False, plot: bool = False, device: str = "cpu",
                    trust_checkpoint: bool = False) -> List[str]:
    """Diarize every recording of ``data``; returns the recordings that could not be read.

    Writes ``OUT/rttm``; with ``ref_rttm`` also the scores (see :func:`score_and_plot`);
    with ``plot`` and no reference, plots of the hypothesis alone. Unreadable
    recordings are listed in ``OUT/failed``.
    """
    from wespk.io.files import atomic_output
    recordings = read_recordings(data)
    counts = read_reco2num_spk(reco2num_spk) if reco2num_spk else {}
    if ref_rttm and not os.path.isfile(ref_rttm):
        raise FileNotFoundError(f"{ref_rttm}: reference RTTM not found")
    diarizer = Diarizer.from_model_dir(model_dir, config, device=device, trust_checkpoint=trust_checkpoint)
    logger.info("diarizing %d recording(s) with %s (VAD %s, %s clustering)", len(recordings), model_dir,
                diarizer.vad_method, config.clustering.method)
    hypothesis: Dict[str, List[Turn]] = {}
    failed: List[str] = []
    t0, audio_seconds = time.time(), 0.0
    for index, (recording, source) in enumerate(recordings, 1):
        try:
            result = diarizer.diarize_file(source, recording, counts.get(recording))
        except AudioError as e:
            logger.error("%s: %s", recording, e)
            failed.append(recording)
            continue
        hypothesis[recording] = result.turns
        audio_seconds += result.duration
        speakers = len({t.speaker for t in result.turns})
        logger.info("%s (%d/%d): %.1f s, %d sub-segments, %d speaker(s), %d turns%s; %.3f x real time so far",
                    recording, index, len(recordings), result.duration, result.num_subsegments, speakers,
                    len(result.turns), f" ({result.note})" if result.note else "",
                    (time.time() - t0) / max(audio_seconds, 1e-9))
    os.makedirs(out_dir, exist_ok=True)
    count = write_rttm(os.path.join(out_dir, "rttm"), [t for turns in hypothesis.values() for t in turns])
    logger.info("wrote %d turns of %d recording(s) to %s", count, len(hypothesis), os.path.join(out_dir, "rttm"))
    failed_path = os.path.join(out_dir, "failed")
    if failed:
        with atomic_output(failed_path) as f:
            f.writelines(f"{r}\n" for r in failed)
        logger.error("%d recording(s) could not be read, listed in %s", len(failed), failed_path)
    elif os.path.exists(failed_path):
        os.unlink(failed_path)
    if ref_rttm and hypothesis:
        score_and_plot(ref_rttm, hypothesis, out_dir, collar, skip_overlap, plot)
    elif plot:
        from wespk.diarization.plots import plot_timeline
        for recording, turns in hypothesis.items():
            plot_timeline(os.path.join(out_dir, "plots", f"{recording}.png"), turns, None, recording)
    return failed


def diarize_files(model_dir: str, paths: List[str], config: DiarizationConfig = DiarizationConfig(),
                  device: str = "cpu", trust_checkpoint: bool = False, note=None) -> List[Turn]:
    """Turns of every audio file in ``paths`` (recording name: the file name without extension).

    ``note(message)`` is told why a file gives no turns or a single one
    (no speech, too short); unreadable audio raises AudioError naming the file.
    """
    diarizer = Diarizer.from_model_dir(model_dir, config, device=device, trust_checkpoint=trust_checkpoint)
    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    if len(set(names)) < len(names):
        names = list(paths)        # the same file name in two folders: name recordings by path
    turns: List[Turn] = []
    for path, name in zip(paths, names):
        result = diarizer.diarize_file(path, name)
        if result.note and note is not None:
            note(f"{path}: {result.note}")
        turns.extend(result.turns)
    return turns
