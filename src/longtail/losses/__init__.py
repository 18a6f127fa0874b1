"""Loss functions for long-tailed classification, one small module each.

Notation: logits z (B x C), true labels y, class counts n_c, prior π_c = n_c / N.
"""

from longtail.losses.class_balanced import effective_number_weights
from longtail.losses.focal import focal_loss
from longtail.losses.ldam import ldam_loss, ldam_margins
from longtail.losses.logit_adjust import balanced_softmax_loss, log_prior, logit_adjusted_loss, posthoc_adjust

__all__ = [
    "balanced_softmax_loss", "effective_number_weights", "focal_loss", "ldam_loss", "ldam_margins",
    "log_prior", "logit_adjusted_loss", "posthoc_adjust",
]
