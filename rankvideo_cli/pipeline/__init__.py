"""Scoring a run's pairs at scale: plan them by video, decode ahead of the model, keep every score in a
crash-safe store, split the work into shards (SLURM arrays, one worker per device) and record each job.

- `request`: `RerankRequest` and the prepared inputs the commands, workers and PyTerrier share.
- `score`: pairs by video, triage against the store, the decode pool, batching, the OOM split, merging.
- `store`: the append-only score store and its lock; `shards`: which shard owns a video.
- `devices`: one worker process per device of a node; `manifest`: what each job ran with and how it ended.
"""
