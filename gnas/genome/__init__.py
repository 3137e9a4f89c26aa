"""The chromosome: search space layout, decoded architectures, memory estimates."""
