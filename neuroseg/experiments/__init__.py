"""One module per notebook, named after it (``notebooks/NN_<name>.ipynb`` uses ``<name>``).

Experiments import the library (every layer below), never each other. The one shared module
is :mod:`~neuroseg.experiments.papers`: the published numbers and the targets, constants only.
"""
