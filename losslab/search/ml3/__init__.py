"""Meta-learned loss networks (ML3): unrolled inner SGD steps (``engines``), meta-training
(``meta``), meta-training one network of a study (``runner``), the ``ml3:`` section
(``settings``) and ``backend: ml3`` (``backend``).

The loss network itself is ``losslab.losses.learned.LossNetwork``; a candidate names one as the
term ``lossnet:<hash>`` (``losslab.losses.learned_term``).
"""
