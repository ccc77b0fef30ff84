"""Bundle benchmark: export and offline verification of a bundle of 1 GB or more.

A temporary home gets a case with N captures recorded through the real services (blobs put in
the folder store, manifests sealed with the home's Ed25519 key and its local timestamp
authority, capture rows and custody entries written by `record_capture`). The captures are made
without a browser so that the bundle's size can be chosen: each holds a WARC of one response with
--mb-per-capture of incompressible bytes (what a video looks like), the same bytes as a media
file, a PNG screenshot, a DOM, a text and a metadata document. Then, timed:

  - EXPORT: `evidence export` in a child process (reads every blob, builds a WACZ per capture,
    writes the BagIt ZIP, hashes everything on the way, records the export);
  - VERIFY: `evidence verify` in a child process, over the ZIP (no database, no home);
  - BASELINE: `sha256sum` over the files the bundle holds, unzipped to a folder beforehand.

Printed: sizes, seconds, MB/s (10^6 bytes), each ratio against sha256sum, and the peak resident
memory of the export and verify processes. Goals: verify within 1.5x of sha256sum, export
within 2x, both under 300 MB resident.

    .venv/bin/python bench/bundle.py [--captures 4] [--mb-per-capture 140] [--keep DIR]

The defaults make a bundle of about 1.2 GB (each capture's bytes are held three times: the
WARC, the media file and the WARC inside the WACZ). It prints; it does not pass or fail.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path

from PIL import Image
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evidence import captures, cases, manifests, targets, users
from evidence.captures import CaptureRecord, StepOutcome, StoredArtifact
from evidence.home import Runtime, init_home, open_runtime
from evidence.models import CaptureStatus, Role, utcnow
from evidence.settings import Settings

CHUNK = 1024 * 1024


def _random_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            n = min(CHUNK, left)
            out.write(os.urandom(n))
            left -= n


def _warc(path: Path, page_url: str, url: str, payload: Path) -> None:
    with path.open("wb") as out, payload.open("rb") as body:
        writer = WARCWriter(out, gzip=True)  # as the capture pipeline writes it
        html = f'<html><body><video src="{url}"></video></body></html>'.encode()
        page = writer.create_warc_record(
            page_url, "response", payload=io.BytesIO(html), length=len(html),
            http_headers=StatusAndHeaders("200 OK", [("Content-Type", "text/html")],
                                          protocol="HTTP/1.1"))
        writer.write_record(page)
        headers = StatusAndHeaders("200 OK", [("Content-Type", "video/mp4"),
                                              ("Content-Length", str(payload.stat().st_size))],
                                   protocol="HTTP/1.1")
        record = writer.create_warc_record(url, "response", payload=body, http_headers=headers,
                                           length=payload.stat().st_size)
        writer.write_record(record)


def _png(path: Path, seed: int) -> None:
    Image.new("RGB", (1366, 900), ((seed * 40) % 256, 90, 160)).save(path)


def _store(runtime: Runtime, kind: str, path: Path, media_type: str) -> StoredArtifact:
    blob = runtime.store.put_file(path)
    return StoredArtifact(kind, path.name, media_type, blob.size, blob.sha256,
                          runtime.store.locate(blob.sha256))


def _make_capture(runtime: Runtime, work: Path, n: int, mb: int) -> None:
    url = f"https://example.org/advert/{n}"
    folder = work / f"c{n}"
    folder.mkdir()
    media = folder / "clip.mp4"
    _random_file(media, mb * 1_000_000)
    _warc(folder / "traffic.warc.gz", url, f"{url}/clip.mp4", media)
    _png(folder / "screenshot.png", n)
    _png(folder / "screenshot-viewport.png", n + 1)
    (folder / "page.html").write_text(f"<html><body><h1>Crossing {n}</h1></body></html>")
    (folder / "text.txt").write_text(f"Crossing {n}, price on request")
    with runtime.session() as s:
        actor = users.get_user(s, "ines")
        case = cases.get_case(s, actor, "BENCH-1")
        target, _ = targets.flag_target(s, actor, case, url=url, reason="benchmark")
        started = utcnow()
        record = CaptureRecord(capture_id=uuid.uuid4(), requested_url=url, operator="ines",
                               worker_host="bench", started_at=started,
                               finished_at=started + timedelta(seconds=5), final_url=url,
                               http_status=200, title=f"Advert {n}",
                               status=CaptureStatus.COMPLETE)
        record.steps = [StepOutcome("navigate", True)]
        record.artifacts = [
            _store(runtime, "screenshot", folder / "screenshot.png", "image/png"),
            _store(runtime, "screenshot_viewport", folder / "screenshot-viewport.png",
                   "image/png"),
            _store(runtime, "dom", folder / "page.html", "text/html"),
            _store(runtime, "text", folder / "text.txt", "text/plain"),
            _store(runtime, "warc", folder / "traffic.warc.gz", "application/warc"),
            _store(runtime, "media", media, "video/mp4"),
        ]
        sealed = manifests.seal(captures.manifest_of(record, case=case, target_id=target.id),
                                runtime.signer, manifests.timestamp_authority(runtime.settings))
        seal_blob = runtime.store.put_bytes(sealed.data)
        extra = [StoredArtifact("manifest", "manifest.json", "application/json", seal_blob.size,
                                seal_blob.sha256, runtime.store.locate(seal_blob.sha256))]
        captures.record_capture(s, actor, record=record, case=case, target=target, job_id=None,
                                sealed=sealed, extra_artifacts=extra, store=runtime.store)
    shutil.rmtree(folder)


def _run(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in MB and stdout of a child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(args)} failed: {err.read().decode()[-3000:]}")
        return elapsed, usage.ru_maxrss // 1024, out.read().decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=int, default=4)
    parser.add_argument("--mb-per-capture", type=int, default=140)
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        settings = Settings(home=work / "home", max_artifact_bytes=10**12,
                            max_capture_bytes=10**12)
        init_home(settings)
        runtime = open_runtime(settings)
        with runtime.session() as s:
            ines = users.create_user(s, None, name="ines", role=Role.INVESTIGATOR)
            users.create_user(s, None, name="petra", role=Role.PROSECUTOR, unit="Prosecution")
            case = cases.create_case(s, ines, reference="BENCH-1", title="Benchmark")
            cases.add_member(s, ines, case, users.get_user(s, "petra"), access="read")
        print(f"making {args.captures} captures of {args.mb_per_capture} MB each ...")
        for n in range(args.captures):
            _make_capture(runtime, work, n, args.mb_per_capture)
        runtime.close()

        env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
        env["EVIDENCE_HOME"] = str(settings.home_path)
        bundle = work / "bundle.zip"
        export_s, export_rss, _ = _run([sys.executable, "-m", "evidence", "export", "BENCH-1",
                                        "--as", "petra", "--out", str(bundle), "--json"], env)
        size = bundle.stat().st_size
        verify_env = {k: v for k, v in env.items() if k != "EVIDENCE_HOME"}
        verify_s, verify_rss, _ = _run([sys.executable, "-m", "evidence", "verify", "--json",
                                        str(bundle)], verify_env)

        unzipped = work / "unzipped"
        with zipfile.ZipFile(bundle) as zf:
            zf.extractall(unzipped)
        files = sorted(str(p) for p in unzipped.rglob("*") if p.is_file())
        payload = sum(Path(f).stat().st_size for f in files)
        subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True)  # page cache
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(["sha256sum", *files], stdout=subprocess.DEVNULL, check=True)
            best = min(best, time.perf_counter() - started)

        mb = payload / 1e6
        print(f"bundle: {size / 1e6:.0f} MB zip, {mb:.0f} MB in {len(files)} files")
        print(f"sha256sum over the files:   {best:7.2f} s  {mb / best:7.1f} MB/s  (baseline)")
        print(f"evidence export:            {export_s:7.2f} s  {mb / export_s:7.1f} MB/s  "
              f"{export_s / best:5.2f}x  peak RSS {export_rss} MB  (goal 2x, 300 MB)")
        print(f"evidence verify:            {verify_s:7.2f} s  {mb / verify_s:7.1f} MB/s  "
              f"{verify_s / best:5.2f}x  peak RSS {verify_rss} MB  (goal 1.5x, 300 MB)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
