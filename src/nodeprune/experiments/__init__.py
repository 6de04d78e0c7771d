"""Reproduced experiments of the source documents, one module per experiment.

Each module has a ``run(...)`` returning plain rows and a ``main()`` printing a Markdown report; run one
with ``python -m nodeprune.experiments.<name>``. They need scikit-learn (``pip install nodeprune[data]``).
"""
