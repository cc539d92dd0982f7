"""Models: plain `nn.Module`s built from `conf/model/*.yaml` with the data's shape filled in at run time."""
