"""The semantic caption cache: keys, scopes, persistence, processes, damage, maintenance."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtui.cache import CacheHit, SemanticCache, default_cache_dir, scope_key
from evtui.cache import indexfile as ix
from evtui.cache.hamming import HammingIndex, brute_force
from evtui.cache.quality import measure_sample
from evtui.frames.fingerprint import DEFAULT_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]
KEY = {"prompt_version": "p1", "target": "openai/gpt-4o", "scope": "target"}


def fp_of(seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, 16, dtype=np.uint8).tobytes()


def flipped(fp: bytes, n: int, seed: int = 0) -> bytes:
    """`fp` with exactly n bits flipped."""
    bits = np.unpackbits(np.frombuffer(fp, np.uint8))
    bits[np.random.default_rng(seed).choice(128, n, replace=False)] ^= 1
    return np.packbits(bits).tobytes()


def ph_of(i: int) -> str:
    return f"{i:032x}"


def put(cache: SemanticCache, i: int, fp: bytes | None = None, **over) -> None:
    kw = {**KEY, **over}
    cache.put(ph_of(i), fp or fp_of(i), caption=f"caption {i}", frame=i, recording="rec",
              extra={"i": i}, **kw)  # fmt: skip


@pytest.fixture
def cache(tmp_path):
    c = SemanticCache.open(tmp_path / "c")
    yield c
    c.close()


# ------------------------------------------------------------------ keys and matching


def test_exact_hit_carries_provenance(cache):
    put(cache, 1)
    hit = cache.lookup(ph_of(1), fp_of(99), **KEY)  # pixels equal: the fingerprint is moot
    assert isinstance(hit, CacheHit)
    assert (hit.kind, hit.distance, hit.caption, hit.frame) == ("exact", 0, "caption 1", 1)
    assert (hit.recording, hit.target, hit.prompt_version, hit.extra) == (
        "rec", "openai/gpt-4o", "p1", {"i": 1},
    )  # fmt: skip


def test_near_hit_within_threshold_and_miss_beyond(cache):
    put(cache, 1)
    for n in (1, DEFAULT_THRESHOLD // 2, DEFAULT_THRESHOLD):
        hit = cache.lookup(ph_of(500 + n), flipped(fp_of(1), n, seed=n), **KEY)
        assert hit is not None and (hit.kind, hit.distance, hit.frame) == ("near", n, 1)
    assert cache.lookup(ph_of(600), flipped(fp_of(1), DEFAULT_THRESHOLD + 1), **KEY) is None


def test_nearest_wins(cache):
    put(cache, 1, fp_of(1))
    put(cache, 2, flipped(fp_of(1), 6))
    hit = cache.lookup(ph_of(9), flipped(fp_of(1), 1), **KEY)
    assert hit is not None and hit.frame == 1 and hit.distance == 1


def test_threshold_is_configurable_and_negative_disables_near(tmp_path):
    with SemanticCache.open(tmp_path / "a", threshold=3) as c:
        put(c, 1)
        assert c.lookup(ph_of(2), flipped(fp_of(1), 3), **KEY) is not None
        assert c.lookup(ph_of(2), flipped(fp_of(1), 4), **KEY) is None
    with SemanticCache.open(tmp_path / "b", threshold=-1) as c:
        put(c, 1)
        assert c.lookup(ph_of(2), fp_of(1), **KEY) is None
        assert c.lookup(ph_of(1), fp_of(1), **KEY) is not None


def test_scope_key():
    assert scope_key("openai/gpt-4o", "target") == "openai/gpt-4o"
    assert scope_key("openai/gpt-4o", "provider") == "openai"
    assert scope_key("openai/gpt-4o", "any") == "*"
    with pytest.raises(ValueError, match="scope"):
        scope_key("openai/gpt-4o", "model")
    with pytest.raises(ValueError, match="target"):
        scope_key("", "target")


@pytest.mark.parametrize(
    ("scope", "other", "shared"),
    [
        ("target", "openai/gpt-4o", True),
        ("target", "openai/gpt-4o-mini", False),
        ("provider", "openai/gpt-4o-mini", True),
        ("provider", "anthropic/claude", False),
        ("any", "anthropic/claude", True),
    ],
)
def test_scope_isolation(cache, scope, other, shared):
    put(cache, 1, scope=scope)
    for pix, fp in ((ph_of(1), fp_of(1)), (ph_of(2), flipped(fp_of(1), 2))):  # exact, near
        hit = cache.lookup(pix, fp, prompt_version="p1", target=other, scope=scope)
        assert (hit is not None) == shared
        if hit is not None:
            assert hit.target == "openai/gpt-4o"


def test_prompt_version_and_variant_isolation(cache):
    put(cache, 1)
    put(cache, 2, variant="histogram")
    near = flipped(fp_of(1), 2)
    assert cache.lookup(ph_of(1), fp_of(1), **{**KEY, "prompt_version": "p2"}) is None
    assert cache.lookup(ph_of(3), near, **{**KEY, "prompt_version": "p2"}) is None
    assert cache.lookup(ph_of(1), fp_of(1), variant="histogram", **KEY) is None
    hit = cache.lookup(ph_of(2), fp_of(2), variant="histogram", **KEY)
    assert hit is not None and hit.frame == 2


def test_bad_arguments(cache):
    with pytest.raises(ValueError, match="16 bytes"):
        cache.lookup(ph_of(1), b"short", **KEY)
    with pytest.raises(ValueError, match="JSON"):
        cache.put(ph_of(1), fp_of(1), caption="c", frame=1, recording="r",
                  extra={"x": object()}, **KEY)  # fmt: skip
    with pytest.raises(ValueError, match="scope"):
        cache.lookup(ph_of(1), fp_of(1), prompt_version="p", target="a/b", scope="nope")


# ------------------------------------------------------------------ persistence


def test_persistence_across_reopen(tmp_path):
    d = tmp_path / "c"
    with SemanticCache.open(d, batch_size=1000) as c:  # nothing flushed before close
        for i in range(50):
            put(c, i)
    with SemanticCache.open(d) as c:
        assert c.stats()["entries"] == 50
        assert c.lookup(ph_of(7), fp_of(7), **KEY).kind == "exact"
        hit = c.lookup(ph_of(999), flipped(fp_of(7), 5), **KEY)
        assert hit is not None and hit.frame == 7
        put(c, 50)
    with SemanticCache.open(d) as c:
        assert c.stats()["entries"] == 51
        assert c.stats()["segments"] == 0  # closed caches fold their segment into the base


def test_crash_loses_at_most_the_unflushed_batch(tmp_path):
    d = tmp_path / "c"
    code = textwrap.dedent(f"""
        import os, numpy as np
        from evtui.cache import SemanticCache
        c = SemanticCache.open({str(d)!r}, batch_size=16, flush_interval=1e9)
        for i in range(100):
            fp = np.random.default_rng(i).integers(0, 256, 16, dtype=np.uint8).tobytes()
            c.put(f"{{i:032x}}", fp, prompt_version="p1", target="openai/gpt-4o",
                  scope="target", caption=f"caption {{i}}", frame=i, recording="rec")
        os._exit(0)  # no close: as if killed
    """)
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    with SemanticCache.open(d) as c:
        n = c.stats()["entries"]
        # whole batches of 16 survive; lost: the partial batch (4) and at most two batches
        # still with the writer thread, so at most 3 * 16 - 1 puts
        assert 100 - (3 * 16 - 1) <= n <= 96 and n % 16 == 0
        assert c.lookup(ph_of(n - 1), fp_of(12345), **KEY) is not None
        assert c.lookup(ph_of(n), fp_of(12345), **KEY) is None
        hit = c.lookup(ph_of(1000), flipped(fp_of(40), 4), **KEY)
        assert hit is not None and hit.frame == 40
    # the dead segment was folded into the base on open
    assert ix.list_segments(d / "index") == []


def test_exit_without_close_still_writes_everything(tmp_path):
    d = tmp_path / "c"
    code = textwrap.dedent(f"""
        from evtui.cache import SemanticCache
        c = SemanticCache.open({str(d)!r}, batch_size=16)
        for i in range(50):
            c.put(f"{{i:032x}}", bytes(16), prompt_version="p1", target="openai/gpt-4o",
                  scope="target", caption="c", frame=i, recording="rec")
    """)  # the interpreter exits normally, without close()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    with SemanticCache.open(d) as c:
        assert c.stats()["entries"] == 50


def _worker(directory: str, first: int, n: int, barrier, seen) -> None:
    c = SemanticCache.open(directory, batch_size=8, refresh_interval=0.0)
    for i in range(first, first + n):
        put(c, i)
    c.flush()
    barrier.wait(timeout=30)
    # the other process's rows: exact via diskcache, near via its followed segment
    other = n if first == 0 else 0
    hits = 0
    for i in range(other, other + n):
        hit = c.lookup(ph_of(100_000 + i), flipped(fp_of(i), 3, seed=i), **KEY)
        hits += hit is not None and hit.frame == i
    seen.put(hits)
    barrier.wait(timeout=30)
    c.close()


def test_two_processes_share_one_directory(tmp_path):
    d = tmp_path / "c"
    SemanticCache.open(d).close()
    ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    barrier = ctx.Barrier(2)
    seen = ctx.Queue()
    n = 150
    procs = [ctx.Process(target=_worker, args=(str(d), k * n, n, barrier, seen)) for k in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert [seen.get(timeout=5), seen.get(timeout=5)] == [n, n]
    with SemanticCache.open(d) as c:
        s = c.stats()
        assert s["entries"] == 2 * n and s["problems"] == []
        for i in (0, n - 1, n, 2 * n - 1):
            assert c.lookup(ph_of(i), fp_of(i), **KEY).frame == i


# ------------------------------------------------------------------ damage


def _filled(d: Path, n: int = 40) -> None:
    with SemanticCache.open(d) as c:
        for i in range(n):
            put(c, i)


def test_corrupt_base_is_rebuilt_from_the_store(tmp_path, caplog):
    d = tmp_path / "c"
    _filled(d)
    base = d / "index" / ix.BASE_NAME
    raw = bytearray(base.read_bytes())
    raw[ix.HEADER_SIZE + 300 : ix.HEADER_SIZE + 340] = b"\xff" * 40  # inside the metadata/rows
    base.write_bytes(bytes(raw))
    with SemanticCache.open(d) as c:
        s = c.stats()
        assert s["entries"] == 40
        assert any("rebuilding" in p for p in s["problems"])
        hit = c.lookup(ph_of(999), flipped(fp_of(3), 4), **KEY)
        assert hit is not None and hit.frame == 3
    assert any("rebuilding" in r.message for r in caplog.records)
    with SemanticCache.open(d) as c:  # the rebuilt base is sound
        assert c.stats()["problems"] == []


@pytest.mark.parametrize("damage", ["magic", "truncated"])
def test_unreadable_base_never_crashes(tmp_path, damage):
    d = tmp_path / "c"
    _filled(d, 10)
    base = d / "index" / ix.BASE_NAME
    if damage == "magic":
        base.write_bytes(b"not an index at all" * 10)
    else:
        base.write_bytes(base.read_bytes()[:5000])
    with SemanticCache.open(d) as c:
        assert c.stats()["entries"] == 10


def test_torn_and_damaged_segment_rows(tmp_path):
    d = tmp_path / "c"
    idx = d / "index"
    SemanticCache.open(d).close()
    # a crashed writer's segment: 5 rows, the 3rd damaged, then half a row
    w = ix.SegmentWriter(idx)
    rows = ix.make_records(
        np.array([[i, i] for i in range(5)], np.uint64), np.zeros((5, 2), np.uint64),
        np.arange(5), np.arange(5), np.full(5, 10),
    )  # fmt: skip
    rows["created"][2] = 7  # damaged after its checksum was computed
    w.append(rows)
    w.close()
    with open(w.path, "ab") as f:
        f.write(b"\x01" * 20)
    got = ix.read_segment(w.path)
    assert [int(x) for x in got.rows["fp"][:, 0]] == [0, 1, 3, 4]
    assert got.problems and "damaged" in got.problems[0]
    with SemanticCache.open(d) as c:
        assert c.stats()["entries"] == 4
    (idx / "seg-999-garbage.fpx").write_bytes(b"garbage")
    with SemanticCache.open(d) as c:
        assert any("garbage" in p for p in c.stats()["problems"])


def test_write_failures_are_reported_not_raised(tmp_path, monkeypatch):
    c = SemanticCache.open(tmp_path / "c", batch_size=2)

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(c._segment, "append", full)
    put(c, 1)
    put(c, 2)  # the batch goes to the writer here, and fails
    c.flush()
    s = c.stats()
    assert s["session"]["write_errors"] == 1
    assert any("No space left" in p for p in s["problems"])
    assert c.lookup(ph_of(3), flipped(fp_of(1), 2), **KEY) is not None  # memory still serves
    monkeypatch.undo()
    c.close()


def test_unusable_directory_is_a_cache_error(tmp_path):
    from evtui.cache import CacheError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CacheError, match="cannot open the caption cache"):
        SemanticCache.open(blocker / "c")


# ------------------------------------------------------------------ maintenance


def test_stats(cache):
    for i in range(5):
        put(cache, i)
    put(cache, 5, prompt_version="p2")
    cache.lookup(ph_of(1), fp_of(1), **KEY)
    cache.lookup(ph_of(50), flipped(fp_of(2), 2), **KEY)
    cache.lookup(ph_of(51), fp_of(51), **KEY)
    s = cache.stats()
    assert (s["entries"], s["partitions"], s["threshold_bits"]) == (6, 2, DEFAULT_THRESHOLD)
    ses = s["session"]
    assert (ses["lookups"], ses["exact_hits"], ses["near_hits"], ses["misses"]) == (3, 1, 1, 1)
    assert ses["puts"] == 6 and s["oldest"] <= s["newest"]


def test_prune_by_age_and_size(cache):
    for i in range(10):
        put(cache, i)
    now = cache.stats()["newest"]
    assert cache.prune(max_age=3600, now=now) == {"removed": 0, "kept": 10, "freed_bytes": 0}
    out = cache.prune(max_age=5, now=now + 10)
    assert (out["removed"], out["kept"]) == (10, 0) and out["freed_bytes"] > 10 * 100
    assert cache.stats()["entries"] == 0
    assert cache.lookup(ph_of(1), fp_of(1), **KEY) is None  # the records are gone too
    assert cache.lookup(ph_of(50), flipped(fp_of(1), 2), **KEY) is None
    for i in range(20):
        put(cache, i)
    assert cache.prune() == {"removed": 0, "kept": 20, "freed_bytes": 0}
    assert cache.prune(max_bytes=1)["removed"] == 20
    with pytest.raises(ValueError, match="max_age"):
        cache.prune(max_age=-1)


def test_prune_by_size_keeps_the_newest(tmp_path):
    with SemanticCache.open(tmp_path / "c", batch_size=1) as c:
        for i in range(10):
            put(c, i)
        rows = c._rows[: c._n]
        each = int(rows["size"][0]) + ix.RECORD.itemsize + 32
        c._rows["created"][: c._n] = np.arange(10) * 1_000_000  # deterministic ages
        out = c.prune(max_bytes=3 * each + each // 2)
        assert (out["removed"], out["kept"]) == (7, 3)
        kept = {i for i in range(10) if c.lookup(ph_of(i), fp_of(10_000), **KEY) is not None}
        assert kept == {7, 8, 9}


def test_clear_reaches_other_instances(tmp_path):
    d = tmp_path / "c"
    a = SemanticCache.open(d, refresh_interval=0.0)
    b = SemanticCache.open(d, refresh_interval=0.0)
    for i in range(10):
        put(a, i)
    a.flush()
    assert b.lookup(ph_of(100), flipped(fp_of(4), 2), **KEY) is not None
    b.clear()
    assert b.stats()["entries"] == 0
    assert a.lookup(ph_of(100), flipped(fp_of(4), 2), **KEY) is None
    assert a.stats()["entries"] == 0
    put(a, 11)
    a.close()
    b.close()
    with SemanticCache.open(d) as c:
        assert c.stats()["entries"] == 1


def test_one_instance_closing_while_another_runs(tmp_path):
    d = tmp_path / "c"
    a = SemanticCache.open(d, refresh_interval=0.0)
    b = SemanticCache.open(d, refresh_interval=0.0)
    for i in range(10):
        put(a, i)
    a.close()  # folds its segment into a new base: b reloads on its next call
    hit = b.lookup(ph_of(100), flipped(fp_of(4), 3), **KEY)
    assert hit is not None and hit.frame == 4
    put(b, 10)
    b.close()
    with SemanticCache.open(d) as c:
        assert c.stats()["entries"] == 11 and c.stats()["segments"] == 0
    with pytest.raises(ValueError, match="in bits"):
        SemanticCache.open(d, threshold=0.1)


def test_closed_cache_refuses_and_default_dir(tmp_path, monkeypatch):
    c = SemanticCache.open(tmp_path / "c")
    c.close()
    c.close()  # idempotent
    with pytest.raises(Exception, match="closed"):
        c.lookup(ph_of(1), fp_of(1), **KEY)
    monkeypatch.setenv("EVTUI_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env" / "captions"


def run_cli(*argv: str) -> int:
    import argparse

    from evtui.cache.cli import add_cache_parser

    parser = argparse.ArgumentParser(prog="evtui")
    add_cache_parser(parser.add_subparsers(dest="command"), config_cache_dir=lambda f: f + "-dir")
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_stats_prune_clear(tmp_path, capsys):
    d = tmp_path / "c"
    assert run_cli("cache", "stats", "--dir", str(d)) == 0
    assert "no cache here" in capsys.readouterr().out
    with SemanticCache.open(d) as c:
        for i in range(5):
            put(c, i)
    assert run_cli("cache", "stats", "--dir", str(d), "--json") == 0
    assert '"entries": 5' in capsys.readouterr().out
    assert run_cli("cache", "stats", "--dir", str(d)) == 0
    out = capsys.readouterr().out
    assert "5 in 1 partition" in out and "12 of 128 bits" in out
    assert run_cli("cache", "prune", "--dir", str(d)) == 2
    assert "needs --older-than" in capsys.readouterr().err
    assert run_cli("cache", "prune", "--dir", str(d), "--older-than", "soon") == 2
    assert "expected an age" in capsys.readouterr().err
    assert run_cli("cache", "prune", "--dir", str(d), "--older-than", "30d") == 0
    assert "removed 0 entries, kept 5" in capsys.readouterr().out
    assert run_cli("cache", "prune", "--dir", str(d), "--max-size", "1B", "--json") == 0
    assert '"removed": 5' in capsys.readouterr().out
    assert run_cli("cache", "clear", "--dir", str(d)) == 2
    assert "--yes" in capsys.readouterr().err
    assert run_cli("cache", "clear", "--dir", str(d), "--yes") == 0
    assert "cleared 0 entries" in capsys.readouterr().out
    # --config resolves through the callable the CLI was given
    assert run_cli("cache", "stats", "--config", str(d)[:-1] + "x") == 0
    assert str(d)[:-1] + "x-dir" in capsys.readouterr().out


def test_cli_parsers():
    from evtui.cache.cli import parse_age, parse_size

    assert parse_age("30d") == 30 * 86400 and parse_age("90m") == 5400 and parse_age("12") == 12
    assert parse_size("2GB") == 2_000_000_000 and parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("800k") == 800_000 and parse_size("123") == 123
    with pytest.raises(ValueError, match="size"):
        parse_size("lots")


# ------------------------------------------------------------------ search exactness


@st.composite
def code_sets(draw):
    n = draw(st.integers(1, 400))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**64, (draw(st.integers(1, 6)), 2), dtype=np.uint64)
    codes = centres[rng.integers(0, len(centres), n)].copy()
    flips = rng.integers(0, 128, (n, draw(st.integers(0, 30))))  # clusters: many near pairs
    for j in range(flips.shape[1]):
        word, bit = flips[:, j] // 64, (flips[:, j] % 64).astype(np.uint64)
        codes[np.arange(n), word] ^= np.uint64(1) << bit
    parts = rng.integers(0, draw(st.integers(1, 3)), n).astype(np.uint64)
    split = draw(st.integers(0, n))
    return codes, parts, split, seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code_sets(), st.integers(0, 40), st.integers(1, 64))
def test_search_equals_brute_force(data, radius, delta_max):
    codes, parts, split, seed = data
    idx = HammingIndex(capacity=4, delta_max=delta_max)  # grows, merges, keeps a delta tail
    idx.add(codes[:split], parts[:split])
    idx.add(codes[split:], parts[split:])
    rng = np.random.default_rng(seed + 1)
    for _ in range(5):
        q = codes[rng.integers(0, len(codes))].copy()
        q[rng.integers(0, 2)] ^= np.uint64(1) << np.uint64(rng.integers(0, 64))
        qp = int(parts[rng.integers(0, len(parts))])
        got = idx.search(int(q[0]), int(q[1]), qp, radius)
        want = brute_force(codes, parts, int(q[0]), int(q[1]), qp, radius)
        assert dict(zip(got.index.tolist(), got.distance.tolist(), strict=True)) == want
        assert list(got.distance) == sorted(got.distance)
    order, starts = idx.tables()
    again = HammingIndex.from_tables(codes, parts, order, starts)
    q = codes[0]
    assert np.array_equal(
        again.search(int(q[0]), int(q[1]), int(parts[0]), radius).index,
        idx.search(int(q[0]), int(q[1]), int(parts[0]), radius).index,
    )


def test_other_partitions_never_match_even_when_masked_codes_collide():
    from evtui.cache.hamming import partition_masks

    masks = partition_masks(np.array([11, 22], np.uint64))
    code = np.array([[123, 456]], np.uint64)
    idx = HammingIndex()
    idx.add(code, np.array([11], np.uint64))
    twin = code ^ masks[0] ^ masks[1]  # in partition 22 it masks to exactly the stored row
    assert idx.search(int(twin[0, 0]), int(twin[0, 1]), 22, 40).index.size == 0
    assert idx.search(123, 456, 11, 0).index.tolist() == [0]


# ------------------------------------------------------------------ the sample data


def test_default_threshold_on_the_sample_data(tmp_path):
    """33 ms windows, cdframe and histogram, three window phases (see evtui/cache/quality.py)."""
    with SemanticCache.open(tmp_path / "q") as c:
        st_ = measure_sample(c, ROOT / "sample_data")
    assert st_.lookups > 2000
    assert st_.false_hit_rate <= 0.005  # content differs: the source shows another segment
    assert st_.label_false_hit_rate <= 0.005  # majority segment differs (straddling windows)
    assert st_.moving_hit_rate >= 0.25  # consecutive frames of one motion are reused
    # The sample's static stretches are sensor noise only: views with different scene_ids
    # look alike there, so the fingerprint must not (and does not) pair them up.
    assert st_.static_hits == 0
