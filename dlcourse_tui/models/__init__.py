"""Models: a registry (registry.py) and one module per family, each model a small
nn.Module with a dataclass config."""
