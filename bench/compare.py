#!/usr/bin/env python3
"""Darkroom's engine side by side with sharp (libvips), Pillow and pillow-simd, in one run.

Runs every tool in-process (start-up excluded) on the tasks of ../shared/bench (T1-T4, same
images and parameters), single-threaded, and prints a markdown table: MP/s, ratio to the
fastest peer, peak RSS, output bytes, and PSNR of each output against sharp's (libvips's).
Usage: bench/run-image-bench [--reps N] [--rounds R] [--images a.jpg,b.jpg] [--tasks T1,T4]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpus")
PEERS = os.path.join(HERE, ".peers")
OUT = "/dev/shm/darkroom-bench"
ENGINE = os.path.join(ROOT, "target", "release", "darkroom-engine-bench")
PY_PILLOW = os.path.join(PEERS, "venv-pillow", "bin", "python")
PY_SIMD = os.path.join(PEERS, "venv-simd", "bin", "python")
SCRIPTS = os.path.join(PEERS, "bench", "scripts")


def command(tool, task, reps, img):
    if tool == "darkroom":
        return [ENGINE, task, "1", str(reps), img, OUT]
    if tool == "sharp":
        return ["node", os.path.join(SCRIPTS, "sharp_bench.js"), task, "1", str(reps), img, OUT]
    py = PY_PILLOW if tool == "pillow" else PY_SIMD
    return [py, os.path.join(SCRIPTS, "pillow_bench.py"), task, str(reps), img, OUT]


def env():
    e = dict(os.environ)
    e.update(VIPS_CONCURRENCY="1", OMP_NUM_THREADS="1", UV_THREADPOOL_SIZE="1")
    return e


def run(tool, task, reps, img):
    cmd = ["/usr/bin/time", "-f", "RSS_KB=%M"] + command(tool, task, reps, img)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=600)
    rss = next((int(l.split("=")[1]) for l in p.stderr.splitlines() if l.startswith("RSS_KB=")), None)
    try:
        row = json.loads(p.stdout.strip().splitlines()[-1])
    except Exception:  # noqa: BLE001
        return {"tool": tool, "error": (p.stderr or p.stdout)[-300:]}
    row["tool"] = tool
    row["rss_mb"] = rss / 1024 if rss else None
    return row


def best_of(rounds, runners):
    """Call each runner `rounds` times, alternating (a, b, c, a, b, c, ...); keep each one's row
    with the lowest median time (an error only if every round failed). Peak RSS is the highest seen."""
    best = [None] * len(runners)
    for _ in range(max(rounds, 1)):
        for i, go in enumerate(runners):
            row = go()
            old = best[i]
            if old is None or (row.get("median_s") and (not old.get("median_s") or row["median_s"] < old["median_s"])):
                if old and old.get("rss_mb") and row.get("rss_mb"):
                    row["rss_mb"] = max(row["rss_mb"], old["rss_mb"])
                best[i] = row
            elif old.get("rss_mb") and row.get("rss_mb"):
                old["rss_mb"] = max(old["rss_mb"], row["rss_mb"])
    return best


def output_path(tool, task, img):
    """Where each harness writes its last output: {tool}_{task}_{image}{ext}."""
    ext = ".png" if task == "T4" else ".jpg"
    return os.path.join(OUT, f"{tool}_{task}_{os.path.basename(img)}{ext}")


def psnr(a_path, b_path):
    """PSNR (dB) of a against b, computed with Pillow + numpy in the Pillow venv."""
    code = (
        "import sys, numpy as np; from PIL import Image\n"
        "a = Image.open(sys.argv[1]).convert('RGB'); b = Image.open(sys.argv[2]).convert('RGB')\n"
        "if a.size != b.size: print('size %sx%s vs %sx%s' % (a.size + b.size)); sys.exit()\n"
        "d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)\n"
        "m = (d * d).mean(); print('inf' if m == 0 else '%.1f' % (10 * np.log10(255 * 255 / m)))\n"
    )
    p = subprocess.run([PY_PILLOW, "-c", code, a_path, b_path], capture_output=True, text=True)
    return (p.stdout.strip() or p.stderr.strip()[-80:])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--images", default="L02_kleiber_6028x3391.jpg,M01_picosdeeuropa_3264x2448.jpg,M03_storm_1920x1280_exif.jpg")
    ap.add_argument("--tasks", default="T1,T2,T3,T4")
    ap.add_argument("--tools", default="darkroom,sharp,pillow,pillow-simd")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every tool this many times, alternating, and keep each tool's fastest median "
                         "(the machine is shared: a build starting during one tool's turn skews a single round)")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    print("| image | task | tool | MP/s | × fastest peer | peak RSS (MB) | output bytes | PSNR vs sharp (dB) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in a.images.split(","):
        img = name if os.path.isabs(name) else os.path.join(CORPUS, name)
        for task in a.tasks.split(","):
            rows = best_of(a.rounds, [lambda t=t: run(t, task, a.reps, img) for t in a.tools.split(",")])
            peers = [r for r in rows if r["tool"] != "darkroom" and r.get("median_s")]
            best = max((r["mp"] / r["median_s"] for r in peers), default=None)
            sharp_out = output_path("sharp", task, img)
            for r in rows:
                if not r.get("median_s"):
                    print(f"| {name[:3]} | {task} | {r['tool']} | error: {r.get('error', '')[:60]} | | | | |")
                    continue
                mps = r["mp"] / r["median_s"]
                ratio = f"{mps / best:.2f}" if best else "-"
                mine = output_path(r["tool"], task, img)
                q = psnr(mine, sharp_out) if (r["tool"] != "sharp" and mine and sharp_out and os.path.exists(mine)) else "-"
                rss = f"{r['rss_mb']:.0f}" if r.get("rss_mb") else "-"
                print(f"| {name[:3]} | {task} | {r['tool']} | {mps:.1f} | {ratio} | {rss} | {r.get('out_bytes', '-')} | {q} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
