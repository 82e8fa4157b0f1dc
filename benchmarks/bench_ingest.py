"""CSV import: peak memory (RSS) and rate of `twin store` against the file's size.

Each file is made in a temp dir from one simulated block repeated under new asset ids (so every
reading is new), then imported by a fresh `python -m twinlib store` process whose peak RSS is
read from the kernel (`wait4`). A junk file (every line rejected) checks the reject path too.
The target (issue 12): a 1 GB file imports with at most 300 MB peak, independently of size.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twinlib.ingest import write_csv
from twinlib.simulate import simulate_fleet

MB = 1024 * 1024


def _block() -> bytes:
    """About 8 MB of readings lines (4 pumps, 1 s), without the header."""
    res = simulate_fleet(assets=4, hours=7.5, freq_s=1.0, seed=3, start="2026-02-10 00:00:00",
                         fault_rate=1.0)
    path = Path(tempfile.mkstemp(suffix=".csv")[1])
    try:
        write_csv(res.readings, path)
        text = path.read_bytes()
    finally:
        path.unlink()
    return text[text.index(b"\n") + 1:]


def _make_file(path: Path, size: int, block: bytes, header: bytes) -> int:
    """Write ~size bytes: the block again and again, each copy under its own asset ids."""
    written = rows = 0
    lines_per_block = block.count(b"\n")
    with path.open("wb") as fh:
        fh.write(header)
        k = 0
        while written < size:
            fh.write(block.replace(b",pump-", f",r{k:05d}-".encode()))
            written += len(block)
            rows += lines_per_block
            k += 1
    return rows


def _junk(path: Path, size: int) -> int:
    line = b"2026-02-10 00:00:00,p1,not-a-number,0.5,\"unclosed\n"
    n = max(1, size // len(line))
    with path.open("wb") as fh:
        fh.write(b"timestamp,asset_id,temperature,vibration,pressure\n")
        chunk = line * 10_000
        for _ in range(n // 10_000):
            fh.write(chunk)
        fh.write(line * (n % 10_000))
    return n


def _import(csv_path: Path, db: Path) -> dict:
    """`twin store` in its own process: wall time, exit status, peak RSS (kernel's figure)."""
    env = dict(os.environ, TWIN_DB=str(db), TWIN_SETTINGS=str(db.with_suffix(".none.toml")))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "twinlib", "store", "--csv", str(csv_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    cpu = usage.ru_utime + usage.ru_stime  # steadier than wall time on a shared machine
    return {"exit": proc.returncode, "seconds": round(seconds, 2), "cpu_s": round(cpu, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "summary": out.decode(errors="replace").strip().splitlines()[-1:]}


def _baseline_rss() -> float:
    """Peak RSS of the same interpreter importing what `twin store` imports, doing nothing."""
    proc = subprocess.Popen([sys.executable, "-c", "import pandas, numpy, twinlib.ingest, "
                                                   "twinlib.commands.data"])
    _, _, usage = os.wait4(proc.pid, 0)
    return round(usage.ru_maxrss / 1024, 1)


def run(quick: bool = False) -> dict:
    sizes = [8 * MB, 64 * MB] if quick else [64 * MB, 256 * MB, 1024 * MB]
    junk_size = 16 * MB if quick else 250 * MB
    out: dict = {"baseline_rss_mb": _baseline_rss(), "imports": [], "target": "1 GB file, "
                 "peak RSS <= 300 MB"}
    block = _block()
    header = b"timestamp,asset_id,temperature,vibration,pressure,label,load,speed,ambient\n"
    with tempfile.TemporaryDirectory(prefix="twin-bench-ingest-") as tmp:
        tmp = Path(tmp)
        for size in sizes:
            path = tmp / f"readings_{size // MB}mb.csv"
            rows = _make_file(path, size, block, header)
            res = _import(path, tmp / f"db_{size // MB}.db")
            res.update({"file_mb": round(path.stat().st_size / MB, 1), "rows": rows,
                        "rows_per_s": round(rows / res["seconds"]) if res["seconds"] else None,
                        "rows_per_cpu_s": round(rows / res["cpu_s"]) if res["cpu_s"] else None})
            out["imports"].append(res)
            print(f"  {res['file_mb']} MB: {res['seconds']} s, peak {res['peak_rss_mb']} MB",
                  flush=True)
            path.unlink()
            for f in tmp.glob(f"db_{size // MB}.db*"):
                f.unlink()
        path = tmp / "junk.csv"
        lines = _junk(path, junk_size)
        res = _import(path, tmp / "junk.db")
        res.update({"file_mb": round(path.stat().st_size / MB, 1), "lines": lines,
                    "note": "every line rejected (bad number and an unclosed quote)"})
        out["junk"] = res
    peaks = [i["peak_rss_mb"] for i in out["imports"]]
    out["peak_rss_mb_max"] = max(peaks)
    out["peak_rss_growth_mb"] = round(peaks[-1] - peaks[0], 1)
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
