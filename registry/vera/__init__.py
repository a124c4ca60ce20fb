"""The VeRA math: shared projection, layers, injection, PEFT I/O, hashing, training.

Torch is imported only by the submodules; `config` is torch-free.
"""
