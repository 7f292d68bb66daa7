"""`rigbench burnin`: every chosen GPU under sustained and stepped load, results checked
continuously, telemetry sampled throughout, and a verdict per GPU and for the rig."""
