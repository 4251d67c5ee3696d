"""The segment table, windows and in-step pair sampling."""

from absl.testing import absltest
import jax
import ml_collections
import numpy as np

from hl_jax.data import corpora
from hl_jax.less_is_more import input_pipeline
from hl_jax.less_is_more import segment_table

SHORT, LONG, REST = segment_table.SHORT, segment_table.LONG, segment_table.REST


def fake_source(num_videos=30, dim=4, seed=0):
  """Videos whose features encode (video number, bucket) so rows can be traced."""
  rng = np.random.default_rng(seed)
  videos = []
  for i in range(num_videos):
    bucket = [SHORT, LONG, REST][i % 3]
    length = int(rng.integers(1, 6))
    features = np.zeros((length, dim), np.float32)
    features[:, 0] = i
    features[:, 1] = bucket
    features[:, 2] = np.arange(length)
    videos.append({"video_id": f"v{i:03d}", "bucket": bucket, "features": features})
  return videos


def input_config(**overrides):
  config = ml_collections.ConfigDict(
      {"max_segments_per_video": 64, "shuffle_seed": 0, "num_workers": 0}
  )
  config.update(overrides)
  return config


def reader_for(source, capacity, max_videos, config=None):
  stream = input_pipeline.make_video_stream(source, config or input_config())
  return input_pipeline.WindowReader(stream, capacity, 4, max_videos, np.float32)


class InputPipelineTest(absltest.TestCase):

  def test_whole_corpus_table(self):
    source = fake_source()
    window = reader_for(source, 1000, len(source)).read()
    table = window.table
    expected_short = sum(len(v["features"]) for v in source if v["bucket"] == SHORT)
    expected_long = sum(len(v["features"]) for v in source if v["bucket"] == LONG)
    self.assertEqual(int(table.num_short), expected_short)
    self.assertEqual(int(table.num_long), expected_long)
    self.assertEqual(window.num_videos_read, len(source))
    short_rows = table.short_index[: table.num_short]
    np.testing.assert_array_equal(table.features[short_rows, 1], SHORT)
    np.testing.assert_array_equal(table.features[table.long_index[: table.num_long], 1], LONG)
    # No rest-bucket video enters the table.
    self.assertNotIn(REST, set(table.features[table.video >= 0, 1].tolist()))

  def test_sampled_pairs_are_short_long_and_deterministic(self):
    table = segment_table.stack_tables([reader_for(fake_source(), 1000, 30).read().table])
    sample = jax.jit(segment_table.sample_pairs, static_argnums=(2, 3))
    rows_s, rows_l = sample(table, jax.random.PRNGKey(7), 16, 8)
    self.assertEqual(rows_s.shape, (1, 16, 8))
    x_s = segment_table.gather_features(table, rows_s)
    x_l = segment_table.gather_features(table, rows_l)
    self.assertEqual(x_s.shape, (16, 8, 4))
    np.testing.assert_array_equal(x_s[..., 1], SHORT)
    np.testing.assert_array_equal(x_l[..., 1], LONG)
    again_s, again_l = sample(table, jax.random.PRNGKey(7), 16, 8)
    np.testing.assert_array_equal(rows_s, again_s)
    np.testing.assert_array_equal(rows_l, again_l)
    other_s, _ = sample(table, jax.random.PRNGKey(8), 16, 8)
    self.assertFalse(np.array_equal(rows_s, other_s))
    # Every short segment can be drawn.
    many_s, _ = sample(table, jax.random.PRNGKey(0), 512, 8)
    self.assertEqual(len(np.unique(np.asarray(many_s))), int(table.num_short[0]))

  def test_groups_of_a_shard_draw_from_that_shard_only(self):
    shards = [reader_for(fake_source(seed=s), 1000, 30).read().table for s in (0, 1)]
    for shard, table in enumerate(shards):
      table.features[:, 3] = shard  # Tag each shard's rows.
    table = segment_table.stack_tables(shards)
    rows_s, rows_l = segment_table.sample_pairs(table, jax.random.PRNGKey(0), 8, 4)
    x_s = np.asarray(segment_table.gather_features(table, rows_s))
    x_l = np.asarray(segment_table.gather_features(table, rows_l))
    np.testing.assert_array_equal(x_s[:4, :, 3], 0)
    np.testing.assert_array_equal(x_s[4:, :, 3], 1)
    np.testing.assert_array_equal(x_l[:4, :, 3], 0)
    np.testing.assert_array_equal(x_l[4:, :, 3], 1)
    np.testing.assert_array_equal(x_s[..., 1], SHORT)

  def test_windows_never_split_videos_and_restore_exactly(self):
    source = fake_source(num_videos=60)
    reader = reader_for(source, 20, 60)
    first = reader.read()
    second = reader.read()
    third = reader.read()
    for window in (first, second, third):
      used = window.table.video >= 0
      self.assertLessEqual(int(used.sum()), 20)
      # Each video's rows are complete: segment numbers 0..len-1.
      for vid in np.unique(window.table.features[used, 0]):
        segs = window.table.features[window.table.features[:, 0] == vid, 2]
        segs = segs[window.table.video[window.table.features[:, 0] == vid] >= 0]
        np.testing.assert_array_equal(np.sort(segs), np.arange(len(segs)))
        self.assertEqual(len(segs), len(source[int(vid)]["features"]))
    self.assertNotEqual(first.video_ids, second.video_ids)
    # A fresh reader restored to the second window's start reads it again, then the third.
    fresh = reader_for(source, 20, 60)
    fresh.restore(second.start_state)
    again = fresh.read()
    self.assertEqual(again.video_ids, second.video_ids)
    np.testing.assert_array_equal(again.table.features, second.table.features)
    self.assertEqual(fresh.read().video_ids, third.video_ids)

  def test_pair_groups_pair_within_their_video(self):
    source = []
    for v in range(6):  # Six videos split by a per-segment signal...
      for side, bucket in (("hi", SHORT), ("lo", LONG)):
        features = np.full((3, 4), v, np.float32)
        features[:, 1] = bucket
        source.append(
            {
                "video_id": f"v{v}#{side}",
                "bucket": bucket,
                "pair_group": f"v{v}",
                "features": features,
            }
        )
    for v in range(6, 10):  # ... and four ordinary long videos.
      features = np.full((2, 4), v, np.float32)
      features[:, 1] = LONG
      source.append({"video_id": f"v{v}", "bucket": LONG, "features": features})
    grouped = corpora.GroupedSource(source)
    self.assertLen(grouped, 10)
    # A window of 3 items never splits a pair group.
    reader = reader_for(grouped, 1000, 3)
    for _ in range(4):
      ids = reader.read().video_ids
      for vid in ids:
        if "#" in vid:
          self.assertIn(vid[:-2] + ("lo" if vid.endswith("hi") else "hi"), ids)
    table = segment_table.stack_tables([reader_for(grouped, 1000, 10).read().table])
    rows_s, rows_l = segment_table.sample_pairs(table, jax.random.PRNGKey(3), 64, 8)
    x_s = np.asarray(segment_table.gather_features(table, rows_s))
    x_l = np.asarray(segment_table.gather_features(table, rows_l))
    np.testing.assert_array_equal(x_s[..., 0], x_l[..., 0])  # Same video.
    np.testing.assert_array_equal(x_l[..., 1], LONG)

  def test_pair_within_domain_pairs_each_short_segment_with_its_domain(self):
    source = fake_source()
    for v in source:  # Domain from the video number, traceable in features[:, 0].
      v["domain"] = "ab"[int(v["features"][0, 0]) % 2]
    window = reader_for(source, 1000, len(source), input_config(pair_within="domain")).read()
    table = segment_table.stack_tables([window.table])
    rows_s, rows_l = segment_table.sample_pairs(table, jax.random.PRNGKey(3), 64, 8)
    video_s = np.asarray(table.features[0][np.asarray(rows_s[0]), 0]).astype(int)
    video_l = np.asarray(table.features[0][np.asarray(rows_l[0]), 0]).astype(int)
    np.testing.assert_array_equal(video_s % 2, video_l % 2)
    self.assertGreater(len(set(video_l.ravel().tolist())), 2)  # Not within one video.
    # Without it, pairs cross domains.
    window = reader_for(source, 1000, len(source)).read()
    table = segment_table.stack_tables([window.table])
    rows_s, rows_l = segment_table.sample_pairs(table, jax.random.PRNGKey(3), 64, 8)
    video_s = np.asarray(table.features[0][np.asarray(rows_s[0]), 0]).astype(int)
    video_l = np.asarray(table.features[0][np.asarray(rows_l[0]), 0]).astype(int)
    self.assertTrue(np.any(video_s % 2 != video_l % 2))

  def test_bag_groups_draw_a_groups_short_segments_from_one_video(self):
    source = fake_source()  # features[:, 0] is the video number.
    table = segment_table.stack_tables([reader_for(source, 1000, len(source)).read().table])
    rows_s, rows_l = segment_table.sample_pairs(table, jax.random.PRNGKey(3), 64, 8, bags=True)
    video_s = np.asarray(table.features[0][np.asarray(rows_s[0]), 0]).astype(int)
    video_l = np.asarray(table.features[0][np.asarray(rows_l[0]), 0]).astype(int)
    np.testing.assert_array_equal(video_s, video_s[:, :1].repeat(8, axis=1))
    self.assertGreater(len(set(video_s[:, 0].tolist())), 2)  # Bags of many videos.
    # Several segments of a bag, and long partners from several videos.
    self.assertTrue(any(len(set(np.asarray(rows_s[0])[g].tolist())) > 1 for g in range(64)))
    self.assertGreater(len(set(video_l.ravel().tolist())), 2)
    buckets = np.asarray(table.features[0][np.asarray(rows_s[0]), 1])
    np.testing.assert_array_equal(buckets, SHORT)
    # Without bags, a group's short segments come from several videos.
    rows_s, _ = segment_table.sample_pairs(table, jax.random.PRNGKey(3), 64, 8)
    video_s = np.asarray(table.features[0][np.asarray(rows_s[0]), 0]).astype(int)
    self.assertTrue(np.any(video_s != video_s[:, :1]))

  def test_long_videos_are_subsampled_evenly(self):
    source = [
        {
            "video_id": "long",
            "bucket": LONG,
            "features": np.arange(400, dtype=np.float32).reshape(100, 4),
        }
    ]
    window = reader_for(source, 64, 1, input_config(max_segments_per_video=10)).read()
    self.assertEqual(int(window.table.num_long), 10)
    rows = window.table.features[:10, 0] / 4
    np.testing.assert_array_equal(rows, np.linspace(0, 99, 10).round())

  def test_video_larger_than_table_is_an_error(self):
    source = [{"video_id": "huge", "bucket": SHORT, "features": np.zeros((50, 4), np.float32)}]
    with self.assertRaisesRegex(ValueError, "huge.*table_segments"):
      reader_for(source, 10, 1).read()

  def test_wrong_feature_dim_is_an_error(self):
    source = [{"video_id": "narrow", "bucket": SHORT, "features": np.zeros((2, 3), np.float32)}]
    with self.assertRaisesRegex(ValueError, "narrow"):
      reader_for(source, 10, 1).read()


if __name__ == "__main__":
  absltest.main()


class TableFeederTest(absltest.TestCase):
  """Refills write the new windows into the resident device table in place."""

  def _feeder(self, num_shards):
    from configs import tiny  # pylint: disable=g-import-not-at-top
    from hl_jax.core import parallel  # pylint: disable=g-import-not-at-top

    config = tiny.get_config()
    config.input.table_segments = 2048  # > the 1024-row minimum copy.
    config.input.window_videos = 12
    config.input.refill_every_steps = 1
    config.input.num_shards = num_shards
    data = corpora.Corpus("fake", fake_source(num_videos=300), 4, [])
    mesh = parallel.make_mesh(jax.devices()[:4], num_shards)
    return input_pipeline.TableFeeder(config, data, mesh)

  def test_refills_match_fresh_tables_and_reuse_the_buffer(self):
    for num_shards in (1, 2):
      feeder = self._feeder(num_shards)
      table = feeder.current_table()
      for _ in range(3):
        old_features = table.features
        table = feeder.refill()
        self.assertTrue(old_features.is_deleted())  # Donated, written in place.
        # A feeder restored at this window builds it fresh (zeros past the rows).
        fresh = self._feeder(num_shards)
        fresh.restore(feeder.input_state())
        fresh_table = fresh.current_table()
        for name in (
            "video",
            "short_index",
            "long_index",
            "num_short",
            "num_long",
            "short_partner_start",
            "short_partner_count",
            "short_video_start",
            "short_video_count",
        ):
          np.testing.assert_array_equal(
              np.asarray(getattr(table, name)), np.asarray(getattr(fresh_table, name))
          )
        # Filled rows hold their videos' segments (feature 0 is the video number).
        # A copy: a live numpy view of the table would stop the next donation.
        features, fresh_features = np.array(table.features), np.array(fresh_table.features)
        for shard, window in enumerate(feeder._windows):  # pylint: disable=protected-access
          rows = window.num_rows
          self.assertGreater(rows, 0)
          self.assertIsNone(window.table.features)  # Not kept on the host.
          owners = np.asarray(table.video[shard])[:rows]
          self.assertTrue(np.all(owners >= 0))
          np.testing.assert_array_equal(
              features[shard, :rows, 0], [int(window.video_ids[o][1:]) for o in owners]
          )
          np.testing.assert_array_equal(features[shard, :rows], fresh_features[shard, :rows])
        key = jax.random.PRNGKey(7)
        for a, b in zip(
            segment_table.sample_pairs(table, key, 8, 4),
            segment_table.sample_pairs(fresh_table, key, 8, 4),
        ):
          np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
          np.testing.assert_array_equal(
              np.asarray(segment_table.gather_features(table, a)),
              np.asarray(segment_table.gather_features(fresh_table, b)),
          )
