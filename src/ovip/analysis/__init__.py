"""`ovip analyze`: the paper's analyses as commands that write a table (JSON + Markdown) and a figure (PNG).

    dynamics     duplicate rate and distinct responses per prompt over training (Appendix B.5, Fig. 10)
    negatives    whether the negative images contradict the chosen answer (§2.4, Table 1), exact on the world
    mass-shift   probability mass per judge-score bin before and after training (§4, Fig. 5)

The numbers come from the pure functions of `ovip.analysis.stats` and `ovip.world.truth`.
"""
