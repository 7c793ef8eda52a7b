"""Scoring back end: cosine scoring, S-norm / AS-norm, QMF calibration, metrics and reports.

Modules (import the one you need; only ``score_norm`` and ``calibration`` import torch):

* ``score_files``        trial lists and score files: fast reading, exact errors, atomic writing
* ``cosine``             mean vector, mean subtraction, length normalisation, cosine scores
* ``cohort``             per-speaker mean embeddings (the cohort)
* ``score_norm``         cohort statistics, ``asnorm``, ``snorm``
* ``calibration_trials`` calibration trial lists by duration condition (seeded)
* ``calibration``        QMF: ``gather_factors``, ``train_qmf``, ``apply_qmf``
* ``metrics``            ``eer_min_dcf``, ``act_dcf``, ``cllr``
* ``plots``              DET curve and score histogram PNGs
* ``report``             stdout lines, markdown summary, JSON record
"""
