"""What a run found: report sections, figures, notebook helpers, export, TensorBoard scalars."""
