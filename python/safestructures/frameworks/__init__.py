"""Framework adapters, one module per framework, each imported only when its tensors are met."""
