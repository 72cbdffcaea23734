"""The statistics pass: exact per-channel moments of the training split, and the stats file."""
