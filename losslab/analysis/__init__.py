"""After a study: finished results, the comparison at a final fidelity and its statistics
(bootstrap intervals, paired tests, rank correlations), the tables, the HTML report page,
calibration of fidelities and the suite of hand-designed baselines.

Nothing in ``losslab.search`` or below imports this package.
"""
