import json

from reports.domain import Counter, document_chunks

EVENT = {
    "id": 7,
    "title": 'Quote " and ünïcode',
    "description": "",
    "date": "2031-01-02",
    "time": "10:30:00",
    "location": "Room",
    "capacity": 5,
    "ignored": "not in the document",
}


def participants(n):
    for i in range(n):
        yield {
            "id": i,
            "full_name": f"P {i}",
            "email": f"p{i}@example.com",
            "enrolled_at": "2030-01-01T00:00:00+00:00",
            "checked_in_at": None if i % 2 else "2030-01-02T09:00:00+00:00",  # null until the door
        }


def test_document_is_the_contracts_shape():
    doc = json.loads("".join(document_chunks(event=EVENT, participants=participants(2), generated_at="now")))
    assert doc == {
        "event": {
            k: EVENT[k] for k in ("id", "title", "description", "date", "time", "location", "capacity")
        },
        "generated_at": "now",
        "participants": list(participants(2)),
        "waitlist": [],
        "participant_count": 2,
    }


def test_the_waiting_list_follows_the_participants_in_order():
    waiting = [
        {
            "id": 10 + i,
            "full_name": f"W {i}",
            "email": f"w{i}@example.com",
            "position": i + 1,
            "joined_at": "t",
        }
        for i in range(3)
    ]
    text = "".join(
        document_chunks(event=EVENT, participants=participants(1), generated_at="now", waitlist=waiting)
    )
    doc = json.loads(text)
    assert doc["waitlist"] == waiting
    assert text.index('"participants"') < text.index('"waitlist"') < text.index('"participant_count"')


def test_empty_event():
    doc = json.loads("".join(document_chunks(event=EVENT, participants=[], generated_at="now")))
    assert (doc["participants"], doc["participant_count"]) == ([], 0)


def test_participants_are_consumed_one_at_a_time():
    consumed = []

    def tracked():
        for row in participants(3):
            consumed.append(row["id"])
            yield row

    counter = Counter()
    chunks = document_chunks(event=EVENT, participants=tracked(), generated_at="now", counter=counter)
    next(chunks)  # the head is written before any participant is read
    assert consumed == []
    next(chunks)
    assert consumed == [0]
    rest = list(chunks)
    assert consumed == [0, 1, 2] and counter.value == 3
    assert rest[-1].endswith('"participant_count": 3}')


def test_head_and_tail_are_the_document_around_its_lists():
    """The database builder writes head + rows + WAITLIST_OPENING + rows + tail: the same text."""
    from reports.domain import WAITLIST_OPENING, document_head, document_tail

    whole = "".join(document_chunks(event=EVENT, participants=participants(0), generated_at="now"))
    assert whole == document_head(event=EVENT, generated_at="now") + WAITLIST_OPENING + document_tail(
        participant_count=0
    )


def test_human_sizes():
    from reports.domain import human_size

    assert [human_size(n) for n in (0, 1, 999, 1000, 14_580_967, 139_000_000, 999_960, 2 * 10**12)] == [
        "0 bytes",
        "1 byte",
        "999 bytes",
        "1.0 kB",
        "14.6 MB",
        "139.0 MB",
        "1.0 MB",
        "2000.0 GB",
    ]


def test_the_output_writes_plain_and_gzip_in_blocks(monkeypatch):
    import gzip

    from reports import output

    monkeypatch.setattr(output, "BLOCK_BYTES", 10)
    pieces = [f'{{"n": {n}}}, '.encode() for n in range(100)]
    with output.DocumentOutput() as out:
        for piece in pieces:
            out.write(piece)
        assert out.plain_bytes > 0  # blocks written before the end
        out.finish()
        plain, compressed = out.plain.read(), out.gzip.read()
    assert plain == b"".join(pieces)
    assert gzip.decompress(compressed) == plain
    assert (out.plain_bytes, out.gzip_bytes) == (len(plain), len(compressed))


def test_a_compression_failure_fails_the_document(monkeypatch):
    """The gzip stream is written by a thread of its own: its error is raised in the writer, and
    the writer is never left waiting on the thread's full queue."""
    import pytest

    from reports import output

    monkeypatch.setattr(output, "BLOCK_BYTES", 10)
    monkeypatch.setattr(output, "QUEUE_BLOCKS", 2)
    with output.DocumentOutput() as out, pytest.raises(ValueError):  # noqa: PT012
        out.gzip.close()  # the compressor's writes now fail
        for n in range(100):
            out.write(f'{{"n": {n}}}, '.encode())
        out.finish()
    assert not out._compressor.is_alive()
