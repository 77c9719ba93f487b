"""Driving trials: the run's work list, one trial's processes and record, shards, resume, replay."""
