"""The bundled "shapes" classifier, in four parts that import in this order:

- ``spec``: its classes, input size and preprocessing (no PyTorch);
- ``net``: the network;
- ``scenes``: drawn training crops and cluttered scenes;
- ``train``: training from scratch (``python -m fc2conv.shapes``);
- ``quality``: detection and heatmap quality over seeded scenes (uses fc2conv's run stage).

Nothing is imported here, so that loading the network does not load drawing or training code.
"""
