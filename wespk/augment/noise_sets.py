"""Build a noise set and a simulated RIR set when MUSAN / RIRS_NOISES are not at hand.

* Coloured noise (white, pink, brown, blue, violet: power ~ f^-alpha) made by
  shaping Gaussian noise's spectrum; category ``noise``.
* Babble: 3-7 utterances of distinct training speakers, each at equal power,
  summed; category ``babble``. Optionally plain speech files (category
  ``speech``) that the pipeline sums into babble online, as with MUSAN speech.
* Room impulse responses from pyroomacoustics' image method in shoebox
  rooms of random size, reverberation time (via Sabine's formula) and
  source / microphone positions; category ``smallroom``/``mediumroom``.

Each set is a Kaldi-style dir: ``audio/*.wav`` (or ``.flac``), ``wav.scp``,
``utt2category`` and ``utt2dur``, written atomically.
"""

import logging
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import soundfile

from wespk.io.audio import AudioError, AudioRef, read_audio_span, resample
from wespk.io.files import atomic_output, write_kaldi_map

logger = logging.getLogger(__name__)

#: Spectral exponent alpha (power ~ f^-alpha) of each noise colour.
NOISE_COLOURS: Dict[str, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0, "blue": -1.0, "violet": -2.0}

#: Room sizes (metres, [min x, y, z], [max x, y, z]) per RIR category.
ROOM_SIZES: Dict[str, Tuple[Sequence[float], Sequence[float]]] = {
    "smallroom": ((3.0, 3.0, 2.4), (6.0, 5.0, 3.0)),
    "mediumroom": ((6.0, 5.0, 2.6), (12.0, 10.0, 4.0)),
}


def coloured_noise(colour: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as ``f^-alpha`` (unit RMS)."""
    alpha = NOISE_COLOURS[colour]
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.fft.rfftfreq(num_samples)
    freqs[0] = freqs[1] if len(freqs) > 1 else 1.0
    shaped = np.fft.irfft(spectrum * freqs ** (-alpha / 2.0), n=num_samples)
    shaped -= shaped.mean()
    return (shaped / (np.sqrt(np.mean(shaped ** 2)) + 1e-12)).astype(np.float32)


def _peak_normalise(x: np.ndarray, peak: float = 0.9) -> np.ndarray:
    top = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * (peak / top)).astype(np.float32) if top > 0 else x.astype(np.float32)


AUDIO_FORMATS = ("wav", "flac")


def _write_audio(path: str, samples: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    with atomic_output(path, "wb") as f:
        soundfile.write(f, samples, sample_rate, format=os.path.splitext(path)[1][1:].upper(),
                        subtype=subtype)


def _speech_track(sources: Sequence[AudioRef], num_samples: int, sample_rate: int,
                  rng: np.random.Generator) -> np.ndarray:
    """``num_samples`` of one speaker's speech: shuffled utterances joined, repeated."""
    pieces, total = [], 0
    for index in rng.permutation(len(sources)):
        try:
            audio, rate = read_audio_span(sources[int(index)])
        except AudioError as e:
            logger.warning("babble: skipping %s", e)
            continue
        if rate != sample_rate:
            audio = resample(audio, rate, sample_rate)
        pieces.append(audio)
        total += len(audio)
        if total >= num_samples:
            break
    if not pieces:
        raise ValueError("no readable utterance for a babble track")
    track = np.concatenate(pieces)
    return np.tile(track, num_samples // len(track) + 1)[:num_samples]


def build_noise_set(out_dir: str, speech: Optional[Mapping[str, Sequence[AudioRef]]] = None,
                    num_coloured: int = 20,
                    num_babble: int = 20, babble_speakers: Tuple[int, int] = (3, 7),
                    num_speech: int = 0, duration: float = 10.0, sample_rate: int = 16000,
                    seed: int = 7, audio_format: str = "wav") -> int:
    """Write a noise set into ``out_dir``; returns the number of files.

    Babble and speech need ``speech``: training speakers and the audio of
    their utterances (from a data dir:
    :func:`wespk.data.data_dir.audio_by_speaker`); coloured noise cycles
    through :data:`NOISE_COLOURS`. Files are
    16-bit WAV by default: the pipeline reads random spans of them, which
    WAV allows without decoding from a seek point as FLAC needs.
    """
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, got {audio_format!r}")
    rng = np.random.default_rng(seed)
    audio_dir = os.path.join(out_dir, "audio")
    os.makedirs(audio_dir, exist_ok=True)
    num_samples = int(duration * sample_rate)
    wav_scp, categories, durations = {}, {}, {}

    def add(key: str, category: str, samples: np.ndarray) -> None:
        path = os.path.abspath(os.path.join(audio_dir, f"{key}.{audio_format}"))
        _write_audio(path, _peak_normalise(samples), sample_rate)
        wav_scp[key], categories[key] = path, category
        durations[key] = f"{len(samples) / sample_rate:.3f}"

    colours = list(NOISE_COLOURS)
    for i in range(num_coloured):
        colour = colours[i % len(colours)]
        add(f"noise-{colour}-{i:04d}", "noise", coloured_noise(colour, num_samples, rng))

    if (num_babble or num_speech) and not speech:
        raise ValueError("babble and speech noise need the speech of training speakers (a data dir)")
    if num_babble or num_speech:
        by_speaker = {spk: list(speech[spk]) for spk in sorted(speech, key=lambda s: s.encode("utf-8"))}
        speakers = list(by_speaker)
        low, high = babble_speakers
        if len(speakers) < low:
            raise ValueError(f"the training speech has {len(speakers)} speakers, babble needs at least {low}")
        for i in range(num_babble):
            count = int(rng.integers(low, min(high, len(speakers)) + 1))
            chosen = rng.choice(len(speakers), size=count, replace=False)
            mix = np.zeros(num_samples, dtype=np.float64)
            for s in chosen:
                track = _speech_track(by_speaker[speakers[int(s)]], num_samples, sample_rate, rng)
                mix += track / (np.sqrt(np.mean(track.astype(np.float64) ** 2)) + 1e-12)
            add(f"babble-{i:04d}", "babble", mix.astype(np.float32))
        for i in range(num_speech):
            speaker = speakers[int(rng.integers(len(speakers)))]
            track = _speech_track(by_speaker[speaker], num_samples, sample_rate, rng)
            add(f"speech-{i:04d}", "speech", track)

    write_kaldi_map(os.path.join(out_dir, "wav.scp"), wav_scp)
    write_kaldi_map(os.path.join(out_dir, "utt2category"), categories)
    write_kaldi_map(os.path.join(out_dir, "utt2dur"), durations)
    return len(wav_scp)


def simulate_rir(rng: np.random.Generator, sample_rate: int = 16000, category: str = "smallroom",
                 rt60_range: Tuple[float, float] = (0.2, 0.8), max_order: int = 40) -> np.ndarray:
    """One RIR of a random shoebox room (pyroomacoustics image method), peak-normalised."""
    import pyroomacoustics as pra
    low, high = ROOM_SIZES[category]
    room_dim = rng.uniform(low, high)
    rt60 = float(rng.uniform(*rt60_range))
    absorption, order = pra.inverse_sabine(rt60, room_dim)
    room = pra.ShoeBox(room_dim, fs=sample_rate, materials=pra.Material(absorption),
                       max_order=int(min(order, max_order)))
    margin = 0.5
    source = rng.uniform([margin] * 3, room_dim - margin)
    mic = rng.uniform([margin] * 3, room_dim - margin)
    room.add_source(source.tolist())
    room.add_microphone(mic.tolist())
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    return _peak_normalise(rir, 1.0)


def build_rir_set(out_dir: str, num_rirs: int = 40, sample_rate: int = 16000, seed: int = 11,
                  rt60_range: Tuple[float, float] = (0.2, 0.8), audio_format: str = "wav") -> int:
    """Write ``num_rirs`` simulated RIRs (24-bit) into ``out_dir``; returns the count."""
    if audio_format not in AUDIO_FORMATS:
        raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, got {audio_format!r}")
    rng = np.random.default_rng(seed)
    audio_dir = os.path.join(out_dir, "audio")
    os.makedirs(audio_dir, exist_ok=True)
    wav_scp, categories, durations = {}, {}, {}
    names = list(ROOM_SIZES)
    for i in range(num_rirs):
        category = names[i % len(names)]
        rir = simulate_rir(rng, sample_rate, category, rt60_range)
        key = f"{category}-{i:04d}"
        path = os.path.abspath(os.path.join(audio_dir, f"{key}.{audio_format}"))
        _write_audio(path, np.clip(rir, -1.0, 1.0 - 2 ** -23), sample_rate, subtype="PCM_24")
        wav_scp[key], categories[key] = path, category
        durations[key] = f"{len(rir) / sample_rate:.3f}"
    write_kaldi_map(os.path.join(out_dir, "wav.scp"), wav_scp)
    write_kaldi_map(os.path.join(out_dir, "utt2category"), categories)
    write_kaldi_map(os.path.join(out_dir, "utt2dur"), durations)
    return len(wav_scp)
