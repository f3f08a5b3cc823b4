"""Train XNOR-Net / BWN networks in PyTorch and export them to xnor-edge model files.

Modules: layers (binary ops with the runtime's exact semantics), models, data,
train, export, evaluate, parity, card, ablation.  See docs/training.md.
Optional: needs torch; the runtime package (xnor_edge) never imports this.
"""
