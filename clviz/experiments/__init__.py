"""Experiment drivers: each builds what a run needs and hands it to the one loop.

- :mod:`~clviz.experiments.runs`: a method on a task stream from a :class:`RunConfig`
  (``clviz run``), and its place in the run store;
- :mod:`~clviz.experiments.profiles`: named settings (the embedded default, real MTIL);
- :mod:`~clviz.experiments.compare`: several methods with one budget; notebook budgets;
- :mod:`~clviz.experiments.tables`: runs as rows and Markdown tables;
- :mod:`~clviz.experiments.class_incremental`: one growing label space (CIFAR-100, the world);
- :mod:`~clviz.experiments.atlas_protocol`: ATLAS's mixed upstream stream and low-shot
  downstream tasks;
- :mod:`~clviz.experiments.mulki_ablation` and :mod:`~clviz.experiments.mulki_walkthrough`:
  MulKI's stages switched off one at a time, and a close look inside one task.

The main job (every method, the drift analysis, the HTML report) sits above them, beside the
command line: :mod:`clviz.main_job`.
"""
