"""Synthetic conversations with an exact reference, from single-speaker recordings.

A conversation has ``2..5`` speakers taking turns of ``1..8`` s separated
by pauses; every speaker talks at least once, no one follows themself. A
turn is cut from its speaker's speech (the speech regions of their
recordings, found by a VAD, levelled and joined; see :func:`load_speech`). The reference RTTM has one line per turn. The noisy
version of a conversation is the clean one plus coloured noise at a random
SNR (measured over the speech), so both share the reference. Everything
comes from one seeded generator: the same seed gives the same audio.
"""

import dataclasses
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from wespk.diarization.rttm import Turn, write_rttm
from wespk.io.audio import load_audio, resample

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: level every source recording is brought to (RMS, dBFS)
TARGET_RMS_DBFS = -26.0
AUDIO_EXTENSIONS = (".flac", ".wav")


@dataclasses.dataclass(frozen=True)
class ConversationSpec:
    min_speakers: int = 2
    max_speakers: int = 5
    min_turn: float = 1.0
    max_turn: float = 8.0
    min_pause: float = 0.2
    max_pause: float = 1.2
    #: turns per speaker on average (the conversation length follows)
    turns_per_speaker: float = 4.0
    #: seconds of silence before the first and after the last turn
    margin: float = 0.5
    #: noisy condition: SNR drawn uniformly in this range (dB), noise colour from these
    snr_range: Tuple[float, float] = (5.0, 15.0)
    noise_colours: Tuple[str, ...] = ("white", "pink", "brown")

    def __post_init__(self):
        if not 1 <= self.min_speakers <= self.max_speakers:
            raise ValueError(f"need 1 <= min_speakers <= max_speakers, got {self.min_speakers}, {self.max_speakers}")
        if not 0 < self.min_turn <= self.max_turn:
            raise ValueError(f"need 0 < min_turn <= max_turn, got {self.min_turn}, {self.max_turn}")
        if not 0 <= self.min_pause <= self.max_pause:
            raise ValueError(f"need 0 <= min_pause <= max_pause, got {self.min_pause}, {self.max_pause}")


def speaker_recordings(corpus_dir: str) -> Dict[str, List[str]]:
    """``{speaker: [audio paths]}`` of a folder-per-speaker corpus (``corpus_dir/<speaker>/*.flac``), sorted."""
    if not os.path.isdir(corpus_dir):
        raise FileNotFoundError(f"{corpus_dir}: no such directory")
    speakers: Dict[str, List[str]] = {}
    for speaker in sorted(os.listdir(corpus_dir)):
        folder = os.path.join(corpus_dir, speaker)
        if not os.path.isdir(folder):
            continue
        files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(AUDIO_EXTENSIONS))
        if files:
            speakers[speaker] = files
    if not speakers:
        raise ValueError(f"{corpus_dir}: no speaker folders with audio")
    return speakers


#: pauses inside a recording shorter than this are kept (part of the speech), longer ones are cut out
MAX_KEPT_PAUSE = 0.3


def load_speech(path: str, vad=None) -> np.ndarray:
    """A recording's speech at 16 kHz, levelled to :data:`TARGET_RMS_DBFS`.

    The speech regions found by ``vad`` (a
    :class:`~wespk.features.vad.VoiceActivityDetector`; default silero-vad
    when installed, else the energy VAD) are joined, keeping pauses shorter
    than :data:`MAX_KEPT_PAUSE` and cutting out longer ones and the edges, so
    that a turn cut from it is speech from end to end (its reference is exact).
    """
    from wespk.diarization.pipeline import resolve_vad_method, tidy_regions
    from wespk.features.vad import VoiceActivityDetector
    vad = vad or VoiceActivityDetector(resolve_vad_method("auto"))
    samples, rate = load_audio(path)
    if rate != SAMPLE_RATE:
        samples = np.asarray(resample(samples, rate, SAMPLE_RATE), dtype=np.float32)
    regions = [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in vad.speech_segments(samples, SAMPLE_RATE)]
    regions = tidy_regions(regions, MAX_KEPT_PAUSE, 0.1)
    if not regions:
        return np.zeros(0, dtype=np.float32)
    samples = np.concatenate([samples[int(s * SAMPLE_RATE): int(e * SAMPLE_RATE)] for s, e in regions])
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
    if rms > 0:
        samples = samples * (10 ** (TARGET_RMS_DBFS / 20.0) / rms)
    return samples.astype(np.float32)


class _SpeakerTape:
    """A speaker's recordings played end to end, in a seeded order, looping."""

    def __init__(self, clips: Sequence[np.ndarray], rng: np.random.Generator):
        order = rng.permutation(len(clips))
        self.audio = np.concatenate([clips[i] for i in order])
        self.position = int(rng.integers(0, max(1, len(self.audio))))

    def take(self, num_samples: int) -> np.ndarray:
        out = np.empty(num_samples, dtype=np.float32)
        filled = 0
        while filled < num_samples:
            part = self.audio[self.position: self.position + num_samples - filled]
            out[filled: filled + len(part)] = part
            filled += len(part)
            self.position = (self.position + len(part)) % len(self.audio)
        return out


def simulate_conversation(speech: Dict[str, Sequence[np.ndarray]], rng: np.random.Generator, recording: str,
                          spec: ConversationSpec = ConversationSpec(), num_speakers: Optional[int] = None,
                          num_turns: Optional[int] = None) -> Tuple[np.ndarray, List[Turn]]:
    """One clean conversation ``(samples at 16 kHz, reference turns)`` from ``{speaker: [clips]}``."""
    names = sorted(speech)
    if num_speakers is None:
        num_speakers = int(rng.integers(spec.min_speakers, spec.max_speakers + 1))
    if num_speakers > len(names):
        raise ValueError(f"{num_speakers} speakers asked for, {len(names)} available")
    chosen = [names[i] for i in rng.choice(len(names), size=num_speakers, replace=False)]
    tapes = {s: _SpeakerTape(speech[s], rng) for s in chosen}
    if num_turns is None:
        num_turns = max(num_speakers, int(round(spec.turns_per_speaker * num_speakers)))
    # every speaker once (in a random order), then anyone but the previous speaker
    order = list(rng.permutation(chosen))
    while len(order) < num_turns:
        candidates = [s for s in chosen if s != order[-1]] or chosen
        order.append(candidates[int(rng.integers(len(candidates)))])
    pieces, turns = [np.zeros(int(spec.margin * SAMPLE_RATE), dtype=np.float32)], []
    position = len(pieces[0])
    for k, speaker in enumerate(order):
        if k:
            pause = np.zeros(int(round(rng.uniform(spec.min_pause, spec.max_pause) * SAMPLE_RATE)), dtype=np.float32)
            pieces.append(pause)
            position += len(pause)
        length = int(round(rng.uniform(spec.min_turn, spec.max_turn) * SAMPLE_RATE))
        pieces.append(tapes[speaker].take(length))
        turns.append(Turn(recording, position / SAMPLE_RATE, (position + length) / SAMPLE_RATE, speaker))
        position += length
    pieces.append(np.zeros(int(spec.margin * SAMPLE_RATE), dtype=np.float32))
    return np.concatenate(pieces), turns


def add_background_noise(samples: np.ndarray, turns: Sequence[Turn], rng: np.random.Generator,
                         spec: ConversationSpec = ConversationSpec()) -> Tuple[np.ndarray, float, str]:
    """``samples`` plus coloured noise at an SNR over the speech drawn from ``spec``; returns (audio, snr, colour)."""
    from wespk.augment.noise_sets import coloured_noise
    colour = spec.noise_colours[int(rng.integers(len(spec.noise_colours)))]
    snr = float(rng.uniform(*spec.snr_range))
    noise = coloured_noise(colour, len(samples), rng)
    mask = np.zeros(len(samples), dtype=bool)
    for t in turns:
        mask[int(t.start * SAMPLE_RATE): int(t.end * SAMPLE_RATE)] = True
    speech_power = float(np.mean(np.square(samples[mask], dtype=np.float64))) if mask.any() else 1e-10
    gain = np.sqrt(speech_power / 10.0 ** (snr / 10.0))            # noise has unit RMS
    noisy = samples + gain * noise
    peak = float(np.max(np.abs(noisy)))
    if peak > 0.99:
        noisy = noisy * (0.99 / peak)
    return noisy.astype(np.float32), snr, colour


def write_conversation_sets(corpus_dir: str, out_dir: str, num_conversations: int = 20, seed: int = 2027,
                            spec: ConversationSpec = ConversationSpec(),
                            conditions: Sequence[str] = ("clean", "noisy")) -> Dict[str, str]:
    """Write ``out_dir/<condition>/{wav.scp, rttm, reco2num_spk, audio/*.wav}`` for each condition.

    The conversations of every condition are the same (same speakers, turns
    and reference); ``noisy`` adds noise. Returns ``{condition: data dir}``.
    """
    import soundfile

    from wespk.io.files import atomic_output, write_kaldi_map
    unknown = sorted(set(conditions) - {"clean", "noisy"})
    if unknown:
        raise ValueError(f"unknown conditions {unknown}; known: clean, noisy")
    from wespk.diarization.pipeline import resolve_vad_method
    from wespk.features.vad import VoiceActivityDetector
    recordings = speaker_recordings(corpus_dir)
    vad = VoiceActivityDetector(resolve_vad_method("auto"))
    logger.info("speech of %d speakers' recordings found by the %s VAD", len(recordings), vad.method)
    speech = {s: [load_speech(p, vad) for p in paths] for s, paths in recordings.items()}
    speech = {s: [c for c in clips if len(c)] for s, clips in speech.items()}
    speech = {s: clips for s, clips in speech.items() if clips}
    rng = np.random.default_rng(seed)
    dirs = {c: os.path.join(out_dir, c) for c in conditions}
    wav_scp = {c: [] for c in conditions}
    all_turns: List[Turn] = []
    num_spk = []
    for index in range(num_conversations):
        name = f"conv{index:03d}"
        samples, turns = simulate_conversation(speech, rng, name, spec)
        noisy, snr, colour = add_background_noise(samples, turns, rng, spec)
        all_turns.extend(turns)
        num_spk.append((name, len({t.speaker for t in turns})))
        for condition in conditions:
            audio = samples if condition == "clean" else noisy
            path = os.path.abspath(os.path.join(dirs[condition], "audio", f"{name}.wav"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with atomic_output(path, "wb") as f:
                soundfile.write(f, audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
            wav_scp[condition].append((name, path))
        logger.info("%s: %d speakers, %d turns, %.1f s (noisy: %s noise at %.1f dB SNR)", name, num_spk[-1][1],
                    len(turns), len(samples) / SAMPLE_RATE, colour, snr)
    for condition in conditions:
        write_kaldi_map(os.path.join(dirs[condition], "wav.scp"), wav_scp[condition])
        write_kaldi_map(os.path.join(dirs[condition], "reco2num_spk"), num_spk)
        write_rttm(os.path.join(dirs[condition], "rttm"), all_turns)
    return dirs
