"""The raw zone's layout: one safe, distinct directory per symbol, even on a case-insensitive filesystem."""

from __future__ import annotations

from etl.rawzone import decode_symbol, encode_symbol


def test_case_only_twins_never_share_a_directory_on_a_case_insensitive_filesystem() -> None:
    segments = {encode_symbol(symbol).casefold() for symbol in ("ABC", "abc", "Abc", "aBC")}
    assert len(segments) == 4
    assert encode_symbol("NABIL") == "NABIL"  # upper-case symbols keep the directories they always had
    assert [decode_symbol(encode_symbol(s)) for s in ("abc", "NICAD85/86", "A.B")] == ["abc", "NICAD85/86", "A.B"]


def test_a_unit_file_is_written_without_dictionary_pages_and_reads_back_the_same(tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from etl.rawzone import RawZone, read_meta

    zone = RawZone(tmp_path)
    table = pa.table({"symbol": ["NABIL"] * 300, "close": [float(day) for day in range(300)]})
    path = zone.write(zone.partition_path("prices", "NABIL"), table, {"symbol": "NABIL"})
    column_chunks = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {encoding for index in range(column_chunks.num_columns)
                 for encoding in column_chunks.column(index).encodings}
    assert not encodings & {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
    assert pq.read_table(path).replace_schema_metadata(None).equals(table)
    assert read_meta(path)["symbol"] == "NABIL"
