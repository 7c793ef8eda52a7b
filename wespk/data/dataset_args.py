"""``dataset_args``: the YAML keys of the data pipeline, their defaults and checks.

Key names follow WeSpeaker's ``dataset_args`` where it has them; wespk's own
keys are marked below. Unknown keys (at any level) are errors that list the
known ones.
"""

import copy
from typing import Any, Dict, Optional

from wespk.features import resemblyzer_mel

#: What ``feature_type`` can be: Kaldi fbank, or resemblyzer's mel spectrogram (the
#: converted GE2E encoder's input, :func:`wespk.features.resemblyzer_mel.frontend_features`).
FEATURE_TYPES = ("fbank", "resemblyzer_mel")

#: The resemblyzer front end's own keys (top level of ``dataset_args``, as in the converted
#: model dir's config; None: the front end's default): ``num_mel_bins``, ``frame_length``,
#: ``frame_shift``, ``target_dbfs``, ``trim_silence``, ``trim_threshold``.
RESEMBLYZER_MEL_KEYS = tuple(sorted(resemblyzer_mel.FRONTEND_KEYS - {"feature_type", "resample_rate"}))

#: Keys that only the fbank features use: set with ``feature_type: resemblyzer_mel`` they are errors.
FBANK_ONLY_KEYS = ("fbank_args", "cmn", "vad", "vad_args")

#: Every key with its default. Nested dicts are sections with their own keys.
DATASET_ARGS_DEFAULTS: Dict[str, Any] = {
    # Read by the training loop (utterances per epoch; 0 = the list size).
    "sample_num_per_epoch": 0,
    "shuffle": True,
    "shuffle_args": {"shuffle_size": 2500},
    "filter": True,
    "filter_args": {"min_num_frames": 100, "max_num_frames": 800},
    "resample_rate": 16000,
    # wespk: false makes audio at any other rate bad input instead of resampling it.
    "resample": True,
    "speed_perturb": True,
    # wespk: 'separate' gives each speed its own classes (x3), 'same' keeps them.
    "speed_perturb_classes": "separate",
    "num_frms": 200,
    "aug_prob": 0.6,
    # wespk: noise and RIR sets (Kaldi data dirs or wav.scp files).
    "noise_data": None,
    "reverb_data": None,
    # wespk: SNR range in dB per noise category.
    "noise_snr": {"noise": [0, 15], "music": [5, 15], "babble": [13, 20], "speech": [13, 20]},
    # wespk: how many 'speech' files are summed into babble.
    "babble_num_speakers": [3, 7],
    # 'waveform': raw samples [S, 1] for models with their own frontend (no fbank, CMN, SpecAugment).
    "frontend": "fbank",
    # wespk: 'fbank' or 'resemblyzer_mel' (FEATURE_TYPES); the latter reads the keys below.
    "feature_type": "fbank",
    # wespk, resemblyzer_mel only (RESEMBLYZER_MEL_KEYS): None keeps the front end's value.
    **{key: None for key in RESEMBLYZER_MEL_KEYS},
    "fbank_args": {"num_mel_bins": 80, "frame_shift": 10, "frame_length": 25, "dither": 1.0,
                   # wespk: kaldifeat | knf | auto
                   "backend": "auto"},
    # wespk: mean normalisation over time (WeSpeaker always does it).
    "cmn": True,
    "spec_aug": False,
    "spec_aug_args": {"num_t_mask": 1, "num_f_mask": 1, "max_t": 10, "max_f": 8, "prob": 0.6},
    # wespk: false | true (= energy) | energy | silero
    "vad": False,
    "vad_args": {},
    # wespk: bad input raises instead of being skipped with a warning.
    "strict": False,
}

#: Sections whose keys are free (checked by the component that uses them).
FREE_SECTIONS = frozenset({"noise_snr", "vad_args"})


def _merge(defaults: Dict[str, Any], given: Dict[str, Any], where: str) -> Dict[str, Any]:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {where} key(s) {unknown}; known keys: {sorted(defaults)}")
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        default = defaults[key]
        if isinstance(default, dict) and key not in FREE_SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{key} must be a mapping, got {value!r}")
            merged[key] = _merge(default, value, f"{where}.{key}")
        elif key in FREE_SECTIONS:
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{where}.{key} must be a mapping, got {value!r}")
            merged[key] = {**default, **(value or {})} if key == "noise_snr" else dict(value or {})
        else:
            merged[key] = value
    return merged


def resolve_dataset_args(dataset_args: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """``dataset_args`` with defaults filled in; raises ``ValueError`` on unknown
    keys or invalid values."""
    given = dict(dataset_args or {})
    args = _merge(DATASET_ARGS_DEFAULTS, given, "dataset_args")
    _check_feature_type(args, given)
    if args["speed_perturb_classes"] not in ("separate", "same"):
        raise ValueError("dataset_args.speed_perturb_classes must be 'separate' or 'same', "
                         f"got {args['speed_perturb_classes']!r}")
    if args["frontend"] not in ("fbank", "waveform"):
        raise ValueError(f"dataset_args.frontend {args['frontend']!r} is not supported by the "
                         "data pipeline ('fbank', or 'waveform' for models with their own frontend)")
    vad = args["vad"]
    if vad is True:
        args["vad"] = "energy"
    elif vad in (False, None, "none", "false"):
        args["vad"] = None
    elif vad not in ("energy", "silero"):
        raise ValueError(f"dataset_args.vad must be false, true, 'energy' or 'silero', got {vad!r}")
    if not 0.0 <= float(args["aug_prob"]) <= 1.0:
        raise ValueError(f"dataset_args.aug_prob must be in [0, 1], got {args['aug_prob']!r}")
    num_frms = args["num_frms"]
    if num_frms is not None and int(num_frms) < 0:
        raise ValueError(f"dataset_args.num_frms must be >= 0, got {num_frms!r}")
    for name, value in args["noise_snr"].items():
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and float(value[0]) <= float(value[1])):
            raise ValueError(f"dataset_args.noise_snr.{name} must be [low, high] dB, got {value!r}")
    low, high = args["babble_num_speakers"]
    if not 1 <= int(low) <= int(high):
        raise ValueError(f"dataset_args.babble_num_speakers must be [low, high] >= 1, "
                         f"got {args['babble_num_speakers']!r}")
    if int(args["shuffle_args"]["shuffle_size"]) < 1:
        raise ValueError("dataset_args.shuffle_args.shuffle_size must be >= 1")
    return args


def _check_feature_type(args: Dict[str, Any], given: Dict[str, Any]) -> None:
    """``feature_type`` and the keys that go with it (``given``: the keys as written)."""
    feature_type = args["feature_type"]
    if feature_type not in FEATURE_TYPES:
        raise ValueError(f"dataset_args.feature_type {feature_type!r} is not supported by the data "
                         f"pipeline; choose from {', '.join(FEATURE_TYPES)}")
    own = [k for k in RESEMBLYZER_MEL_KEYS if given.get(k) is not None]
    if feature_type == "fbank":
        if own:
            raise ValueError(f"dataset_args {', '.join(own)}: keys of feature_type resemblyzer_mel, but "
                             f"feature_type is fbank (fbank options go in fbank_args)")
        return
    if args["frontend"] != "fbank":
        raise ValueError(f"dataset_args.feature_type resemblyzer_mel computes features; it cannot go "
                         f"with frontend {args['frontend']!r}")
    fbank_only = [k for k in FBANK_ONLY_KEYS if given.get(k) not in (None, False, {})]
    if fbank_only:
        raise ValueError(f"dataset_args {', '.join(fbank_only)}: not used by feature_type resemblyzer_mel, "
                         f"which has no fbank options, no mean normalisation (cmn) and trims silences "
                         f"itself (trim_silence, not vad); remove {'it' if len(fbank_only) == 1 else 'them'}")
    fixed = {"resample_rate": resemblyzer_mel.RESEMBLYZER_SAMPLE_RATE,
             "num_mel_bins": resemblyzer_mel.NUM_MEL_BINS,
             "frame_length": resemblyzer_mel.FRAME_LENGTH_MS,
             "frame_shift": resemblyzer_mel.FRAME_SHIFT_MS}
    for key, expected in fixed.items():
        if args[key] is not None and float(args[key]) != float(expected):
            raise ValueError(f"dataset_args.{key} must be {expected:g} with feature_type resemblyzer_mel "
                             f"(the GE2E encoder's features), got {args[key]!r}")
    args["cmn"] = False
    args["vad"] = None


def resemblyzer_mel_args(args: Dict[str, Any]) -> Dict[str, Any]:
    """The keys of resolved ``dataset_args`` that
    :func:`wespk.features.resemblyzer_mel.frontend_features` reads (unset ones left out)."""
    keys = ("feature_type", "resample_rate") + RESEMBLYZER_MEL_KEYS
    return {k: args[k] for k in keys if args.get(k) is not None}
