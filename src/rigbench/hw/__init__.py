"""The only door to hardware: NVML, sysfs, procfs, the kernel log, or a simulated rig."""
