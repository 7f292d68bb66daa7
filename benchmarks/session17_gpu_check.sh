#!/usr/bin/env bash
# Stop 17 (about 2 minutes on one GPU): bench's tables written to a file (whole rows since
# a30d11d), and the host facts behind a pinned h2d copy below its healthy range: NUMA nodes,
# the GPU's node, where the process may run, and the host link measured from each node
# (numactl, where the host has it). Changes no GPU setting.
# Usage: benchmarks/session17_gpu_check.sh OUTDIR
. "$(dirname "$0")/gpu_check_env.sh" "$@"
w=$(mktemp -d)
{
  nvidia-smi --query-gpu=name,power.limit,driver_version,pci.bus_id --format=csv,noheader
  nvidia-smi topo -m
  lscpu | grep -iE "model name|socket|numa|^cpu\(s\)"
  bus=$(nvidia-smi --query-gpu=pci.bus_id --format=csv,noheader | head -1 | tr 'A-F' 'a-f' | sed 's/^0000//')
  echo "gpu numa_node: $(cat /sys/bus/pci/devices/0000${bus#0000}/numa_node 2>/dev/null || echo ?)"
  echo "gpu link: $(cat /sys/bus/pci/devices/0000${bus#0000}/current_link_speed 2>/dev/null) x$(cat /sys/bus/pci/devices/0000${bus#0000}/current_link_width 2>/dev/null)"
  grep -E "Cpus_allowed_list|Mems_allowed_list" /proc/self/status
  command -v numactl && numactl -H
  grep -E "MemTotal|MemAvailable|Hugepagesize|AnonHugePages" /proc/meminfo
  cat /sys/kernel/mm/transparent_hugepage/enabled
  dmesg 2>/dev/null | grep -iE "iommu|dmar|AMD-Vi" | head -5
  cat /proc/cmdline
  uptime
} > "$out/host.txt" 2>&1

/usr/bin/time -f "%e s wall" timeout 300 python3 -m rigbench bench --quick --db "$w/b.db" \
  > "$out/bench.out" 2> "$out/bench.err"
echo "bench exit $?" >> "$out/host.txt"
for i in 1 2 3; do
  timeout 120 python3 -m rigbench bench --only hostlink --json --db "$w/h.db" 2>/dev/null \
    | python3 -c "import json,sys; d=json.load(sys.stdin); [print('hostlink', r['metric'], r['params'].get('host_memory', ''), round(r['value'], 1), (r.get('judgement') or {}).get('verdict')) for r in d['results'] if r.get('value')]" \
    >> "$out/hostlink.txt" 2>&1
done
if command -v numactl >/dev/null; then
  nodes=$(numactl -H | awk '/^available/{print $2}')
  for n in $(seq 0 $((nodes - 1))); do
    echo "numactl node $n" >> "$out/hostlink.txt"
    timeout 120 numactl --cpunodebind="$n" --membind="$n" python3 -m rigbench bench --only hostlink --json --db "$w/n$n.db" 2>/dev/null \
      | python3 -c "import json,sys; d=json.load(sys.stdin); [print('hostlink', r['metric'], r['params'].get('host_memory', ''), round(r['value'], 1)) for r in d['results'] if r.get('value')]" \
      >> "$out/hostlink.txt" 2>&1
  done
fi
awk '{ if (length($0) > m) m = length($0) } END { print "bench.out widest line:", m }' "$out/bench.out" >> "$out/host.txt"
