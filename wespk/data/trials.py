"""Verification trial lists built from a data dir's speakers."""

import itertools
import random
from typing import Dict, List, Tuple

Trial = Tuple[str, str, str]


def make_trials(utt2spk: Dict[str, str], nontarget_ratio: float = 10.0, seed: int = 777) -> List[Trial]:
    """Every same-speaker pair once, plus different-speaker pairs.

    The number of non-target trials is ``nontarget_ratio`` times the number
    of target trials (or every different-speaker pair, if there are fewer),
    drawn without replacement with ``random.Random(seed)``. Pairs are
    unordered (each appears once, enroll < test in C order) and the list is
    shuffled with the same generator, so it is a pure function of its inputs.
    """
    utts = sorted(utt2spk, key=lambda u: u.encode("utf-8"))
    target, nontarget_all = [], []
    for a, b in itertools.combinations(utts, 2):
        (target if utt2spk[a] == utt2spk[b] else nontarget_all).append((a, b))
    if not target:
        raise ValueError("no speaker has two utterances: cannot make target trials")
    rng = random.Random(seed)
    n_non = min(len(nontarget_all), int(round(nontarget_ratio * len(target))))
    nontarget = rng.sample(nontarget_all, n_non)
    trials = [(a, b, "target") for a, b in target] + [(a, b, "nontarget") for a, b in nontarget]
    rng.shuffle(trials)
    return trials
