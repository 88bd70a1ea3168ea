"""The ground floor of numerics, under models, ntk and train: the precision policy (`precision`:
exact_matmul, ieee_float32) and statistics of tensors (`statistics`). It imports nothing else of
attnlab."""
