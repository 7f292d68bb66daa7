"""`rigbench doctor`: read a rig, probe what can hang in child processes under timeouts,
and turn what is wrong into findings (what, evidence, why it matters, how to fix it).

    from rigbench.doctor.run import parse_checks, run_doctor
    report = run_doctor(select_backend(path), parse_checks(None))

Checks are pure functions of the rig, its health facts and the probes' results
(`doctor.inventory`, `doctor.links`, `doctor.platform`, `doctor.gpu_health`).
"""
