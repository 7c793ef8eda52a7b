"""Checkpoint files: reading without running code, one state_dict rule, atomic saving.

Every checkpoint wespk reads goes through :func:`load_checkpoint`, which
calls ``torch.load(..., weights_only=True)``: the file may hold tensors,
numbers, strings, ``None`` and plain containers, nothing that unpickling
could turn into a function call. A file that needs more (a class with a
``__reduce__``, an arbitrary global) is refused with :class:`UnsafeCheckpointError`,
a one-line message naming the file and the global. Nothing ever loads a
checkpoint by full unpickling. ``trust=True`` (the ``--trust_checkpoint``
flag of the programs) also accepts the data-only objects that other
trainers keep beside the weights (:data:`TRUSTED_DATA_GLOBALS`: the run's
``argparse.Namespace``, numpy scalars and dtypes); rebuilding them sets
attributes or reads bytes, and any other global is still refused.

Checkpoints saved by older wespk versions hold numpy's RNG state as a numpy
array; the three numpy globals that rebuilding a plain array needs are
allowed for every load (:data:`NUMPY_ARRAY_GLOBALS`), nothing else.

The model's state_dict is found in a checkpoint by one rule
(:func:`find_state_dict`) that every caller uses: a mapping of tensors is
the state_dict itself (WeSpeaker's model files); otherwise the first of
:data:`STATE_DICT_CONTAINER_KEYS` holding one (``model`` for wespk and
WeSpeaker training checkpoints, ``state_dict`` for Lightning ...).
"""

import argparse
import io
import logging
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from wespk.io.files import atomic_output

logger = logging.getLogger(__name__)

#: Keys under which checkpoints of various toolkits keep the model's state_dict,
#: tried in this order: wespk and WeSpeaker, Lightning, other trainers, resemblyzer.
STATE_DICT_CONTAINER_KEYS = ("model", "state_dict", "model_state", "model_state_dict", "module")

TRUST_HINT = ("wespk never runs code from a checkpoint: if the file is yours, save its state_dict "
              "(tensors only) with torch.save and give that file instead")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that can only be read by unpickling arbitrary objects (it could run code)."""


def _numpy_array_globals() -> List[Tuple[Any, str]]:
    """What rebuilding a plain numpy array needs, under the names numpy 1 and 2 pickle them with."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]   # numpy's own _reconstruct, wherever it lives
    return [(np.ndarray, "numpy.ndarray"), (np.dtype, "numpy.dtype"),
            (reconstruct, "numpy.core.multiarray._reconstruct"),
            (reconstruct, "numpy._core.multiarray._reconstruct"),
            (type(np.dtype(np.uint32)), f"numpy.dtypes.{type(np.dtype(np.uint32)).__name__}")]


#: Names of the globals allowed besides torch's defaults (old wespk checkpoints' numpy RNG state).
NUMPY_ARRAY_GLOBALS = tuple(name for _, name in _numpy_array_globals())


def _trusted_data_globals() -> List[Tuple[Any, str]]:
    """The data-only objects ``trust=True`` accepts as well: an ``argparse.Namespace`` of the run's options,
    numpy scalars (numpy's ``scalar`` rebuilds one from a dtype and its bytes) and the numeric dtypes."""
    scalar = np.float64(0).__reduce__()[0]
    dtypes = {type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                          np.uint32, np.uint64, np.float16, np.float32, np.float64)}
    return ([(argparse.Namespace, "argparse.Namespace"), (scalar, "numpy.core.multiarray.scalar"),
             (scalar, "numpy._core.multiarray.scalar")]
            + [(d, f"numpy.dtypes.{d.__name__}") for d in sorted(dtypes, key=lambda d: d.__name__)])


TRUSTED_DATA_GLOBALS = tuple(name for _, name in _trusted_data_globals())

_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
_STRING_OPCODES = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
                   "SHORT_BINSTRING", "BINSTRING", "STRING"}
#: Globals of plain tensors that torch's weights-only unpickler allows (used to name the culprit of a refusal).
_TENSOR_GLOBAL_RE = re.compile(r"^(torch\._utils\._rebuild\w*|torch\._tensor\._rebuild\w*|torch\.\w*Storage"
                               r"|torch\.(Size|device|dtype|float\w*|bfloat16|int\w*|uint\w*|bool|complex\w*)"
                               r"|collections\.OrderedDict|builtins\.(set|frozenset|bytearray|complex|slice)"
                               r"|_codecs\.encode)$")


def _pickle_globals(data: bytes) -> List[str]:
    """Names of the globals a pickle stream (or several, back to back) refers to, read statically."""
    names: List[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        strings: List[Optional[str]] = []   # what each push left on top: a string or None
        memo: Dict[int, Optional[str]] = {}
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name == "GLOBAL":   # protocols 0-2 write Python 2's module name for builtins
                    names.append(str(arg).replace(" ", ".").replace("__builtin__.", "builtins.", 1))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2 and None not in strings[-2:]:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                elif op.name in _STRING_OPCODES:
                    strings.append(str(arg))
                elif op.name == "MEMOIZE":
                    memo[len(memo)] = strings[-1] if strings else None
                elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(arg)] = strings[-1] if strings else None
                elif op.name in ("GET", "BINGET", "LONG_BINGET"):
                    strings.append(memo.get(int(arg)))
                elif op.name not in ("FRAME", "PROTO"):
                    strings.append(None)
        except (ValueError, EOFError):   # not (or no more) pickle data
            break
    return names


def _unsafe_globals(path: str, error: BaseException, trust: bool = False) -> List[str]:
    """Globals in ``path`` that made a weights-only load fail, found without unpickling (those ``trust``
    accepts left out when it is set)."""
    try:
        if zipfile.is_zipfile(path):
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        with open(path, "rb") as f:
            names = _pickle_globals(f.read())
    except Exception:  # the scan only names the culprit; a failure leaves torch's name for it
        names = []
    allowed = set(NUMPY_ARRAY_GLOBALS) | (set(TRUSTED_DATA_GLOBALS) if trust else set())
    unsafe = [n for n in dict.fromkeys(names) if n not in allowed and not _TENSOR_GLOBAL_RE.match(n)]
    found = _GLOBAL_RE.search(str(error))   # torch names the first one it met (protocols 0-2)
    return unsafe or ([found.group(1)] if found else [])


def load_checkpoint(path: str, trust: bool = False) -> Any:
    """The content of a ``torch.save`` file, read on the CPU without running code.

    Raises :class:`CheckpointError` ("<path>: ...") for a missing or
    unreadable file and :class:`UnsafeCheckpointError` for one that needs
    arbitrary unpickling. ``trust`` also accepts :data:`TRUSTED_DATA_GLOBALS`;
    it never enables full unpickling.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: checkpoint not found")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: not a file")
    allowed = _numpy_array_globals() + (_trusted_data_globals() if trust else [])
    try:
        with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
            # torch notes a pickle protocol it did not write; a refusal below says what matters
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(path, e, trust) if "Weights only load failed" in str(e) else []
        if unsafe:
            raise UnsafeCheckpointError(f"{path}: refusing to unpickle a global '{unsafe[0]}' (this file could "
                                        f"run code); {TRUST_HINT}") from None
        detail = str(e).split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in str(e) else str(e)
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({_first_line(detail)})") from None
    except Exception as e:  # torch raises RuntimeError, EOFError, ... for damaged files
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {_first_line(e)})") from None


def _first_line(error: Any) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def is_state_dict(obj: Any) -> bool:
    """A non-empty mapping from string keys to tensors (non-tensor extras allowed)."""
    return (isinstance(obj, dict) and len(obj) > 0 and all(isinstance(k, str) for k in obj)
            and any(torch.is_tensor(v) for v in obj.values()))


def find_state_dict(content: Any, path: str = "checkpoint") -> Tuple[Dict[str, Any], Optional[str]]:
    """``(state_dict, container_key)`` of a loaded checkpoint, ``container_key`` None for a bare one.

    The first of :data:`STATE_DICT_CONTAINER_KEYS` that holds a state_dict
    wins; else ``content`` itself when it is one. Raises :class:`CheckpointError`
    naming ``path`` otherwise.
    """
    if isinstance(content, dict):
        for key in STATE_DICT_CONTAINER_KEYS:
            if key in content and is_state_dict(content[key]):
                return content[key], key
        if is_state_dict(content):
            return content, None
        keys = ", ".join(map(str, list(content)[:8]))
        raise CheckpointError(f"{path}: no state_dict found (top-level keys: {keys or 'none'}; looked for a "
                              f"mapping of tensors, or one under {', '.join(STATE_DICT_CONTAINER_KEYS)})")
    raise CheckpointError(f"{path}: no state_dict found (the file holds a {type(content).__name__}, not a dict)")


def load_state_dict(path: str, trust: bool = False) -> Dict[str, Any]:
    """The model state_dict of a checkpoint or model file, without a ``module.`` prefix from DDP."""
    state, _ = find_state_dict(load_checkpoint(path, trust), path)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def load_model_weights(model: torch.nn.Module, path: str, strict_encoder: bool = True,
                       trust: bool = False) -> Tuple[List[str], List[str]]:
    """Load a model file or checkpoint into ``model`` (WeSpeaker's rules).

    ``projection.*`` keys are optional both ways (an extraction model has no
    head; a fine-tuned model may get a new one), and an oversized
    ``projection.weight`` (speed-perturbed classes) is truncated to the head's
    size. Any other missing or unexpected key is a :class:`CheckpointError`
    when ``strict_encoder``. Returns ``(missing, unexpected)`` keys.
    """
    state = load_state_dict(path, trust)
    own = model.state_dict()
    if "projection.weight" in state and "projection.weight" in own:
        have, want = state["projection.weight"].shape, own["projection.weight"].shape
        if have != want and have[1:] == want[1:] and have[0] > want[0]:
            logger.info("truncating projection.weight from %s to %s rows", have[0], want[0])
            state["projection.weight"] = state["projection.weight"][: want[0]]
    mismatched = [k for k in state if k.startswith("projection.") and k in own
                  and torch.is_tensor(state[k]) and state[k].shape != own[k].shape]
    if mismatched:
        # a head for another speaker set: keep the model's new head
        logger.info("%s: head shapes differ (%s); the head is not loaded", path, ", ".join(mismatched))
        state = {k: v for k, v in state.items() if not k.startswith("projection.")}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = str(e).split("\n\t")[1] if "\n\t" in str(e) else str(e)
        raise CheckpointError(f"{path}: state_dict does not fit the model: {first.strip()}") from None
    missing = [k for k in result.missing_keys if not k.startswith("projection.")]
    unexpected = [k for k in result.unexpected_keys if not k.startswith("projection.")]
    if strict_encoder and (missing or unexpected):
        raise CheckpointError(f"{path}: state_dict does not match the model: "
                              f"missing {missing[:10]}{'...' if len(missing) > 10 else ''}, "
                              f"unexpected {unexpected[:10]}{'...' if len(unexpected) > 10 else ''}")
    return list(result.missing_keys), list(result.unexpected_keys)


def save_checkpoint(path: str, obj: Any) -> None:
    """``torch.save`` atomically (temp file, fsync, rename): a crash never leaves half a file."""
    with atomic_output(path, "wb") as f:
        torch.save(obj, f)
