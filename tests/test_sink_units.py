"""The sink's pure parts: batch cutting and re-cutting, tokens, recent ids, row mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from devkit.sample import sample_events
from sinks.batching import (
    Batch,
    Batcher,
    BatchRecord,
    RecentIds,
    Record,
    ResumeKind,
    TopicPartition,
    batch_token,
    plan_resume,
)
from sinks.rows import SPECS, decode_batch, row_ids, to_columns
from streams.core.contracts import (
    CorrectionCommand,
    DiscrepancyEvent,
    PreflightResult,
    ProofCheckEvent,
    parse_contract,
    to_json_bytes,
    to_json_dict,
)

TP = TopicPartition("recon.discrepancies", 3)


def recs(*offsets: int) -> list[Record]:
    return [Record(o, f"v{o}".encode()) for o in offsets]


# --- cutting -----------------------------------------------------------------------------------


def test_cuts_by_size_then_by_time() -> None:
    b = Batcher(max_rows=3, max_wait_s=1.0)
    b.assign(TP, start=10)
    b.add(TP, recs(10, 11, 12, 13), now=0.0)
    [full] = b.cut(now=0.1)
    assert (full.first_offset, full.last_offset, len(full.records)) == (10, 12, 3)
    assert b.cut(now=0.5) == []  # one record left, not waited long enough
    [late] = b.cut(now=1.2)
    assert (late.first_offset, late.last_offset) == (13, 13)
    assert late.commit_offset == 14


def test_batch_starts_at_the_position_not_the_first_record() -> None:
    # Offsets 20-21 were compacted away: the batch still starts where the consumer resumed,
    # so a replay after a restart covers the same range.
    b = Batcher(max_rows=10, max_wait_s=1.0)
    b.assign(TP, start=20)
    b.add(TP, recs(22, 23), now=0.0)
    [batch] = b.cut(now=0.0, flush_all=True)
    assert (batch.first_offset, batch.last_offset) == (20, 23)


def test_redelivered_records_are_ignored() -> None:
    b = Batcher(max_rows=10, max_wait_s=1.0)
    b.assign(TP, start=0)
    b.add(TP, recs(0, 1), now=0.0)
    b.add(TP, recs(1, 2), now=0.0)
    [batch] = b.cut(now=5.0)
    assert [r.offset for r in batch.records] == [0, 1, 2]


def test_fetch_sized_adds_cut_like_record_by_record() -> None:
    """Whole fetches are buffered at once; re-deliveries and gaps still cut the same batches."""
    import random

    rng = random.Random(7)
    for _ in range(50):
        offsets, o = [], 0
        for _ in range(rng.randrange(1, 60)):
            o += rng.choice([1, 1, 1, 2, 5])  # gaps: compaction
            offsets.append(o)
        chunks, i = [], 0
        while i < len(offsets):
            n = rng.randrange(1, 12)
            back = rng.choice([0, 0, 0, 2])  # a re-delivery overlapping the previous fetch
            chunks.append(offsets[max(0, i - back) : i + n])
            i += n
        bulk, single = Batcher(max_rows=7, max_wait_s=1.0), Batcher(max_rows=7, max_wait_s=1.0)
        for b in (bulk, single):
            b.assign(TP, start=0)
        for chunk in chunks:
            bulk.add(TP, recs(*chunk), now=0.0)
            for offset in chunk:
                single.add(TP, recs(offset), now=0.0)
        got, want = (
            [(x.first_offset, x.last_offset, [r.offset for r in x.records]) for x in batches]
            for batches in (bulk.cut(9.0, flush_all=True), single.cut(9.0, flush_all=True))
        )
        assert got == want and sum(len(w[2]) for w in want) == len(offsets)


def test_forced_cuts_override_size_and_time() -> None:
    b = Batcher(max_rows=2, max_wait_s=0.1)
    b.assign(TP, start=100, cuts=[104, 106])
    b.add(TP, recs(100, 101, 102), now=0.0)
    assert b.cut(now=10.0) == []  # neither full nor late counts before the cut point is passed
    b.add(TP, recs(103, 104, 105, 106, 107), now=0.0)
    first, second = b.cut(now=0.0)[:2]
    assert (first.first_offset, first.last_offset, first.forced) == (100, 104, True)
    assert (second.first_offset, second.last_offset, second.forced) == (105, 106, True)
    assert len(first.records) == 5  # larger than max_rows: the recorded range wins


def test_forced_cut_over_a_compacted_end_uses_the_position() -> None:
    b = Batcher(max_rows=100, max_wait_s=1.0)
    b.assign(TP, start=0, cuts=[5])
    b.add(TP, recs(0, 1, 2), now=0.0)  # 3-5 compacted away
    assert b.cut(now=0.0) == []
    assert b.waiting_for_cuts() == [TP]
    b.note_position(TP, 6)
    [batch] = b.cut(now=0.0)
    assert (batch.first_offset, batch.last_offset) == (0, 5)
    assert b.waiting_for_cuts() == []


def test_revoke_forgets_the_partition() -> None:
    b = Batcher(max_rows=10, max_wait_s=1.0)
    b.assign(TP, start=0)
    b.add(TP, recs(0), now=0.0)
    b.revoke(TP)
    assert b.buffered() == 0 and b.cut(now=9.0, flush_all=True) == []
    with pytest.raises(KeyError):
        b.add(TP, recs(1), now=0.0)


# --- resuming ----------------------------------------------------------------------------------


def rec(first: int, last: int) -> BatchRecord:
    return BatchRecord(TP, first, last, last - first + 1, f"t{first}")


def test_finding_22_a_compacted_replay_keeps_its_recorded_token() -> None:
    """Inserted 100-109, crashed before the commit, then compaction removed 100-106: the re-cut
    batch must carry the token of the insert, or its survivors would be counted twice."""
    inserted = Batch.of(TP, 100, 109, recs(*range(100, 110)))
    recorded = BatchRecord(TP, 100, 109, 10, inserted.token)
    plan = plan_resume(100, [recorded], log_start=0, log_end=200)
    b = Batcher(max_rows=1000, max_wait_s=1.0)
    b.assign(TP, start=100, cuts=plan.cuts, tokens=plan.tokens)
    b.add(TP, recs(107, 108, 109, 110), now=0.0)  # what compaction left, and one more
    replayed = b.cut(now=0.0)[0]
    assert (replayed.first_offset, replayed.last_offset) == (100, 109)
    assert len(replayed.records) == 3
    assert replayed.token == inserted.token
    fresh = Batch.of(TP, 100, 109, recs(107, 108, 109))  # what a recomputed token would be
    assert fresh.token != inserted.token


def test_resume_fresh_when_the_recorded_batch_was_committed() -> None:
    plan = plan_resume(51, [rec(40, 50)], log_start=0, log_end=100)
    assert plan.kind is ResumeKind.FRESH and plan.cuts == () and plan.seek_to is None


def test_resume_recuts_the_uncommitted_chain() -> None:
    plan = plan_resume(40, [rec(40, 50), rec(51, 60), rec(40, 50)], log_start=0, log_end=100)
    assert plan.kind is ResumeKind.RECUT
    assert plan.cuts == (50, 60) and plan.seek_to is None


def test_resume_gives_unrecorded_gaps_their_own_batch() -> None:
    # 40-44 inserted nothing (all bad records), so it was not recorded; 45-50 was.
    plan = plan_resume(40, [rec(45, 50)], log_start=0, log_end=100)
    assert plan.cuts == (44, 50)


def test_resume_never_committed_seeks_to_the_first_recorded_range() -> None:
    plan = plan_resume(None, [rec(7, 9)], log_start=0, log_end=100)
    assert plan.kind is ResumeKind.RECUT and plan.seek_to == 7 and plan.cuts == (9,)


def test_resume_ignores_ranges_outside_the_log() -> None:
    # A topic deleted and created again: old ranges lie beyond the new log's end.
    assert plan_resume(None, [rec(500, 600)], log_start=0, log_end=10).kind is ResumeKind.FRESH
    # Deleted by retention.
    assert plan_resume(None, [rec(0, 5)], log_start=50, log_end=90).kind is ResumeKind.FRESH


def test_resume_inside_a_range_is_inconsistent_but_realigns() -> None:
    plan = plan_resume(45, [rec(40, 50)], log_start=0, log_end=100)
    assert plan.kind is ResumeKind.INCONSISTENT and plan.cuts == (50,)


def test_token_depends_on_range_and_bytes() -> None:
    a = batch_token(TP, 0, 2, recs(0, 1, 2))
    assert a == batch_token(TP, 0, 2, recs(0, 1, 2))
    assert a != batch_token(TP, 0, 3, recs(0, 1, 2))
    assert a != batch_token(TP, 0, 2, [Record(0, b"other"), *recs(1, 2)])
    assert a.startswith("proofrecon-sink:recon.discrepancies:3:0-2:")


def test_token_is_stable_across_sink_versions() -> None:
    """A batch recorded by an older sink is replayed by a newer one with the same token: these
    values were computed by the first version of `batch_token`."""
    records = [Record(5, b'{"a":1}'), Record(6, None), Record(8, b""), Record(9, b'{"b":22}')]
    want = "proofrecon-sink:recon.discrepancies:3:5-9:55423c68649e5ced"
    assert batch_token(TP, 5, 9, records) == want
    assert Batch.of(TP, 5, 9, records).token_from(b'{"a":1}{"b":22}') == want
    full = [Record(i, b'{"x":%d}' % i) for i in range(3)]
    assert batch_token(TP, 0, 2, full).endswith(":3:0-2:a32deadcb8d9c40b")


def test_recent_ids_bounded_and_within_batch() -> None:
    ids = RecentIds(capacity=4)
    assert ids.fresh_indexes(["a", "b", "a", "c"]) == [0, 1, 3]
    ids.add_all(["a", "b"])  # a full generation (capacity / 2)
    assert "a" in ids and ids.fresh_indexes(["b", "x"]) == [1]
    ids.add_all(["c", "d"])  # the next one: the oldest generation is dropped
    assert "a" not in ids and "c" in ids and "d" in ids
    assert len(ids) <= 4
    assert RecentIds(0).fresh_indexes(["x", "x"]) == [0, 1]  # turned off
    ids.discard_all(["c"])
    assert "c" not in ids and "d" in ids


# --- rows --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_set():  # type: ignore[no-untyped-def]
    start = datetime(2026, 1, 5, 10, tzinfo=UTC)
    return sample_events(start=start, hours=2, mints=["http://m.test/"], per_hour=20, seed=4)


@pytest.mark.parametrize(
    ("kind", "attr", "model"),
    [
        ("discrepancies", "discrepancies", DiscrepancyEvent),
        ("proof_checks", "proof_checks", ProofCheckEvent),
        ("preflight_results", "preflights", PreflightResult),
        ("corrections", "corrections", CorrectionCommand),
    ],
)
def test_projection_matches_the_contract(  # type: ignore[no-untyped-def]
    sample_set, kind, attr, model
) -> None:
    """Every valid event decodes, and each stored value equals the contract model's."""
    events = getattr(sample_set, attr)
    spec = SPECS[kind]
    decoded = decode_batch(spec, [Record(i, to_json_bytes(e)) for i, e in enumerate(events)])
    assert decoded.bad == [] and len(decoded.rows) == len(events)
    columns = to_columns(spec, decoded.rows, decoded.offsets, "t", 1)
    assert list(columns) == spec.column_names
    for i, event in enumerate(events):
        parsed = parse_contract(model, to_json_bytes(event))
        wire = to_json_dict(parsed)
        for name, values in columns.items():
            if name in wire and not isinstance(wire[name], dict | list):
                expected = wire[name]
                if name.endswith("_at"):
                    expected = int(datetime.fromisoformat(expected).timestamp() * 1000)
                if name == "mint_url":  # stored normalised, whatever the producer sent
                    expected = expected.rstrip("/")
                assert values[i] == expected, (name, i)
    assert columns["_offset"] == list(range(len(events)))
    assert set(columns["_topic"]) == {"t"} and set(columns["_partition"]) == {1}


def test_preflight_nested_fields(sample_set) -> None:  # type: ignore[no-untyped-def]
    spec = SPECS["preflight_results"]
    events = sample_set.preflights
    decoded = decode_batch(spec, [Record(i, to_json_bytes(e)) for i, e in enumerate(events)])
    columns = to_columns(spec, decoded.rows, decoded.offsets, "t", 0)
    for i, event in enumerate(events):
        assert columns["high"][i] == event.severity_counts.high
        assert columns["discrepancy_types"][i] == [d.type.value for d in event.discrepancies]


def test_bad_records_are_reported_not_raised(sample_set) -> None:  # type: ignore[no-untyped-def]
    spec = SPECS["discrepancies"]
    good = [to_json_bytes(e) for e in sample_set.discrepancies[:3]]
    wrong_enum = json.loads(good[0])
    wrong_enum["severity"] = "CRITICAL"
    records = [
        Record(0, good[0]),
        Record(1, b"{broken"),
        Record(2, json.dumps(wrong_enum).encode()),
        Record(3, None),
        Record(4, good[1]),
        Record(5, b"[1, 2]"),
        Record(6, good[2]),
    ]
    decoded = decode_batch(spec, records)
    assert decoded.offsets == [0, 4, 6]
    assert [(b.offset, b.reason) for b in decoded.bad] == [
        (1, "DECODE_ERROR"),
        (2, "VALIDATION_ERROR"),
        (3, "EMPTY"),
        (5, "VALIDATION_ERROR"),
    ]


def test_only_projected_fields_are_stored(sample_set) -> None:  # type: ignore[no-untyped-def]
    spec = SPECS["discrepancies"]
    event = to_json_dict(sample_set.discrepancies[0])
    event["secret"] = "a-proof-secret-that-must-never-be-stored"
    decoded = decode_batch(spec, [Record(0, json.dumps(event).encode())])
    columns = to_columns(spec, decoded.rows, decoded.offsets, "t", 0)
    assert "secret" not in columns
    assert "a-proof-secret" not in repr(columns)


def test_epoch_ms_and_mint_normalisation(sample_set) -> None:  # type: ignore[no-untyped-def]
    spec = SPECS["proof_checks"]
    event = to_json_dict(sample_set.proof_checks[0])
    at = datetime(2026, 1, 5, 10, 30, tzinfo=UTC)
    event["checked_at"] = int(at.timestamp() * 1000)
    decoded = decode_batch(spec, [Record(0, json.dumps(event).encode())])
    columns = to_columns(spec, decoded.rows, decoded.offsets, "t", 0)
    assert columns["checked_at"] == [int(at.timestamp() * 1000)]
    assert columns["mint_url"] == ["http://m.test"]
    assert row_ids(spec, decoded.rows) == [event["event_id"]]


def test_upper_case_ys_are_stored_lower_case(sample_set) -> None:  # type: ignore[no-untyped-def]
    spec = SPECS["discrepancies"]
    event = to_json_dict(sample_set.discrepancies[0])
    event["Y"] = event["Y"].upper().replace("0X", "0x")
    decoded = decode_batch(spec, [Record(0, json.dumps(event).encode())])
    assert to_columns(spec, decoded.rows, decoded.offsets, "t", 0)["Y"] == [event["Y"].lower()]
