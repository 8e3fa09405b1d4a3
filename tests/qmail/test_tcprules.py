"""Our tcprules reader where the fuzz harness (qmailverify.testing.fuzz)
caught it out, against Debian's real tcprules: a '\\r' does not end a
line, range numbers wrap as tcprules' unsigned long does (and no length
of digits raises anything but RulesError), and a refused line's message
is printable."""

import shutil
import subprocess

import cdblib
import pytest

from qmailverify.qmail.tcprules import RulesError, parse, records


def real_records(tmp_path, text: bytes):
    """The records the real tcprules makes of text, None if it refuses it."""
    if shutil.which("tcprules") is None:
        pytest.skip("tcprules (Debian's ucspi-tcp) is not installed")
    cdb = tmp_path / "r.cdb"
    r = subprocess.run(["tcprules", str(cdb), str(tmp_path / "r.tmp")], input=text,
                       capture_output=True)
    if r.returncode != 0:
        return None
    return list(cdblib.Reader(data=cdb.read_bytes()).iteritems())


def ours(text: bytes):
    try:
        return records(parse(text))
    except RulesError:
        return None


@pytest.mark.parametrize("text", [
    b"# a comment\r1.2.3.4:deny\n",             # one comment line, not a deny rule
    b"1.2.3.4:deny\r5.6.7.8:allow\n",           # one line tcprules refuses
    b"1.2.3.4:allow,X=\"a\rb\"\n:deny\r\n",
])
@pytest.mark.system
def test_a_carriage_return_does_not_end_a_line(tmp_path, text):
    assert ours(text) == real_records(tmp_path, text)


@pytest.mark.parametrize("text", [
    b"1.2.3.18446744073709551617-3:allow\n",    # 2**64 + 1 is 1
    b"1.2.3.0-18446744073709551618:deny\n",
    b"1.2.3." + b"9" * 5000 + b"-3:allow\n",    # more digits than int() takes
    b"1.2.3.0-" + b"7" * 5000 + b":allow\n",
])
@pytest.mark.system
def test_range_numbers_wrap_like_an_unsigned_long(tmp_path, text):
    assert ours(text) == real_records(tmp_path, text)


@pytest.mark.parametrize("text", [b"1.2.3.4:allow\x1b[2J\n", b"1.2.3.4:allow,X=\"\xff\n",
                                  b"1.2.3.\x07-4:allow\n"])
def test_messages_of_refused_lines_are_printable(text):
    with pytest.raises(RulesError) as e:
        records(parse(text))
    assert str(e.value).startswith("unable to parse line 1: ")
    assert all(32 <= ord(ch) <= 126 for ch in str(e.value))
