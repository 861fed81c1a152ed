"""Genetic programming over loss expressions and class-weight rules (DEAP), as a search backend.

``language.py`` makes a vocabulary of the expression language a typed DEAP primitive set;
``evolution.py`` breeds generations; ``targets.py`` says what is evolved (a loss, a rule) and
what it becomes as a candidate; ``rule_screen.py`` screens rules (the loss screen is
``losslab.search.gp.screening``); ``backend.py`` is the ask/tell backend on the study store.
"""
