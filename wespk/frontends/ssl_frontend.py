"""Self-supervised frontends: WavLM, HuBERT and wav2vec 2.0 from ``transformers``.

:class:`SSLFrontend` wraps ``WavLMModel``, ``HubertModel`` or ``Wav2Vec2Model``
and returns every hidden state, the input of the first transformer layer and
the output of each layer, as one tensor ``[B, D, T, L]`` (``L`` = layers + 1),
with the valid frames of each utterance computed from its valid samples by the
conv stack's output-length rule (``floor((n - kernel) / stride) + 1`` per
layer). The hidden states are exactly those of the model's own
``output_hidden_states`` (the last one is before the final layer norm of the
"stable layer norm" variants, as in the official WavLM code).

The model comes from one of

* a local HuggingFace model dir (``config.json`` and the weights), read with
  ``local_files_only=True`` (nothing is downloaded);
* a config alone (random initialisation): ``config: {hidden_size: 64, ...}``,
  keys of ``WavLMConfig`` / ``HubertConfig`` / ``Wav2Vec2Config``.

An official or s3prl WavLM checkpoint is first turned into a model dir by
``python -m wespk.bin.checkpoint_tool convert-ssl`` (:mod:`wespk.frontends.convert`).

Padded batches: the waveform mask becomes the model's ``attention_mask``
(padded frames are zeroed before the positional convolution and never attended
to). Models whose first conv layer uses group norm (``feat_extract_norm:
group``, the Base models) normalise over the whole input, padding included, so
a batch of different lengths is run one utterance at a time there; then a
padded batch gives the same hidden states as each utterance alone.
"""

import contextlib
import json
import logging
import os
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

#: ``frontend`` names -> (config class, model class, ``model_type`` of the config).
FRONTEND_TYPES = MappingProxyType({
    "wavlm": ("WavLMConfig", "WavLMModel", "wavlm"),
    "hubert": ("HubertConfig", "HubertModel", "hubert"),
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model", "wav2vec2"),
})

#: The epsilon of the waveform normalisation (``Wav2Vec2FeatureExtractor``'s).
NORMALIZE_EPS = 1e-7


class FrontendError(ValueError):
    """A frontend that cannot be built; the message names the file or key."""


def import_transformers():
    """The ``transformers`` module, or an ImportError that says how to install it."""
    try:
        import transformers
    except ImportError as e:
        raise ImportError("self-supervised frontends need the 'transformers' package: "
                          "bash tools/install.sh --ssl (or pip install -r requirements-ssl.txt)") from e
    return transformers


def normalize_waveform(wav: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Zero mean, unit variance per utterance over its valid samples (padding stays 0).

    ``(x - mean) / sqrt(var + 1e-7)`` with the population variance, as
    ``Wav2Vec2FeatureExtractor(do_normalize=True)`` does.
    """
    if lengths is None:
        mean = wav.mean(dim=1, keepdim=True)
        var = wav.var(dim=1, unbiased=False, keepdim=True)
        return (wav - mean) / torch.sqrt(var + NORMALIZE_EPS)
    mask = (torch.arange(wav.shape[1], device=wav.device)[None, :] < lengths[:, None]).to(wav.dtype)
    count = mask.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (wav * mask).sum(dim=1, keepdim=True) / count
    var = ((wav - mean) * mask).pow(2).sum(dim=1, keepdim=True) / count
    return (wav - mean) / torch.sqrt(var + NORMALIZE_EPS) * mask


def _read_do_normalize(model_dir: str) -> Optional[bool]:
    path = os.path.join(model_dir, "preprocessor_config.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f).get("do_normalize")
    except (OSError, ValueError) as e:
        raise FrontendError(f"{path}: cannot read ({e})") from None
    return None if value is None else bool(value)


def build_hf_model(frontend: str, model_dir: Optional[str] = None,
                   config: Optional[Mapping[str, Any]] = None,
                   overrides: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """A ``transformers`` model of type ``frontend`` from a local dir or a config.

    ``overrides`` are config attributes set before the model is built
    (``layerdrop``, ``mask_time_prob`` ...). With ``model_dir`` the weights
    are loaded from it with ``local_files_only=True``; ``config`` keys then
    override the dir's ``config.json`` too.
    """
    if frontend not in FRONTEND_TYPES:
        raise FrontendError(f"unknown frontend {frontend!r}; known: {', '.join(FRONTEND_TYPES)}")
    transformers = import_transformers()
    config_name, model_name, model_type = FRONTEND_TYPES[frontend]
    config_cls = getattr(transformers, config_name)
    model_cls = getattr(transformers, model_name)
    settings = dict(config or {})
    settings.update(overrides or {})
    if model_dir:
        config_path = os.path.join(model_dir, "config.json")
        if not os.path.isfile(config_path):
            raise FrontendError(f"{model_dir}: not a HuggingFace model dir (no config.json); an official "
                                f"WavLM .pt is converted with: python -m wespk.bin.checkpoint_tool "
                                f"convert-ssl IN.pt OUT_DIR")
        hf_config = config_cls.from_pretrained(model_dir, local_files_only=True)
        found = getattr(hf_config, "model_type", None)
        if found != model_type:
            raise FrontendError(f"{config_path}: model_type {found!r}, but the frontend is {frontend!r} "
                                f"(expects model_type {model_type!r})")
        for key, value in settings.items():
            setattr(hf_config, key, value)
        return model_cls.from_pretrained(model_dir, config=hf_config, local_files_only=True)
    unknown = sorted(k for k in (config or {}) if not hasattr(config_cls(), k))
    if unknown:
        raise FrontendError(f"frontend_args.config: unknown {config_name} key(s) {unknown}")
    return model_cls(config_cls(**settings))


class SSLFrontend(nn.Module):
    """A pre-trained speech model as a frontend: waveform -> all hidden states.

    Args:
        frontend: ``wavlm``, ``hubert`` or ``wav2vec2``.
        model_dir: local HuggingFace model dir with the pre-trained weights.
        config: model config keys (random initialisation without ``model_dir``;
            overrides of its ``config.json`` with it).
        frozen: the model stays in eval mode and gets no gradient.
        normalize: normalise each waveform to zero mean and unit variance;
            None takes ``do_normalize`` from the dir's ``preprocessor_config.json``
            (False without one).
        layerdrop: probability of skipping a transformer layer in training (a
            skipped layer's hidden state repeats its input).
        mask_time_prob, mask_time_length: SpecAugment-style time masking of
            the conv features in training (0 = off).
        gradient_checkpointing: recompute the transformer layers in backward.
        freeze_feature_encoder: no gradient for the conv stack.
        chunk_seconds: in eval mode, utterances longer than this are cut into
            chunks of this length, run one at a time and their frames joined
            (bounded memory for long recordings); 0 = never.
        sample_rate: the waveform rate the model expects.
    """

    def __init__(self,
                 frontend: str = "wavlm",
                 model_dir: Optional[str] = None,
                 config: Optional[Mapping[str, Any]] = None,
                 frozen: bool = False,
                 normalize: Optional[bool] = None,
                 layerdrop: float = 0.0,
                 mask_time_prob: float = 0.0,
                 mask_time_length: int = 10,
                 gradient_checkpointing: bool = False,
                 freeze_feature_encoder: bool = False,
                 chunk_seconds: float = 30.0,
                 sample_rate: int = 16000):
        super().__init__()
        if model_dir is None and config is None:
            raise FrontendError("frontend_args needs model_dir (a HuggingFace model dir) or config "
                                "(a model config for random initialisation)")
        if model_dir is not None and not os.path.isdir(model_dir):
            raise FrontendError(f"frontend_args.model_dir {model_dir}: no such directory")
        overrides = {"layerdrop": float(layerdrop), "mask_time_prob": float(mask_time_prob),
                     "mask_time_length": int(mask_time_length), "mask_feature_prob": 0.0}
        self.frontend_type = frontend
        self.model = build_hf_model(frontend, model_dir, config, overrides)
        if normalize is None:
            normalize = bool(model_dir and _read_do_normalize(model_dir))
        self.normalize = bool(normalize)
        self.frozen = bool(frozen)
        self.sample_rate = int(sample_rate)
        self.chunk_seconds = float(chunk_seconds or 0.0)
        self.per_utterance_padding = getattr(self.model.config, "feat_extract_norm", "layer") == "group"
        if getattr(self.model.config, "do_stable_layer_norm", False):
            # the hidden states are taken before the encoder's final layer norm (as the model's own
            # output_hidden_states are): its parameters get no gradient, so they do not train
            self.model.encoder.layer_norm.requires_grad_(False)
        self.layerdrop = float(layerdrop)
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if freeze_feature_encoder:
            self.model.freeze_feature_encoder()
        if self.frozen:
            for param in self.model.parameters():
                param.requires_grad_(False)
            self.model.eval()

    # -- shape ---------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        """D: channels of every hidden state."""
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        """L: hidden states returned (transformer layers + 1)."""
        return int(self.model.config.num_hidden_layers) + 1

    @property
    def downsample_rate(self) -> int:
        """Samples per frame (320 for the usual 20 ms frames at 16 kHz)."""
        rate = 1
        for stride in self.model.config.conv_stride:
            rate *= int(stride)
        return rate

    @property
    def receptive_field(self) -> int:
        """Samples that make the first frame (400 for the usual conv stack)."""
        field = 1
        for kernel, stride in reversed(list(zip(self.model.config.conv_kernel, self.model.config.conv_stride))):
            field = (field - 1) * int(stride) + int(kernel)
        return field

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames for ``lengths`` valid samples (the conv stack's rule; 0 below one frame)."""
        frames = lengths.to(torch.long)
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            frames = torch.div(frames - int(kernel), int(stride), rounding_mode="floor") + 1
        return frames.clamp(min=0)

    def train(self, mode: bool = True) -> "SSLFrontend":
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    # -- forward ---------------------------------------------------------------
    def forward(self, wav: torch.Tensor,
                lengths: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """wav: [B, S] float samples; lengths: valid samples [B] or None.

        Returns ``(hidden [B, D, T, L], frame_lengths [B])``; frames past an
        utterance's length are zero.
        """
        if wav.dim() == 3 and wav.shape[-1] == 1:
            wav = wav.squeeze(-1)
        if wav.dim() != 2:
            raise ValueError(f"the SSL frontend takes waveforms [B, S], got shape {tuple(wav.shape)}")
        batch, num_samples = wav.shape
        if lengths is None:
            lengths = torch.full((batch,), num_samples, dtype=torch.long, device=wav.device)
        lengths = lengths.to(device=wav.device, dtype=torch.long)
        if int(lengths.min()) < self.receptive_field:
            raise ValueError(f"an utterance of {int(lengths.min())} samples is shorter than one frame of the "
                             f"SSL frontend ({self.receptive_field} samples)")
        grad = torch.no_grad() if self.frozen else contextlib.nullcontext()
        with grad:
            wav = wav.float()
            if self.normalize:
                wav = normalize_waveform(wav, lengths)
            chunk = int(round(self.chunk_seconds * self.sample_rate / self.downsample_rate)) * self.downsample_rate
            long_input = not self.training and chunk > 0 and int(lengths.max()) > chunk
            ragged = bool((lengths != num_samples).any())
            if long_input or (ragged and self.per_utterance_padding):
                pieces = [self._forward_one(wav[i:i + 1, :int(lengths[i])], chunk if long_input else 0)
                          for i in range(batch)]
                return _pad_frames(pieces)
            return self._forward_batch(wav, lengths if ragged else None)

    def _forward_one(self, wav: torch.Tensor, chunk: int) -> torch.Tensor:
        """One utterance [1, S] -> [1, D, T, L], in chunks of ``chunk`` samples when that is > 0."""
        total = wav.shape[1]
        if chunk <= 0 or total <= chunk:
            return self._forward_batch(wav, None)[0]
        starts = list(range(0, total, chunk))
        if len(starts) > 1 and total - starts[-1] < max(chunk // 2, self.receptive_field):
            starts.pop()  # a short tail joins the previous chunk
        ends = starts[1:] + [total]
        parts = [self._forward_batch(wav[:, s:e], None)[0] for s, e in zip(starts, ends)]
        return torch.cat(parts, dim=2)

    def _forward_batch(self, wav: torch.Tensor,
                       lengths: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The model on a batch; hidden states collected from the encoder's layers."""
        encoder = self.model.encoder
        layers = list(encoder.layers)
        collected: Dict[int, torch.Tensor] = {}

        def keep(index: int):
            def hook(module, inputs, output):
                collected[index] = output[0] if isinstance(output, (tuple, list)) else output
            return hook

        handles = [encoder.dropout.register_forward_hook(keep(0))]
        handles += [layer.register_forward_hook(keep(i + 1)) for i, layer in enumerate(layers)]
        attention_mask = None
        if lengths is not None:
            attention_mask = (torch.arange(wav.shape[1], device=wav.device)[None, :]
                              < lengths[:, None]).to(torch.long)
        try:
            self.model(wav, attention_mask=attention_mask)
        finally:
            for handle in handles:
                handle.remove()
        states: List[torch.Tensor] = []
        for index in range(len(layers) + 1):
            # a layer skipped by layerdrop passes its input on unchanged
            states.append(collected.get(index, states[-1] if states else None))
        hidden = torch.stack(states, dim=-1).transpose(1, 2)  # [B, T, D, L] -> [B, D, T, L]
        num_frames = hidden.shape[2]
        if lengths is None:
            frames = torch.full((wav.shape[0],), num_frames, dtype=torch.long, device=wav.device)
            return hidden, frames
        frames = self.frame_lengths(lengths).clamp(max=num_frames)
        mask = (torch.arange(num_frames, device=wav.device)[None, :] < frames[:, None]).to(hidden.dtype)
        return hidden * mask[:, None, :, None], frames


def _pad_frames(pieces: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """[1, D, T_i, L] pieces -> zero-padded [B, D, T, L] and the lengths T_i."""
    frames = torch.tensor([p.shape[2] for p in pieces], dtype=torch.long, device=pieces[0].device)
    longest = int(frames.max())
    batch = [nn.functional.pad(p, (0, 0, 0, longest - p.shape[2])) for p in pieces]
    return torch.cat(batch, dim=0), frames


def frontend_from_args(frontend: str, frontend_args: Optional[Mapping[str, Any]]) -> SSLFrontend:
    """An :class:`SSLFrontend` from the YAML's ``frontend`` and ``frontend_args``.

    Unknown keys are errors that list the known ones.
    """
    import inspect
    args = dict(frontend_args or {})
    known = [p for p in inspect.signature(SSLFrontend.__init__).parameters if p not in ("self", "frontend")]
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise FrontendError(f"unknown frontend_args key(s) {unknown}; known keys: {known}")
    return SSLFrontend(frontend=frontend, **args)
