"""Importers of models trained elsewhere (``xnor-edge import``).

Each importer needs its source format's parser, an optional extra: ONNX needs
``pip install 'xnor-edge[import]'`` (the ``onnx`` package), imported only when
an import runs.
"""
