"""A noisy evaluation condition: a data dir's utterances reverberated and mixed with noise at a fixed SNR.

Every utterance gets a room impulse response and a noise span chosen by a
generator seeded with ``(seed, key)``: rebuilding gives the same audio, and
an utterance's degradation does not depend on the others. The noise and RIR
sets should be disjoint from those the enhancer and the speaker model were
trained with (another seed of :mod:`wespk.augment.noise_sets`, or other
recordings). Noisy keys are the clean keys plus a suffix, so clean and noisy
embeddings can share one scp and trial lists can pair them.
"""

import hashlib
import logging
import os
from typing import Dict, Optional

import numpy as np
import soundfile

from wespk.augment.noise import NoiseSet, add_noise
from wespk.augment.reverb import RirSet, reverberate_with
from wespk.data.data_dir import read_data_dir
from wespk.io.audio import load_audio
from wespk.io.files import atomic_output, utt2spk_to_spk2utt, write_kaldi_map
from wespk.io.trials import read_trials

logger = logging.getLogger(__name__)


def key_generator(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def degrade(samples: np.ndarray, sample_rate: int, noise_set: NoiseSet, rir_set: Optional[RirSet],
            snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Reverberate (when ``rir_set``) and add one noise file of any category at ``snr_db``
    relative to the (reverberant) speech; scaled down if it would clip."""
    speech = reverberate_with(rir_set, samples, sample_rate, rng) if rir_set is not None else samples
    keys = [k for keys in noise_set.by_category.values() for k in keys]
    noise = noise_set.read_random_span(keys[int(rng.integers(len(keys)))], len(speech), sample_rate, rng)
    mixed = add_noise(speech, noise, snr_db)
    peak = float(np.max(np.abs(mixed))) if len(mixed) else 0.0
    return (mixed * (0.99 / peak) if peak > 0.99 else mixed).astype(np.float32)


def build_noisy_copy(data_dir: str, out_dir: str, noise_dir: str, rir_dir: Optional[str], snr_db: float,
                     seed: int, suffix: str) -> int:
    """Write ``out_dir/{audio/*.wav, wav.scp, utt2spk, spk2utt}``: every utterance of ``data_dir``
    (read by :func:`wespk.data.data_dir.read_data_dir`, segments included) degraded
    (:func:`degrade`), keyed ``<key><suffix>``. Returns the count."""
    utterances = read_data_dir(data_dir, need_spk=True)
    noise_set = NoiseSet(noise_dir)
    rir_set = RirSet(rir_dir) if rir_dir else None
    audio_dir = os.path.join(out_dir, "audio")
    os.makedirs(audio_dir, exist_ok=True)
    new_scp: Dict[str, str] = {}
    new_utt2spk: Dict[str, str] = {}
    for utt in utterances:
        key = utt.key
        samples, rate = load_audio(utt.audio)
        mixed = degrade(samples, rate, noise_set, rir_set, snr_db, key_generator(seed, key))
        path = os.path.abspath(os.path.join(audio_dir, f"{key}{suffix}.wav"))
        with atomic_output(path, "wb") as f:
            soundfile.write(f, mixed, rate, format="WAV", subtype="PCM_16")
        new_scp[key + suffix] = path
        new_utt2spk[key + suffix] = utt.speaker
    write_kaldi_map(os.path.join(out_dir, "wav.scp"), new_scp)
    write_kaldi_map(os.path.join(out_dir, "utt2spk"), new_utt2spk)
    write_kaldi_map(os.path.join(out_dir, "spk2utt"),
                    {spk: " ".join(utts) for spk, utts in utt2spk_to_spk2utt(new_utt2spk).items()})
    logger.info("wrote %d utterances at %g dB SNR to %s", len(new_scp), snr_db, out_dir)
    return len(new_scp)


def write_condition_trials(trials: str, output: str, enroll_suffix: str = "", test_suffix: str = "") -> int:
    """``trials`` with the suffixes appended to the enrolment and test keys (clean-vs-noisy ...)."""
    lines = []
    for enroll, test, label in read_trials(trials):
        lines.append(f"{enroll}{enroll_suffix} {test}{test_suffix}" + (f" {label}\n" if label else "\n"))
    with atomic_output(output) as f:
        f.writelines(lines)
    return len(lines)
