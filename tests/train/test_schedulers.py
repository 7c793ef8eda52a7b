import math

import pytest
import torch

from wespk.train.schedulers import CosineDecrease, ExponentialDecrease, MarginScheduler, build_scheduler


def make_optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)


def test_exponential_decrease_endpoints_and_warm_up():
    opt = make_optimizer()
    sched = ExponentialDecrease(opt, num_epochs=10, epoch_iter=100, initial_lr=0.1, final_lr=0.001,
                                warm_up_epoch=2, scale_ratio=4.0)
    assert sched.step(0) == pytest.approx(0.1)            # warm-up starts at coefficient 1
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    # halfway through warm-up: coefficient (4-1)*0.5+1 = 2.5
    assert sched.step(100) == pytest.approx(0.1 * math.exp(0.1 * math.log(0.01)) * 2.5)
    assert sched.step(1000) == pytest.approx(0.001 * 4.0)  # end: final_lr x scale_ratio
    lrs = [sched.lr_at(t) for t in range(200, 1001, 50)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))        # monotone decay after warm-up


def test_schedule_depends_on_global_batch_only():
    # 1 process x batch 64 and 2 processes x batch 32: same epoch length, same ratio
    one = ExponentialDecrease(make_optimizer(), 5, 50, 0.1, 0.001, 1, scale_ratio=1 * 64 / 64)
    two = ExponentialDecrease(make_optimizer(), 5, 50, 0.1, 0.001, 1, scale_ratio=2 * 32 / 64)
    assert [one.lr_at(t) for t in range(250)] == [two.lr_at(t) for t in range(250)]


def test_lr_ratio_per_group():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [a], "lr_ratio": 0.1}, {"params": [b]}], lr=0.0)
    ExponentialDecrease(opt, 1, 10, 0.5, 0.5, 0).step(3)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.5)


class Head:
    def __init__(self):
        self.margin = None

    def update(self, margin):
        self.margin = margin


def test_margin_schedule_exp_rise():
    head = Head()
    sched = MarginScheduler(head, epoch_iter=10, increase_start_epoch=2, fix_start_epoch=4,
                            initial_margin=0.0, final_margin=0.2, increase_type="exp")
    assert head.margin == 0.0
    assert sched.step(9) == 0.0                             # still epoch 1
    assert sched.step(10) == pytest.approx(0.0, abs=1e-6)   # rise begins
    mid = sched.step(20)                                    # halfway: 1 - sqrt(1e-3)
    assert mid == pytest.approx(0.2 * (1 - math.exp(0.5 * math.log(1e-3 / (1 + 1e-6)))))
    assert head.margin == mid
    assert sched.step(30) == 0.2 and sched.step(1000) == 0.2


def test_margin_schedule_linear_and_frozen():
    head = Head()
    sched = MarginScheduler(head, 10, 1, 3, 0.0, 0.4, increase_type="linear")
    assert sched.step(5) == pytest.approx(0.1)
    frozen = MarginScheduler(head, 10, 1, 3, 0.3, 0.5, update_margin=False)
    assert frozen.step(100) == 0.3


def test_cosine_decrease_warm_up_then_half_cosine():
    opt = make_optimizer()
    sched = CosineDecrease(opt, num_epochs=10, epoch_iter=100, initial_lr=1e-3, final_lr=1e-5,
                           warm_up_epoch=2, scale_ratio=1.0, warm_from_zero=True)
    assert sched.step(0) == 0.0                                   # warm-up from zero
    assert sched.step(100) == pytest.approx(0.5e-3)               # halfway through warm-up, full base lr
    assert sched.step(200) == pytest.approx(1e-3)                 # peak at the end of the warm-up
    assert sched.step(600) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)  # half way down the cosine
    assert sched.step(1000) == pytest.approx(1e-5)
    assert sched.step(5000) == pytest.approx(1e-5)                # clipped after the last step
    lrs = [sched.lr_at(t) for t in range(200, 1001, 25)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    # symmetric around the midpoint of the decay: lr(mid - d) + lr(mid + d) = initial + final
    assert sched.lr_at(500) + sched.lr_at(700) == pytest.approx(1e-3 + 1e-5)


def test_cosine_decrease_resumes_from_step_and_is_built_by_name():
    sched = build_scheduler("CosineDecrease", make_optimizer(), num_epochs=4, epoch_iter=10,
                            initial_lr=0.1, final_lr=0.001, warm_up_epoch=1)
    sched.step(23)
    other = build_scheduler("CosineDecrease", make_optimizer(), num_epochs=4, epoch_iter=10,
                            initial_lr=0.1, final_lr=0.001, warm_up_epoch=1)
    other.load_state_dict(sched.state_dict())
    assert other.get_lr() == sched.get_lr() == sched.lr_at(23)
    with pytest.raises(ValueError, match="unknown scheduler 'Cosine'.*CosineDecrease"):
        build_scheduler("Cosine", make_optimizer(), num_epochs=1, epoch_iter=1, initial_lr=1, final_lr=1)
