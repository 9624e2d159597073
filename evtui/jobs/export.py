"""Outputs that training pipelines read: JSONL, CSV, Parquet rows and WebDataset shards.

Rows are one per (frame, target, prompt version) in frame order: the done result, else
its final failed/skipped record, with the latest review decision of that (frame, target).
Every file is written under a temporary name and renamed when complete, so an export
killed midway leaves nothing that looks finished. Exports read a live run safely: they
take no lock and read only lines complete when they start.

WebDataset (the format open_clip, img2dataset and DALI read): a shard is a plain tar
whose consecutive members sharing a basename form one sample; the key is the name up to
the *first* dot, the rest is the extension (so keys hold no dots). Shards are named
`%06d.tar` so `{000000..000123}.tar` brace patterns list them.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tarfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from evtui.jobs.layout import read_reviews
from evtui.jobs.records import final_records, review_map

STATES = ("done", "failed", "skipped")
FIELDS = (
    "frame",
    "t0_us",
    "t1_us",
    "events",
    "target",
    "model",
    "prompt_version",
    "state",
    "caption",
    "reason",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_s",
    "attempts",
    "cache_hit",
    "cache_source",
    "flags",
)
REVIEW_FIELDS = ("review_decision", "review_text", "review_at")
# What a sample's JSON keeps of each target's result.
SAMPLE_FIELDS = tuple(f for f in FIELDS if f not in ("frame", "t0_us", "t1_us", "events", "target"))
_KEY_PREFIX = re.compile(r"[A-Za-z0-9_-]*")


class ExportUnavailable(RuntimeError):
    """An optional dependency of one export format is not installed."""


def rows(run_dir: str | Path, states: Sequence[str] = STATES) -> Iterator[dict[str, Any]]:
    """Final records in (frame, target) order, each with its review fields (None if unreviewed)."""
    reviews = review_map(read_reviews(Path(run_dir)))
    for r in final_records(run_dir, states=states):
        rev = reviews.get((r["frame"], r.get("target")))
        yield {
            **r,
            "review_decision": rev.get("decision") if rev else None,
            "review_text": rev.get("text") if rev else None,
            "review_at": rev.get("at") if rev else None,
        }


def export_jsonl(run_dir: str | Path, out: str | Path, states: Sequence[str] = STATES) -> int:
    """Every row as one JSON object a line, all fields kept; returns the row count."""
    n = 0
    with _atomic(out) as f:
        for r in rows(run_dir, states):
            f.write(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE, default=str))
            n += 1
    return n


def export_csv(run_dir: str | Path, out: str | Path, states: Sequence[str] = STATES) -> int:
    """The fixed columns FIELDS + REVIEW_FIELDS; cache_source as JSON, flags joined by ';'."""
    n = 0
    with _atomic(out) as f:
        text = io.TextIOWrapper(f, encoding="utf-8", newline="")
        w = csv.writer(text)
        w.writerow(FIELDS + REVIEW_FIELDS)
        for r in rows(run_dir, states):
            w.writerow([_cell(k, r.get(k)) for k in FIELDS + REVIEW_FIELDS])
            n += 1
        text.flush()
        text.detach()
    return n


def export_parquet(
    run_dir: str | Path, out: str | Path, states: Sequence[str] = STATES, batch: int = 50_000
) -> int:
    """The CSV columns as a typed Parquet table (needs pyarrow: the `parquet` extra)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportUnavailable(
            "Parquet export needs pyarrow: pip install 'evtui[parquet]' (or pyarrow)"
        ) from None
    schema = pa.schema(
        [
            ("frame", pa.int64()),
            ("t0_us", pa.int64()),
            ("t1_us", pa.int64()),
            ("events", pa.int64()),
            ("target", pa.string()),
            ("model", pa.string()),
            ("prompt_version", pa.string()),
            ("state", pa.string()),
            ("caption", pa.string()),
            ("reason", pa.string()),
            ("input_tokens", pa.int64()),
            ("output_tokens", pa.int64()),
            ("cost_usd", pa.float64()),
            ("latency_s", pa.float64()),
            ("attempts", pa.int64()),
            ("cache_hit", pa.bool_()),
            ("cache_source", pa.string()),
            ("flags", pa.list_(pa.string())),
            ("review_decision", pa.string()),
            ("review_text", pa.string()),
            ("review_at", pa.string()),
        ]
    )
    n = 0
    with _atomic(out) as f:
        writer = pq.ParquetWriter(f, schema)
        buf: list[dict[str, Any]] = []
        for r in rows(run_dir, states):
            row = {k: r.get(k) for k in schema.names}
            src = row["cache_source"]
            row["cache_source"] = None if src is None else orjson.dumps(src).decode()
            row["flags"] = [str(x) for x in row["flags"] or ()]
            buf.append(row)
            if len(buf) >= batch:
                writer.write_table(pa.Table.from_pylist(buf, schema=schema))
                n += len(buf)
                buf.clear()
        if buf or n == 0:
            writer.write_table(pa.Table.from_pylist(buf, schema=schema))
            n += len(buf)
        writer.close()
    return n


def _cell(field: str, value: Any) -> Any:
    if value is None:
        return ""
    if field == "flags" and isinstance(value, list | tuple):
        return ";".join(map(str, value))
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


# -- WebDataset ---------------------------------------------------------------------------
def frame_samples(
    run_dir: str | Path, only_captioned: bool = True
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(frame, sample) in frame order: every target's result, the reviews, and `text`.

    `text` is the caption a single-caption loader should train on: an edited text, else
    the preferred target's, else an accepted one, else the first unrejected done caption
    by target name; absent when every caption was rejected or none is done.
    """
    reviews = review_map(read_reviews(Path(run_dir)))
    group: list[dict[str, Any]] = []
    for r in final_records(run_dir):
        if group and r["frame"] != group[0]["frame"]:
            sample = _sample(group, reviews)
            if sample["captions"] or not only_captioned:
                yield group[0]["frame"], sample
            group = []
        group.append(r)
    if group:
        sample = _sample(group, reviews)
        if sample["captions"] or not only_captioned:
            yield group[0]["frame"], sample


def _sample(
    group: list[dict[str, Any]], reviews: dict[tuple[int, str], dict[str, Any]]
) -> dict[str, Any]:
    first = group[0]
    frame = first["frame"]
    captions: dict[str, dict[str, Any]] = {}
    other: dict[str, dict[str, Any]] = {}
    for r in group:
        entry = {k: r.get(k) for k in SAMPLE_FIELDS}
        who = str(r.get("target") or r.get("slot"))  # a route-mode skip names only its slot
        (captions if r["state"] == "done" else other)[who] = entry
    revs = {
        t: {k: rev.get(k) for k in ("decision", "text", "at")}
        for t in sorted({*captions, *other})
        if (rev := reviews.get((frame, t)))
    }
    sample: dict[str, Any] = {
        "frame": frame,
        "t0_us": first.get("t0_us"),
        "t1_us": first.get("t1_us"),
        "events": first.get("events"),
        "captions": captions,
        "not_captioned": other,
        "reviews": revs,
    }
    text = _chosen_text(captions, revs)
    if text is not None:
        sample["text"] = text
    return sample


def _chosen_text(
    captions: dict[str, dict[str, Any]], revs: dict[str, dict[str, Any]]
) -> str | None:
    for t in sorted(revs):
        if revs[t]["decision"] == "edit" and isinstance(revs[t]["text"], str):
            return revs[t]["text"]
    for decision in ("prefer", "accept"):
        for t in sorted(captions):
            if revs.get(t, {}).get("decision") == decision:
                return captions[t]["caption"]
    for t in sorted(captions):
        if revs.get(t, {}).get("decision") != "reject":
            return captions[t]["caption"]
    return None


def write_webdataset(
    samples: Iterable[tuple[int, bytes, dict[str, Any]]],
    out_dir: str | Path,
    *,
    shard_size: int = 1000,
    key_prefix: str = "",
    pattern: str = "%06d.tar",
) -> list[Path]:
    """Write (frame, png bytes, sample dict) as shards of `shard_size` samples; returns them."""
    with ShardWriter(out_dir, shard_size=shard_size, key_prefix=key_prefix, pattern=pattern) as w:
        for frame, png, sample in samples:
            w.write(frame, png, sample)
    return w.shards


class ShardWriter:
    """WebDataset shards of `shard_size` samples, each shard renamed into place when full.

    A sample is `{key}.png`, `{key}.json` (the sample dict) and, when the sample has a
    `text`, `{key}.txt`; the key is `key_prefix` + the frame zero-padded to 9 digits, so
    names sort in frame order. Refuses a directory that already holds shards of `pattern`.
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        shard_size: int = 1000,
        key_prefix: str = "",
        pattern: str = "%06d.tar",
    ) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, not {shard_size}")
        if not _KEY_PREFIX.fullmatch(key_prefix):
            raise ValueError(
                f"key_prefix {key_prefix!r} may hold only letters, digits, '_' and '-'"
                " (WebDataset keys end at the first dot)"
            )
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        if (self.out / (pattern % 0)).exists():
            raise FileExistsError(
                f"{self.out} already holds shards ({pattern % 0}); choose an empty directory"
            )
        self.shard_size, self.key_prefix, self.pattern = shard_size, key_prefix, pattern
        self.shards: list[Path] = []
        self._seen: set[int] = set()
        self._tar: tarfile.TarFile | None = None
        self._tmp = self.out
        self._count = 0
        self._mtime = int(time.time())

    def write(self, frame: int, png: bytes, sample: dict[str, Any]) -> None:
        frame = int(frame)
        if frame in self._seen:
            raise ValueError(f"frame {frame} given twice: its samples would merge")
        self._seen.add(frame)
        if self._tar is None:
            final = self.out / (self.pattern % len(self.shards))
            self._tmp = final.with_name(f".{final.name}.partial")
            self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
            self.shards.append(final)
        key = f"{self.key_prefix}{frame:09d}"
        _add(self._tar, f"{key}.png", png, self._mtime)
        _add(self._tar, f"{key}.json", orjson.dumps(sample, default=str), self._mtime)
        if isinstance(sample.get("text"), str):
            _add(self._tar, f"{key}.txt", sample["text"].encode(), self._mtime)
        self._count += 1
        if self._count == self.shard_size:
            self._finish()

    def _finish(self) -> None:
        if self._tar is not None:
            self._tar.close()
            os.replace(self._tmp, self.shards[-1])
            self._tar, self._count = None, 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self._finish()
        elif self._tar is not None:  # a failed export leaves no half shard under a final name
            self._tar.close()
            self._tmp.unlink(missing_ok=True)
            self.shards.pop()
            self._tar = None


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o444
    info.uname = info.gname = "evtui"
    tar.addfile(info, io.BytesIO(data))


class _atomic:
    """A binary file that appears under its name only once completely written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.partial")

    def __enter__(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.tmp, "wb")
        return self.f

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.f.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
