"""Small model definitions the workloads run (random weights; nothing is downloaded)."""
