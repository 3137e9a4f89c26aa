"""Weight inheritance (seed 004): children start from the layers their parents trained."""
