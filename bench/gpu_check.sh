#!/usr/bin/env bash
# gpu_check.sh - compare `quantbench gpu --json` with nvidia-smi, field by field.
#
# usage: bench/gpu_check.sh [PATH/TO/quantbench]   (default: ./build/quantbench)
#
# Runs quantbench first and nvidia-smi right after, then prints one row per
# field: the nvidia-smi value, ours (converted to nvidia-smi's unit), and a
# verdict. Static fields (name, UUID, driver, totals, max clocks, power limit)
# must match exactly (memory total to 1 MiB); live fields (used memory, clocks,
# utilization, temperature, power draw) may move between the two calls and get
# a tolerance. "N/A" on both sides counts as a match; on GB10 nvidia-smi has no
# memory numbers and ours come from /proc/meminfo (source "system"), reported
# as expected. Exit 0 when every row matches, 1 otherwise, 2 on a setup error.
set -euo pipefail
QB=${1:-./build/quantbench}
if [[ ! -x $QB ]]; then
    echo "gpu_check: no quantbench binary at '$QB' (build first, or pass its path)" >&2
    exit 2
fi
command -v nvidia-smi >/dev/null || { echo "gpu_check: nvidia-smi not found" >&2; exit 2; }
exec python3 - "$QB" <<'PY'
import json, subprocess, sys

qb = sys.argv[1]
FIELDS = ("name,uuid,driver_version,memory.used,memory.total,clocks.gr,clocks.sm,clocks.mem,"
          "clocks.max.gr,clocks.max.sm,clocks.max.mem,utilization.gpu,utilization.memory,"
          "temperature.gpu,power.draw,power.limit").split(",")

ours = json.loads(subprocess.run([qb, "gpu", "--json"], check=True, capture_output=True,
                                 text=True).stdout)["gpus"]
smi_out = subprocess.run(["nvidia-smi", "--query-gpu=" + ",".join(FIELDS),
                          "--format=csv,noheader,nounits"], check=True, capture_output=True,
                         text=True).stdout
smi = [[c.strip() for c in line.split(",")] for line in smi_out.strip().splitlines()]

def smi_reasons():
    # Not in the fixed query (older nvidia-smi names it differently): optional.
    for name in ("clocks_event_reasons.active", "clocks_throttle_reasons.active"):
        r = subprocess.run(["nvidia-smi", "--query-gpu=" + name, "--format=csv,noheader"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return [line.strip() for line in r.stdout.strip().splitlines()]
    return None

reasons = smi_reasons()
BITS = ["gpu_idle", "applications_clocks_setting", "sw_power_cap", "hw_slowdown", "sync_boost",
        "sw_thermal", "hw_thermal", "hw_power_brake", "display_clock"]
MIB = 1024 * 1024

def num(s):
    try:
        return float(s)
    except ValueError:
        return None   # "[N/A]", "[Not Supported]"

def get(g, *path):
    for p in path:
        g = None if g is None else g.get(p)
    return g

# field -> (our value in nvidia-smi's unit, kind, tolerance)
def ours_for(g):
    mem_used = get(g, "memory", "used_bytes")
    mem_total = get(g, "memory", "total_bytes")
    return {
        "name": (g["name"], "text", None),
        "uuid": (g["uuid"], "text", None),
        "driver_version": (g["driver_version"], "text", None),
        "memory.used": (None if mem_used is None else mem_used / MIB, "live", 64),
        "memory.total": (None if mem_total is None else mem_total / MIB, "static", 1),
        "clocks.gr": (get(g, "clocks_mhz", "graphics"), "clock", None),
        "clocks.sm": (get(g, "clocks_mhz", "sm"), "clock", None),
        "clocks.mem": (get(g, "clocks_mhz", "mem"), "clock", None),
        "clocks.max.gr": (get(g, "clocks_mhz", "graphics_max"), "static", 0),
        "clocks.max.sm": (get(g, "clocks_mhz", "sm_max"), "static", 0),
        "clocks.max.mem": (get(g, "clocks_mhz", "mem_max"), "static", 0),
        "utilization.gpu": (get(g, "utilization_pct", "gpu"), "live", 15),
        "utilization.memory": (get(g, "utilization_pct", "mem"), "live", 15),
        "temperature.gpu": (g["temperature_c"], "live", 2),
        "power.draw": (g["power_w"], "power", None),
        "power.limit": (g["power_limit_w"], "static", 0.01),
    }

def verdict(field, smi_s, mine, kind, tol, source):
    smi_v = smi_s if kind == "text" else num(smi_s)
    if smi_v is None and mine is None:
        return "ok (both N/A)"
    if field.startswith("memory.") and source == "system" and smi_v is None:
        return "expected (unified memory: ours from /proc/meminfo)"
    if smi_v is None or mine is None:
        return "MISMATCH (one side N/A)"
    if kind == "text":
        return "ok" if smi_v == mine else "MISMATCH"
    diff = abs(smi_v - mine)
    if kind == "clock":      # live: 10 % or 30 MHz
        tol = max(30.0, 0.10 * smi_v)
    elif kind == "power":    # live: 10 % or 5 W
        tol = max(5.0, 0.10 * smi_v)
    return "ok" if diff <= tol + 1e-9 else f"MISMATCH (diff {diff:g} > {tol:g})"

def show(v):
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v)

bad = 0
if len(smi) != len(ours):
    print(f"GPU count: nvidia-smi {len(smi)}, quantbench {len(ours)}  MISMATCH")
    bad += 1
for i, (row, g) in enumerate(zip(smi, ours)):
    print(f"\nGPU {i}: {g['name']}  (memory source: {get(g, 'memory', 'source')})")
    print(f"  {'field':<20} {'nvidia-smi':<44} {'quantbench':<44} verdict")
    mine_all = ours_for(g)
    for field, smi_s in zip(FIELDS, row):
        mine, kind, tol = mine_all[field]
        v = verdict(field, smi_s, mine, kind, tol, get(g, "memory", "source"))
        bad += not (v.startswith("ok") or v.startswith("expected"))
        print(f"  {field:<20} {smi_s:<44} {show(mine):<44} {v}")
    if reasons is not None and i < len(reasons):
        mask = int(reasons[i], 16) if reasons[i].startswith("0x") else None
        want = None if mask is None else [n for b, n in enumerate(BITS) if mask >> b & 1]
        mine = g["throttle_reasons"]
        v = "ok" if want == mine else "differs (live value; recheck)"
        print(f"  {'clock event reasons':<20} {reasons[i]:<44} {show(mine):<44} {v}")
    print(f"  {'(extra) cuda driver':<20} {'':<44} {show(g.get('cuda_driver_version')):<44}")
    print(f"  {'(extra) our process':<20} {'':<44} {show(g.get('process_memory_bytes')):<44}")
print(f"\n{'all fields match' if bad == 0 else f'{bad} field(s) differ'}")
sys.exit(1 if bad else 0)
PY
