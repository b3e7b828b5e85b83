"""Scoring a run's pairs at scale: plan them by video, decode ahead of the model, keep every score in a
crash-safe store, split the work into shards (SLURM arrays, one worker per device) and record each job.

- `request`: a rerank's prepared inputs (the run, the query texts, the memoised video lookup).
- `plan`: `Pairs`, the pairs grouped by video and triaged against the store; `score`: the decode pool,
  batching, the OOM split; `merge`: the run answered from the store; `result`: counts, outcomes, timings.
- `store`: the append-only score store and its lock; `shards`: which shard owns a video.
- `manifest`: what each job ran with and how it ended. (One worker per device is `jobs/devices.py`: a job.)
"""
