"""Training heads and losses.

* :func:`get_projection` builds a classification head from WeSpeaker's
  ``projection_args`` (plus ``embed_dim`` and ``num_class``).
* :func:`build_loss` builds the loss applied to the head's logits, e.g.
  cross-entropy with label smoothing for the softmax head.

A head is called as ``head(embed, label)`` and returns logits, except
:class:`SphereFace2`, which returns ``(logits, loss)`` with the loss already
computed.  ``head.update(margin)`` sets the margin (the margin scheduler's
hook).
"""

import logging
from typing import Any, Dict

import torch.nn as nn

from wespk.losses.margin_heads import (AddMarginProduct, ArcMarginProduct,
                                       ArcMarginProduct_intertopk_subcenter,
                                       SoftmaxHead, SphereFace2, SphereProduct)

logger = logging.getLogger(__name__)

PROJECT_TYPES = ('softmax', 'add_margin', 'arc_margin',
                 'arc_margin_intertopk_subcenter', 'sphere', 'sphereface2')

# Keys that some project_type uses; a key another type uses is ignored.
_PROJECTION_KEYS = frozenset({
    'project_type', 'embed_dim', 'num_class', 'scale', 'margin',
    'easy_margin', 'K', 'mp', 'k_top', 'do_lm', 't', 'lanbuda', 'margin_type'
})


def get_projection(conf: Dict[str, Any]) -> nn.Module:
    """Build a classification head from a WeSpeaker ``projection_args`` dict.

    Required keys: ``project_type`` (one of :data:`PROJECT_TYPES`),
    ``embed_dim`` and ``num_class``.  Margin heads also need ``scale``;
    optional keys: ``easy_margin`` (default False), ``K`` (3), ``mp``
    (0.06), ``k_top`` (5), ``do_lm`` (False) for the sub-centre head, ``t``
    (3), ``lanbuda`` (0.7), ``margin_type`` ('C') for SphereFace2.

    As in WeSpeaker, margin heads are built with margin 0.0 and the margin
    scheduler sets the margin with ``head.update(margin)``.  If ``conf`` has
    ``margin``, ``update(margin)`` is called once here, which is what the
    scheduler would do (for the sub-centre head this also switches on the
    inter-top-k penalty).  SphereProduct always uses WeSpeaker's integer
    margin 4.

    Raises:
        ValueError: unknown ``project_type`` or unknown keys.
    """
    unknown = set(conf) - _PROJECTION_KEYS
    if unknown:
        raise ValueError(f'unknown projection_args keys {sorted(unknown)}; '
                         f'known: {sorted(_PROJECTION_KEYS)}')
    project_type = conf['project_type']
    embed_dim = conf['embed_dim']
    num_class = conf['num_class']
    if project_type == 'softmax':
        return SoftmaxHead(embed_dim, num_class)
    if project_type == 'sphere':
        return SphereProduct(embed_dim, num_class, margin=4)
    if project_type == 'add_margin':
        head = AddMarginProduct(embed_dim,
                                num_class,
                                scale=conf['scale'],
                                margin=0.0)
    elif project_type == 'arc_margin':
        head = ArcMarginProduct(embed_dim,
                                num_class,
                                scale=conf['scale'],
                                margin=0.0,
                                easy_margin=conf.get('easy_margin', False))
    elif project_type == 'arc_margin_intertopk_subcenter':
        head = ArcMarginProduct_intertopk_subcenter(
            embed_dim,
            num_class,
            scale=conf['scale'],
            margin=0.0,
            easy_margin=conf.get('easy_margin', False),
            K=conf.get('K', 3),
            mp=conf.get('mp', 0.06),
            k_top=conf.get('k_top', 5),
            do_lm=conf.get('do_lm', False))
    elif project_type == 'sphereface2':
        head = SphereFace2(embed_dim,
                           num_class,
                           scale=conf['scale'],
                           margin=0.0,
                           t=conf.get('t', 3),
                           lanbuda=conf.get('lanbuda', 0.7),
                           margin_type=conf.get('margin_type', 'C'))
    else:
        raise ValueError(f'unknown project_type {project_type!r}; '
                         f'known: {", ".join(PROJECT_TYPES)}')
    if 'margin' in conf:
        head.update(conf['margin'])
    logger.info('projection head: %s', head)
    return head


def build_loss(name: str = 'CrossEntropyLoss',
               label_smoothing: float = 0.0) -> nn.Module:
    """Build the classification loss by WeSpeaker's ``loss`` name.

    Args:
        name: ``'CrossEntropyLoss'`` (the only loss WeSpeaker's configs use).
        label_smoothing: probability mass spread uniformly over the classes
            (0 disables it); usually paired with the softmax head.

    Raises:
        ValueError: for any other name.
    """
    if name != 'CrossEntropyLoss':
        raise ValueError(f'unknown loss {name!r}; known: CrossEntropyLoss')
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


__all__ = [
    'AddMarginProduct', 'ArcMarginProduct',
    'ArcMarginProduct_intertopk_subcenter', 'PROJECT_TYPES', 'SoftmaxHead',
    'SphereFace2', 'SphereProduct', 'build_loss', 'get_projection'
]
