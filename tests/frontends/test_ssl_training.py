"""Training rules of SSL models: the frontend's learning-rate group, frozen frontends, raw waveforms."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import CORPUS
from tests.frontends.conftest import tiny_config
from wespk.data.dataset import SpeakerDataset, read_spk2id
from wespk.frontends.training import frontend_param_groups
from wespk.io.audio import load_audio
from wespk.models import get_speaker_model
from wespk.train.schedulers import build_scheduler
from wespk.train.trainer import build_optimizer, encoder_param_groups


def tiny_model(**model_args):
    model = get_speaker_model("SSL_MHFA")(frontend="wavlm", frontend_args={"config": tiny_config(),
                                                                           **model_args.pop("frontend_args", {})},
                                          head_nb=4, embed_dim=16, **model_args)
    model.add_module("projection", torch.nn.Linear(16, 3))
    return model


def optimizer_for(model):
    groups = frontend_param_groups(model, encoder_param_groups(model, [], 1.0))
    optimizer = build_optimizer("SGD", groups, {})
    scheduler = build_scheduler("ExponentialDecrease", optimizer, num_epochs=2, epoch_iter=10,
                                initial_lr=0.1, final_lr=0.01, warm_up_epoch=0)
    scheduler.step(7)
    return {g["name"]: g for g in optimizer.param_groups}


@pytest.mark.parametrize("key", ["frontend_lr_ratio", "feature_grad_mult"])
def test_frontend_gets_a_tenth_of_the_learning_rate(key):
    model = tiny_model(**{key: 0.1})
    groups = optimizer_for(model)
    assert set(groups) == {"encoder", "head", "frontend"}
    assert groups["frontend"]["lr"] == pytest.approx(0.1 * groups["encoder"]["lr"], rel=1e-12)
    assert groups["head"]["lr"] == groups["encoder"]["lr"] > 0
    assert {id(p) for p in groups["frontend"]["params"]} == {id(p) for p in model.frontend.parameters()}
    assert not {id(p) for p in model.frontend.parameters()} & {id(p) for p in groups["encoder"]["params"]}


def test_frozen_frontend_is_out_of_the_optimizer_and_stays_in_eval_mode():
    model = tiny_model(frontend_args={"frozen": True})
    groups = optimizer_for(model)
    assert "frontend" not in groups
    optimizer_params = {id(p) for g in groups.values() for p in g["params"]}
    assert not optimizer_params & {id(p) for p in model.frontend.parameters()}
    model.train()
    assert not model.frontend.model.training and model.back_end.training
    embedding = model(torch.randn(2, 4000))
    embedding.sum().backward()
    assert all(p.grad is None for p in model.frontend.parameters())
    assert model.back_end.weights_k.grad is not None


def test_waveform_pipeline_gives_the_audio_itself(tmp_path):
    speaker = sorted((CORPUS / "train").iterdir())[0]
    files = sorted(speaker.iterdir())[:3]
    raw_list = tmp_path / "raw.list"
    raw_list.write_text("".join(json.dumps({"key": f.stem, "spk": speaker.name, "wav": str(f)}) + "\n"
                                for f in files))
    spk2id = {speaker.name: 0}
    args = {"frontend": "waveform", "speed_perturb": False, "aug_prob": 0.0, "num_frms": 100,
            "shuffle": False, "spec_aug": True}
    dataset = SpeakerDataset(str(raw_list), "raw", args, spk2id, batch_size=3)
    dataset.set_epoch(1)
    batch = next(iter(dataset))
    # 100 frames of 10 ms with a 25 ms window: 1.015 s of samples, one channel
    assert batch["feats"].shape == (3, 16240, 1)
    for key, feat in zip(batch["keys"], batch["feats"]):
        audio, _ = load_audio(str(next(f for f in files if f.stem == key)))
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        chunk = feat[:, 0].numpy()
        starts = [s for s in range(len(audio) - len(chunk) + 1) if audio[s] == chunk[0]]
        assert any(np.array_equal(audio[s:s + len(chunk)], chunk) for s in starts), key
    with pytest.raises(ValueError, match="'waveform' for models"):
        SpeakerDataset(str(raw_list), "raw", {"frontend": "s3prl"}, spk2id)
