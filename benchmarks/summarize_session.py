"""Summarise a device_session.sh folder as a markdown table (rigbench vs bare loops)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(doc: dict) -> list[str]:
    out = []
    for r in doc["results"]:
        p = r["params"]
        what = " ".join(str(p[k]) for k in ("dtype", "direction", "host_memory", "op") if k in p)
        shape = f"{p['m']}x{p['n']}x{p['k']}" if "m" in p else ""
        if "best_m" in p:
            shape = f"best {p['best_m']}x{p['best_n']}x{p['best_k']}"
        size = f"{p['bytes'] / 2**20:g} MiB" if "bytes" in p else ""
        value = "—" if r["value"] is None else f"{r['value']:.4g}"
        ref = r["expected"] or r["peak"]
        ratio = f"{r['ratio'] * 100:.0f}%" if r["ratio"] else ""
        sp = r["spread"]
        spread = f"{sp['p10']:.4g}–{sp['p90']:.4g}" if sp else ""
        out.append(
            f"| {r['benchmark']} | {r['metric']} | {','.join(r['devices'])} | {what} {shape} {size} "
            f"| {value} {r['unit']} | {spread} | {ref or ''} | {ratio} | {r['status']} |"
        )
    return out


def main(folder: Path) -> None:
    ref = json.loads((folder / "reference.json").read_text() or "{}")
    for name in ("quick", "full"):
        path = folder / f"{name}.json"
        if not path.exists() or not path.read_text().strip():
            continue
        doc = json.loads(path.read_text())
        timing = (folder / f"{name}.time").read_text().strip()
        print(f"\n### bench --{name} ({timing}, run {doc['run']['status']})\n")
        print(
            "| bench | metric | devices | params | median | p10–p90 | expected/peak | ratio | status |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows(doc)))
        for r in doc["results"]:
            p = r["params"]
            if r["benchmark"] == "gemm" and p.get("dtype") == "bf16" and r["metric"] == "matmul":
                bare = ref.get("gemm_bf16_8192_tflops")
                if bare:
                    print(
                        f"\ngemm bf16 8192³: rigbench {r['value']:.1f} vs bare loop {bare:.1f} TFLOP/s"
                        f" ({(r['value'] / bare - 1) * 100:+.1f} %)"
                    )
            if r["benchmark"] == "memory" and p.get("bytes") == 1 << 30:
                bare = ref.get("copy_1gib_gbs")
                if bare:
                    print(
                        f"\nmemory copy 1 GiB: rigbench {r['value']:.0f} vs bare loop {bare:.0f} GB/s"
                        f" ({(r['value'] / bare - 1) * 100:+.1f} %)"
                    )
    print("\nreference loops:", json.dumps(ref))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
