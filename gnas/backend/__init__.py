"""Model building and training: the only package of gnas that imports TensorFlow.

Importing this package does not import TensorFlow; its modules do, so thread
settings can be put in the environment first (:func:`gnas.backend.runtime.configure`).
"""
