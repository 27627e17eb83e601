"""ATLAS on CLIP: adapter sites on both towers (:mod:`~clviz.atlas.adapters`), task formats for
image, text and image-text tasks (:mod:`~clviz.atlas.formats`), and the upstream / downstream
protocol (:mod:`~clviz.atlas.protocol`). The registered method is :mod:`clviz.methods.atlas`."""
