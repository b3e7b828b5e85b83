"""From a docid to the frames the model sees: finding its file in folders and tar shards, the content identity
that keys every cache, the reference's frame sampling, the frame cache and the sampling settings.

- `resolver`: docid -> file (pattern, MultiVENT layout, video map), traversal-safe.
- `index`: the cached index of folders and `.tar` shards (members read in place).
- `identity`: a video's content identity (size, times and a hash of its head), re-checked before reuse.
- `config`: `SamplingConfig`, the reference's fps, frame and pixel bounds.
- `frames`: PyAV decoding with the reference's sampling and resizing; typed `VideoError`s.
- `frame_cache`: sampled frames on disk, checksummed, written by `rankvideo sample`.
"""
