"""duration_corpus TFDS builder: per-video segment features bucketed by duration."""

from tfds_builders.duration_corpus.duration_corpus_dataset_builder import Builder
from tfds_builders.duration_corpus.duration_corpus_dataset_builder import DurationCorpusConfig
from tfds_builders.duration_corpus.duration_corpus_dataset_builder import get_builder

__all__ = ['Builder', 'DurationCorpusConfig', 'get_builder']
