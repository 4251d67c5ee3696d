"""TVSum TFDS builder (see tvsum_dataset_builder.py)."""
