"""Meta-learned loss networks (ML3): unrolled inner SGD steps (``engines``), meta-training (``meta``).

The loss network itself is ``losslab.losses.learned.LossNetwork``.
"""
