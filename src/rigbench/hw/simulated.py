"""The simulated backend: a rig described in a TOML file, healthy or broken.

Users replay a rig state someone sent them; tests run without a GPU. The file format is
documented in examples/simulated/README.md and in the header of
examples/simulated/minerva-4x3090.toml. In short:

    [rig]       name (required), description
    [system]    SystemInfo fields (ram_gib instead of ram_bytes), unavailable = {field = why}
    [[gpu]]     one entry per GPU model/slot; count repeats it; indices follow file order
    [pairs]     defaults for every GPU pair
    [[pair]]    gpus = [a, b] plus the pair fields that differ from the defaults
    [gpu.health], [health], [kernel], [env]    rigbench doctor's facts (hw.simulated_health)
    [telemetry]  the trace monitor and burnin play (hw.sim_telemetry)

The whole file is read and checked in `from_file`; every problem becomes one
`SimulationFileError` line: `<file>: <key path>: <what is wrong>`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rigbench.errors import HardwareError, SimulationFileError
from rigbench.hw.health import HealthInfo
from rigbench.hw.model import (
    POWER_LIMIT_NEEDS_ROOT,
    GpuInfo,
    PairLink,
    PcieLink,
    Rig,
    SystemInfo,
)
from rigbench.hw.sim_telemetry import SimulatedTelemetry, TelemetrySection, check_trace
from rigbench.hw.simulated_health import (
    GpuHealthSection,
    HealthSection,
    HealthSpecError,
    KernelSection,
    build_health,
)
from rigbench.tomlfile import FileSchema, key_path, read_toml, validation_failure

MAX_GPUS = 64
# Auto-generated UUIDs are uuid5(this, "<rig name>/<index>"): the same rig name gives the
# same UUIDs, so a broken and a fixed state of one machine describe the same GPUs.
_UUID_NAMESPACE = uuid.UUID("6f1d7c52-3a0e-5b8e-9c41-2d3b8f0a9e17")
_BUS_ID_RE = re.compile(
    r"^(?:(?P<domain>[0-9A-Fa-f]{1,8}):)?(?P<bus>[0-9A-Fa-f]{2}):"
    r"(?P<dev>[0-9A-Fa-f]{2})\.(?P<fn>[0-7])$"
)
_UUID_RE = re.compile(r"^GPU-[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$")
_CC_RE = re.compile(r"^\d{1,2}\.\d$")


# --- value checks that give the message we want (not pydantic's wording) -------------------


def _one_of(*allowed: int) -> Callable[[int], int]:
    def check(v: int) -> int:
        if v not in allowed:
            raise ValueError("must be one of " + ", ".join(str(a) for a in allowed))
        return v

    return check


def _between(lo: int, hi: int) -> Callable[[int], int]:
    def check(v: int) -> int:
        if not lo <= v <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return v

    return check


def _positive(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    if v <= 0:
        raise ValueError("must be greater than 0")
    return v


def _not_negative(v: int) -> int:
    if v < 0:
        raise ValueError("must be 0 or more")
    return v


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty")
    return v


PcieGen = Annotated[int, AfterValidator(_between(1, 6))]
PcieWidth = Annotated[int, AfterValidator(_one_of(1, 2, 4, 8, 16))]
Positive = Annotated[float, AfterValidator(_positive)]
PositiveInt = Annotated[int, AfterValidator(_between(1, 1_000_000_000))]
Count = Annotated[int, AfterValidator(_not_negative)]
Text = Annotated[str, AfterValidator(_not_blank)]
NvlinkVersion = Annotated[int, AfterValidator(_between(1, 5))]
NvlinkLinks = Annotated[int, AfterValidator(_between(0, 18))]
PairPath = Literal["PIX", "PXB", "PHB", "NODE", "SYS"]
P2P = Literal["ok", "unsupported", "disabled", "unknown"]
# corrupt_collectives: copies arrive intact, collectives over the pair return wrong data.
Fault = Literal["hang", "corrupt", "crash", "none", "corrupt_collectives"]

_GPU_FIELDS = [
    f.name for f in dataclasses.fields(GpuInfo) if f.name not in ("index", "unavailable")
]
_SYSTEM_FIELDS = [f.name for f in dataclasses.fields(SystemInfo) if f.name != "unavailable"]


# --- the file, as pydantic models ----------------------------------------------------------


class _Strict(BaseModel):
    # strict: TOML values already have types; "16" is not 16 and true is not 1.
    model_config = ConfigDict(extra="forbid", strict=True)


class _RigSection(_Strict):
    name: Text
    description: str | None = None


class _SystemSection(_Strict):
    hostname: str | None = None
    os: str | None = None
    kernel: str | None = None
    cpu_model: str | None = None
    cpu_cores: PositiveInt | None = None  # logical CPUs, as os.cpu_count() counts them
    cpu_sockets: PositiveInt | None = None
    ram_gib: Positive | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    torch_version: str | None = None
    torch_cuda_version: str | None = None
    nccl_version: str | None = None
    python_version: str | None = None
    # whether `burnin --sweep-power` may set limits: "needs_root" replays a run as a normal
    # user, "refused" a VM whose driver refuses even root (NVML: Insufficient Permissions)
    power_limit_set: Literal["allowed", "needs_root", "refused"] = "allowed"
    unavailable: dict[str, str] = Field(default_factory=dict)


class _PcieSection(_Strict):
    # gen_current/width_current: the reading at rest unless gen_loaded/width_loaded are
    # given too; a file that gives only the current reading means it was read under load.
    gen_current: PcieGen | None = None
    width_current: PcieWidth | None = None
    gen_loaded: PcieGen | None = None
    width_loaded: PcieWidth | None = None
    gen_max: PcieGen | None = None
    width_max: PcieWidth | None = None
    gpu_gen_max: PcieGen | None = None
    gpu_width_max: PcieWidth | None = None
    replay_count: Count | None = None

    @model_validator(mode="after")
    def _ordered(self) -> _PcieSection:
        # current <= max (GPU and slot together) <= what the GPU alone can do
        for low, high in (
            ("gen_current", "gen_max"),
            ("gen_max", "gpu_gen_max"),
            ("gen_current", "gpu_gen_max"),
            ("width_current", "width_max"),
            ("width_max", "gpu_width_max"),
            ("width_current", "gpu_width_max"),
            ("gen_loaded", "gen_max"),
            ("width_loaded", "width_max"),
        ):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} ({a}) cannot be above {high} ({b})")
        return self


class _ClocksSection(_Strict):
    sm_mhz: PositiveInt | None = None
    mem_mhz: PositiveInt | None = None
    sm_max_mhz: PositiveInt | None = None
    mem_max_mhz: PositiveInt | None = None


class _GpuSection(_Strict):
    name: Text
    count: Annotated[int, AfterValidator(_between(1, MAX_GPUS))] = 1
    memory_gib: Positive | None = None
    memory_mib: PositiveInt | None = None
    compute_capability: str | None = None
    pcie: _PcieSection = Field(default_factory=_PcieSection)
    power_limit_w: Positive | None = None
    power_default_limit_w: Positive | None = None
    uuid: str | None = None
    bus_id: str | None = None
    clocks: _ClocksSection = Field(default_factory=_ClocksSection)
    numa_node: Count | None = None
    nvlink_version: NvlinkVersion | None = None
    nvlink_active_links: NvlinkLinks | None = None
    unavailable: dict[str, str] = Field(default_factory=dict)
    health: GpuHealthSection | None = None  # [gpu.health], for rigbench doctor

    @field_validator("compute_capability")
    @classmethod
    def _cc(cls, v: str | None) -> str | None:
        if v is not None and not _CC_RE.match(v):
            raise ValueError('must look like "8.6" (major.minor, as a string)')
        return v

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, v: str | None) -> str | None:
        if v is not None and not _UUID_RE.match(v):
            raise ValueError('must look like "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"')
        return v

    @field_validator("bus_id")
    @classmethod
    def _bus_id(cls, v: str | None) -> str | None:
        if v is None:
            return v
        m = _BUS_ID_RE.match(v)
        if not m:
            raise ValueError('must look like "00000000:01:00.0" (domain:bus:device.function)')
        domain = int(m["domain"] or "0", 16)
        return f"{domain:08X}:{m['bus'].upper()}:{m['dev'].upper()}.{m['fn']}"

    @model_validator(mode="after")
    def _consistent(self) -> _GpuSection:
        if self.memory_gib is not None and self.memory_mib is not None:
            raise ValueError("give memory_gib or memory_mib, not both")
        if self.count > 1 and (self.uuid is not None or self.bus_id is not None):
            key = "uuid" if self.uuid is not None else "bus_id"
            raise ValueError(f"{key} cannot be given with count > 1 (each GPU needs its own)")
        return self


class _PairFields(_Strict):
    nvlink_count: NvlinkLinks | None = None
    nvlink_version: NvlinkVersion | None = None
    via_nvswitch: bool | None = None
    pcie_path: PairPath | None = None
    p2p: P2P | None = None
    p2p_detail: str | None = None
    fault: Fault | None = None
    # what a GPU-to-GPU copy measured on the real rig, GB/s one way (a slow pair shows here)
    p2p_gbps: Positive | None = None


class _PairDefaults(_PairFields):
    pass


class _PairEntry(_PairFields):
    gpus: list[int]

    @field_validator("gpus")
    @classmethod
    def _two(cls, v: list[int]) -> list[int]:
        if len(v) != 2:
            raise ValueError(f"must name exactly two GPU indices, like [0, 1] (got {len(v)})")
        if v[0] == v[1]:
            raise ValueError(f"names GPU {v[0]} twice")
        return v


class _VramFault(_Strict):
    """A bad VRAM range `bench --only vram` finds on the GPU's CPU stand-in."""

    gpu: int
    offset_kib: Annotated[int, Field(ge=0)]
    length_kib: Annotated[int, Field(ge=1)] = 1
    bit: Annotated[int, Field(ge=0, le=31)] = 0


class _RigFile(_Strict):
    rig: _RigSection
    system: _SystemSection = Field(default_factory=_SystemSection)
    gpu: list[_GpuSection] = Field(default_factory=list)
    pairs: _PairDefaults = Field(default_factory=_PairDefaults)
    pair: list[_PairEntry] = Field(default_factory=list)
    # rigbench doctor's facts (see hw.simulated_health)
    health: HealthSection | None = None
    kernel: KernelSection | None = None
    env: dict[str, str] | None = None
    # the telemetry trace monitor and burnin play (see hw.sim_telemetry)
    telemetry: TelemetrySection | None = None
    vram_fault: list[_VramFault] = Field(default_factory=list)


# --- turning pydantic's errors into one line --------------------------------------------------


_SCHEMA = FileSchema(
    root=_RigFile,
    kind="rig file",
    array_tables=frozenset({"gpu", "pair", "vram_fault"}),
    tables=frozenset({"rig", "system", "pairs", "health", "kernel", "env"}),
)


def _fail(path: Path, where: str | None, what: str) -> SimulationFileError:
    """`<file>: <key path>: <what is wrong>`, or `<file>: <what>` for the file as a whole."""
    text = f"{path}: {where}: {what}" if where else f"{path}: {what}"
    return SimulationFileError(re.sub(r"[\r\n]+", " ", text))


def _check_unavailable(
    path: Path, loc: tuple[int | str, ...], value: dict[str, str], fields: list[str], what: str
) -> None:
    for key in value:
        if key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1)
            also = f"; did you mean {hint[0]}?" if hint else f" (one of: {', '.join(fields)})"
            raise _fail(path, key_path((*loc, key)), f"not a {what} field{also}")


# --- reading and building ---------------------------------------------------------------------


def _gib_to_bytes(gib: float) -> int:
    return int(round(gib * 2**30))


def _gpu_uuid(rig_name: str, index: int) -> str:
    return f"GPU-{uuid.uuid5(_UUID_NAMESPACE, f'{rig_name}/{index}')}"


def _gpu_range(n: int) -> str:
    if n == 0:
        return "the file has no GPUs"
    if n == 1:
        return "the file has only GPU 0"
    return f"the file has GPUs 0-{n - 1}"


def _pick(entry: _PairEntry | None, defaults: _PairDefaults, name: str, fallback: Any) -> Any:
    """A pair field: the pair's own value, else the [pairs] default, else the fallback."""
    for source in (entry, defaults):
        value = getattr(source, name) if source is not None else None
        if value is not None:
            return value
    return fallback


def _build_pairs(
    path: Path, spec: _RigFile, n_gpus: int
) -> tuple[list[PairLink], dict[str, str], dict[str, float]]:
    """One PairLink for every i < j (listed or defaulted), the faults and the measured
    copy rates keyed "a-b"."""
    listed: dict[tuple[int, int], tuple[int, _PairEntry]] = {}
    for k, entry in enumerate(spec.pair):
        for g in entry.gpus:
            if not 0 <= g < n_gpus:
                raise _fail(
                    path, f"pair[{k}].gpus", f"GPU {g} does not exist ({_gpu_range(n_gpus)})"
                )
        lo, hi = min(entry.gpus), max(entry.gpus)
        if (lo, hi) in listed:
            first = listed[(lo, hi)][0]
            raise _fail(
                path, f"pair[{k}].gpus", f"pair {lo}-{hi} is already listed as pair[{first}]"
            )
        listed[(lo, hi)] = (k, entry)

    defaults = spec.pairs
    pairs: list[PairLink] = []
    faults: dict[str, str] = {}
    measured: dict[str, float] = {}
    for a in range(n_gpus):
        for b in range(a + 1, n_gpus):
            k, found = listed.get((a, b), (-1, None))
            link = PairLink(
                a=a,
                b=b,
                nvlink_count=_pick(found, defaults, "nvlink_count", 0),
                nvlink_version=_pick(found, defaults, "nvlink_version", None),
                via_nvswitch=_pick(found, defaults, "via_nvswitch", False),
                pcie_path=_pick(found, defaults, "pcie_path", None),
                p2p=_pick(found, defaults, "p2p", "unknown"),
                p2p_detail=_pick(found, defaults, "p2p_detail", None),
            )
            if link.via_nvswitch and not link.nvlink_count:
                own = found is not None and found.via_nvswitch is not None
                where = f"pair[{k}].via_nvswitch" if own else "pairs.via_nvswitch"
                what = f"true needs nvlink_count > 0 (pair {a}-{b} has none)"
                raise _fail(path, where, what)
            pairs.append(link)
            fault = _pick(found, defaults, "fault", "none")
            if fault != "none":
                faults[f"{a}-{b}"] = fault
            gbps = _pick(found, defaults, "p2p_gbps", None)
            if gbps is not None:
                measured[f"{a}-{b}"] = gbps
    return pairs, faults, measured


def _build(path: Path, spec: _RigFile) -> Rig:
    # GPUs: expand count, give indices in file order, fill in uuid and bus_id.
    entries: list[tuple[int, _GpuSection]] = []  # (entry number in the file, entry)
    for n, section in enumerate(spec.gpu):
        entries.extend((n, section) for _ in range(section.count))
    if len(entries) > MAX_GPUS:
        raise _fail(path, "gpu", f"defines {len(entries)} GPUs; at most {MAX_GPUS} are supported")

    _check_unavailable(
        path, ("system", "unavailable"), spec.system.unavailable, _SYSTEM_FIELDS, "system"
    )
    for n, section in enumerate(spec.gpu):
        _check_unavailable(path, ("gpu", n, "unavailable"), section.unavailable, _GPU_FIELDS, "GPU")

    seen_uuid: dict[str, int] = {}
    seen_bus: dict[str, int] = {}
    for index, (n, section) in enumerate(entries):
        for key, seen in (("uuid", seen_uuid), ("bus_id", seen_bus)):
            value = getattr(section, key)
            if value is None:
                continue
            if value in seen:
                raise _fail(
                    path, f"gpu[{n}].{key}", f"{value} is already used by GPU {seen[value]}"
                )
            seen[value] = index

    used_buses = {int(b.split(":")[1], 16) for b in seen_bus if b.startswith("00000000:")}
    free_buses = (b for b in range(1, 256) if b not in used_buses)

    gpus: list[GpuInfo] = []
    for index, (_, s) in enumerate(entries):
        if s.memory_gib is not None:
            memory: int | None = _gib_to_bytes(s.memory_gib)
        elif s.memory_mib is not None:
            memory = s.memory_mib * 2**20
        else:
            memory = None
        gpus.append(
            GpuInfo(
                index=index,
                name=s.name,
                uuid=s.uuid or _gpu_uuid(spec.rig.name, index),
                bus_id=s.bus_id or f"00000000:{next(free_buses):02X}:00.0",
                memory_total_bytes=memory,
                compute_capability=s.compute_capability,
                pcie=PcieLink(**s.pcie.model_dump()),
                power_limit_w=s.power_limit_w,
                power_default_limit_w=s.power_default_limit_w,
                sm_clock_mhz=s.clocks.sm_mhz,
                mem_clock_mhz=s.clocks.mem_mhz,
                sm_clock_max_mhz=s.clocks.sm_max_mhz,
                mem_clock_max_mhz=s.clocks.mem_max_mhz,
                numa_node=s.numa_node,
                nvlink_version=s.nvlink_version,
                nvlink_active_links=s.nvlink_active_links,
                unavailable=dict(s.unavailable),
            )
        )

    pairs, faults, measured = _build_pairs(path, spec, len(gpus))
    sys_spec = spec.system
    system = SystemInfo(
        **sys_spec.model_dump(exclude={"ram_gib", "unavailable", "power_limit_set"}),
        ram_bytes=_gib_to_bytes(sys_spec.ram_gib) if sys_spec.ram_gib is not None else None,
        unavailable=dict(sys_spec.unavailable),
    )
    if spec.health is not None:  # one place in the file for the facts doctor judges too
        system.numa_nodes = spec.health.numa_nodes
        system.process_numa_nodes = spec.health.process_numa_nodes
    return Rig(
        source=f"simulated:{path.name}",
        gpus=gpus,
        pairs=pairs,
        system=system,
        p2p_faults=faults,
        p2p_measured_gbps=measured,
        vram_faults={
            f.gpu: (f.offset_kib * 1024, f.length_kib * 1024, f.bit) for f in spec.vram_fault
        },
    )


def _build_health(path: Path, spec: _RigFile, rig: Rig) -> HealthInfo:
    """The [gpu.health], [health], [kernel] and [env] sections, per GPU index."""
    per_gpu = [section.health for section in spec.gpu for _ in range(section.count)]
    try:
        return build_health(rig, per_gpu, spec.health, spec.kernel, spec.env)
    except HealthSpecError as exc:
        raise _fail(path, exc.where, exc.what) from None


class SimulatedBackend:
    """Plays the rig a TOML file describes. The file is read and checked once, here."""

    kind = "simulated"

    def __init__(self, path: Path, spec: _RigFile, snapshot: Rig) -> None:
        self.path = path
        self.name = spec.rig.name
        self.description = spec.rig.description
        self._snapshot = snapshot
        self._health = _build_health(path, spec, snapshot)
        self._trace = spec.telemetry
        self._power_limit_set = spec.system.power_limit_set

    @classmethod
    def from_file(cls, path: Path) -> SimulatedBackend:
        path = Path(path)
        data = read_toml(path, lambda where, what: _fail(path, where, what))
        try:
            spec = _RigFile.model_validate(data)
        except ValidationError as exc:
            raise validation_failure(
                exc, _SCHEMA, lambda where, what: _fail(path, where, what)
            ) from None
        rig = _build(path, spec)
        if spec.telemetry is not None:
            bad = check_trace(spec.telemetry, len(rig.gpus))
            if bad is not None:
                raise _fail(path, *bad)
        for k, fault in enumerate(spec.vram_fault):
            if not 0 <= fault.gpu < len(rig.gpus):
                raise _fail(path, f"vram_fault[{k}].gpu", f"GPU {fault.gpu} does not exist")
        return cls(path, spec, rig)

    def rig(self) -> Rig:
        # A fresh copy each time: callers may change what they are given.
        return copy.deepcopy(self._snapshot)

    def power_limit_settable(self) -> str | None:
        # a simulated rig's limit lives in memory: nothing real changes
        return POWER_LIMIT_NEEDS_ROOT if self._power_limit_set == "needs_root" else None

    def set_power_limit(self, gpu: int, watts: float) -> None:
        """Change the simulated GPU's limit for this process (its baseline draw follows it)."""
        if self._power_limit_set != "allowed":
            raise HardwareError(
                f"GPU {gpu}: cannot set the power limit to {watts:g} W: Insufficient Permissions"
            )
        for g in self._snapshot.gpus:
            if g.index == gpu:
                g.power_limit_w = float(watts)

    def health(self, rig: Rig) -> HealthInfo:
        """What the file says for `rigbench doctor`; a fact it leaves out is None."""
        return copy.deepcopy(self._health)

    def telemetry(self, gpus: list[int] | None = None) -> SimulatedTelemetry:
        """The file's [telemetry] trace played for `gpus` (default: all); without one, every
        GPU reads a steady, healthy state."""
        return SimulatedTelemetry(self._snapshot, self._trace, gpus)


__all__ = ["SimulatedBackend"]
