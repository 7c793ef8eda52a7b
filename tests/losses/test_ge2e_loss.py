"""GE2ELoss against a plain loop over speakers, utterances and centroids."""

import math

import pytest
import torch

from wespk.losses.ge2e import GE2ELoss


def cosine(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def naive_ge2e(emb: torch.Tensor, w: float, b: float, method: str):
    """Loss and accuracy computed one utterance and one centroid at a time (float64)."""
    emb = emb.double()
    n_spk, n_utt, _ = emb.shape
    total, correct = 0.0, 0
    for j in range(n_spk):
        for i in range(n_utt):
            scores = []
            for k in range(n_spk):
                if k == j:
                    others = [emb[j, m] for m in range(n_utt) if m != i]
                    centroid = sum(others) / len(others)
                else:
                    centroid = sum(emb[k, m] for m in range(n_utt)) / n_utt
                scores.append(w * cosine(emb[j, i], centroid) + b)
            if method == "softmax":
                total += -scores[j] + math.log(sum(math.exp(s) for s in scores))
            else:
                sig = [1 / (1 + math.exp(-s)) for s in scores]
                total += 1 - sig[j] + max(sig[k] for k in range(n_spk) if k != j)
            correct += int(max(range(n_spk), key=lambda k: scores[k]) == j)
    return total / (n_spk * n_utt), correct / (n_spk * n_utt)


@pytest.mark.parametrize("method", ["softmax", "contrast"])
@pytest.mark.parametrize("shape", [(2, 2, 3), (4, 5, 8), (6, 3, 16)])
def test_matches_naive_loop(method, shape):
    torch.manual_seed(sum(shape))
    # clustered embeddings (accuracies 0.5, 0.8 and 1.0 for the three shapes)
    centers = torch.randn(shape[0], 1, shape[2])
    emb = centers + 0.8 * torch.randn(*shape)
    loss_fn = GE2ELoss(init_w=7.5, init_b=-2.0, loss_method=method)
    loss, acc = loss_fn(emb, return_accuracy=True)
    want_loss, want_acc = naive_ge2e(emb, 7.5, -2.0, method)
    assert loss.item() == pytest.approx(want_loss, rel=1e-5, abs=1e-6)
    assert acc.item() == pytest.approx(want_acc)
    assert loss_fn(emb).item() == pytest.approx(loss.item())


def test_defaults_and_parameters_learn():
    loss_fn = GE2ELoss()
    assert loss_fn.w.item() == 10.0 and loss_fn.b.item() == -5.0
    emb = torch.randn(3, 4, 6, requires_grad=True)
    loss_fn(emb).backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    assert loss_fn.w.grad is not None and loss_fn.w.grad.item() != 0
    assert loss_fn.b.grad is not None


def test_scale_is_clamped_with_gradient_passing_through():
    torch.manual_seed(1)
    emb = torch.randn(3, 4, 6)
    negative = GE2ELoss(init_w=-3.0, init_b=0.5)
    tiny = GE2ELoss(init_w=1e-6, init_b=0.5)
    loss_negative = negative(emb)
    assert loss_negative.item() == pytest.approx(tiny(emb).item(), rel=1e-6)
    assert loss_negative.item() == pytest.approx(naive_ge2e(emb, 1e-6, 0.5, "softmax")[0], rel=1e-5)
    loss_negative.backward()
    assert negative.w.grad is not None and negative.w.grad.item() != 0


def test_separated_speakers_give_low_loss_and_full_accuracy():
    torch.manual_seed(2)
    centers = torch.eye(4, 8)[:, None, :] * 10
    emb = centers + 0.01 * torch.randn(4, 5, 8)
    loss, acc = GE2ELoss()(emb, return_accuracy=True)
    mixed_loss = GE2ELoss()(torch.randn(4, 5, 8))
    assert acc.item() == 1.0
    assert loss.item() < mixed_loss.item()


def test_bad_input():
    with pytest.raises(ValueError, match="loss_method"):
        GE2ELoss(loss_method="triplet")
    with pytest.raises(ValueError, match=r"\[N speakers, M utterances, D\]"):
        GE2ELoss()(torch.randn(4, 8))
    with pytest.raises(ValueError, match="at least 2 speakers with 2 utterances"):
        GE2ELoss()(torch.randn(3, 1, 8))
