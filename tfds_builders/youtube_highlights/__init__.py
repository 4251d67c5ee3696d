"""YouTube Highlights TFDS builder (see youtube_highlights_dataset_builder.py)."""
