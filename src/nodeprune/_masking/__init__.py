"""The masker's machinery (private): everything that touches a model's hooks or torch-pruning.

``discovery`` finds the layers and their consumers (node kinds), ``hooks`` holds the masks and applies
them, ``state`` validates node indices and masker states, ``substitution`` merges and constants,
``mask_file`` the JSON file, ``compaction`` physical removal through torch-pruning, ``capture`` and
``probe`` temporary observer hooks. Nothing here imports from the rest of nodeprune except ``_guard`` and
``adaptive_dropout``; :mod:`nodeprune.masker` is the facade built on top.
"""
