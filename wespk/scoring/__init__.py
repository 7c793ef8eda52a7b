"""Scoring back end: cosine scoring, S-norm / AS-norm, QMF calibration, metrics and reports.

Modules (import the one you need; only ``calibration`` imports torch, ``score_norm`` does when
asked to run on a torch device):

* ``score_files``        score files: fast reading in pieces, exact errors, atomic writing
  (trial lists: :mod:`wespk.io.trials`)
* ``cosine``             mean vector, mean subtraction, length normalisation, cosine scores
* ``cohort``             per-speaker mean embeddings (the cohort)
* ``score_norm``         exact cohort statistics, ``asnorm``, ``snorm``, score-norm files
* ``device``             numpy on the CPU or torch on a GPU (``auto``)
* ``calibration_trials`` calibration trial lists by duration condition (seeded)
* ``calibration``        QMF: ``gather_factors``, ``train_qmf``, ``apply_qmf``
* ``metrics``            ``eer_min_dcf``, ``act_dcf``, ``cllr``
* ``plots``              DET curve and score histogram PNGs
* ``report``             stdout lines, markdown summary, JSON record
"""
