"""Training and scoring: a model is an `nn.Module` taking (dense, sparse) and returning logits."""
