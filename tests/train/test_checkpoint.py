import pytest
import torch

from wespk.bin.average_model import average_state_dicts, main as average_main
from wespk.io.checkpoint import CheckpointError, load_model_weights, save_checkpoint
from wespk.train import checkpoint as ckpt


class Tiny(torch.nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.bn = torch.nn.BatchNorm1d(2)
        self.projection = torch.nn.Module()
        self.projection.weight = torch.nn.Parameter(torch.randn(classes, 2))


def save_epoch(model_dir, epoch, model):
    save_checkpoint(str(model_dir / f"model_{epoch}.pt"),
                    {"model": model.state_dict(), "optimizer": {}, "epoch": epoch})


def test_average_is_mean_of_state_dicts(tmp_path):
    models = [Tiny() for _ in range(3)]
    for i, m in enumerate(models, 1):
        save_epoch(tmp_path, i, m)
    assert average_main(["--src_path", str(tmp_path), "--dst_model", str(tmp_path / "avg.pt"),
                         "--num", "2"]) == 0
    avg = torch.load(tmp_path / "avg.pt", weights_only=True)
    for key, value in avg.items():
        a, b = models[1].state_dict()[key], models[2].state_dict()[key]
        if value.is_floating_point():
            torch.testing.assert_close(value, (a.double() + b.double()).div(2).float(), rtol=0, atol=1e-7)
        else:
            assert torch.equal(value, b)
    by_range = average_state_dicts([str(tmp_path / f"model_{e}.pt") for e in (1, 2, 3)])
    expect = sum(m.layer.weight.detach().double() for m in models) / 3
    torch.testing.assert_close(by_range["layer.weight"], expect.float())


def test_average_needs_enough_epochs(tmp_path, capsys):
    save_epoch(tmp_path, 1, Tiny())
    assert average_main(["--src_path", str(tmp_path), "--dst_model", str(tmp_path / "a.pt"), "--num", "3"]) == 1
    assert "found 1" in capsys.readouterr().err


def test_checkpoint_order_and_pruning(tmp_path):
    for name in ["model_1_5.pt", "model_1.pt", "model_2_5.pt", "model_10.pt", "model_2.pt"]:
        save_checkpoint(str(tmp_path / name), {"model": {}, "optimizer": {}})
    names = [p.rsplit("/", 1)[-1] for p in ckpt.list_checkpoints(str(tmp_path))]
    assert names == ["model_1_5.pt", "model_1.pt", "model_2_5.pt", "model_2.pt", "model_10.pt"]
    removed = ckpt.prune_checkpoints(str(tmp_path), keep_last_k=2)
    assert sorted(p.rsplit("/", 1)[-1] for p in removed) == ["model_1.pt", "model_1_5.pt", "model_2_5.pt"]
    assert ckpt.latest_checkpoint(str(tmp_path)).endswith("model_10.pt")


def test_latest_skips_corrupt(tmp_path):
    save_checkpoint(str(tmp_path / "model_1.pt"), {"model": {}, "optimizer": {}})
    (tmp_path / "model_2.pt").write_bytes(b"truncated")
    assert ckpt.latest_checkpoint(str(tmp_path)).endswith("model_1.pt")


def test_load_weights_wespeaker_shapes(tmp_path):
    src = Tiny(classes=9)            # trained with 3x speed-perturbed classes
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, tmp_path / "w.pt")
    dst = Tiny(classes=3)
    missing, unexpected = load_model_weights(dst, str(tmp_path / "w.pt"))
    assert missing == [] and unexpected == []
    torch.testing.assert_close(dst.projection.weight, src.projection.weight[:3])
    torch.testing.assert_close(dst.layer.weight, src.layer.weight)
    # an encoder-only model accepts the head keys silently
    encoder = Tiny()
    del encoder.projection
    load_model_weights(encoder, str(tmp_path / "w.pt"))


def test_load_weights_rejects_other_model(tmp_path):
    torch.save({"other.weight": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match=r"w\.pt: state_dict does not match.*other\.weight"):
        load_model_weights(Tiny(), str(tmp_path / "w.pt"))


def test_smaller_pretrained_head_is_replaced(tmp_path):
    src = Tiny(classes=2)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    dst = Tiny(classes=5)
    before = dst.projection.weight.detach().clone()
    missing, _ = load_model_weights(dst, str(tmp_path / "w.pt"))
    assert missing == ["projection.weight"]
    torch.testing.assert_close(dst.projection.weight, before)
    torch.testing.assert_close(dst.layer.weight, src.layer.weight)
