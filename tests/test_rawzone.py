"""The raw zone's layout: one safe, distinct directory per symbol, even on a case-insensitive filesystem."""

from __future__ import annotations

from etl.rawzone import decode_symbol, encode_symbol


def test_case_only_twins_never_share_a_directory_on_a_case_insensitive_filesystem() -> None:
    segments = {encode_symbol(symbol).casefold() for symbol in ("ABC", "abc", "Abc", "aBC")}
    assert len(segments) == 4
    assert encode_symbol("NABIL") == "NABIL"  # upper-case symbols keep the directories they always had
    assert [decode_symbol(encode_symbol(s)) for s in ("abc", "NICAD85/86", "A.B")] == ["abc", "NICAD85/86", "A.B"]
