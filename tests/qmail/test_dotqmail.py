"""dotqmail.parse_dotqmail/words/program_kind: dot-qmail lines as qmail-local reads them."""

from hypothesis import given
from hypothesis import strategies as st

from qmailverify.qmail import dotqmail as dq
from qmailverify.qmail.dotqmail import Line, parse_dotqmail


def kinds(content, executable=False):
    return [(l.kind, l.text) for l in parse_dotqmail(content, executable).lines]


def test_vpopmail_default_line_is_one_program_kind():
    p = parse_dotqmail(b"| /home/vpopmail/bin/vdelivermail '' delete\n")
    assert p.lines == (Line(dq.PROGRAM, b" /home/vpopmail/bin/vdelivermail '' delete"),)
    assert p.defer == "" and not p.empty


def test_every_kind_of_line():
    content = (b"# a comment\n./Maildir/\n/var/mail/bob\n|preline procmail\n"
               b"&bob@example.com\nalice\n+ignored\n")
    assert kinds(content) == [
        (dq.COMMENT, b"# a comment"), (dq.MAILDIR, b"./Maildir/"),
        (dq.MBOX, b"/var/mail/bob"), (dq.PROGRAM, b"preline procmail"),
        (dq.FORWARD, b"bob@example.com"), (dq.FORWARD, b"alice"),
        (dq.IGNORED, b"+ignored")]


def test_trailing_blanks_cut_and_missing_newline_supplied():
    assert kinds(b"./Maildir/ \t\n&x@y \t") == [(dq.MAILDIR, b"./Maildir/"), (dq.FORWARD, b"x@y")]


def test_maildir_or_mbox_by_the_last_byte_after_the_blanks_are_cut():
    assert kinds(b"./Maildir/  \n./mbox\n") == [(dq.MAILDIR, b"./Maildir/"), (dq.MBOX, b"./mbox")]


def test_nul_ends_the_text_of_a_line():
    assert kinds(b"&a@b\0junk\n") == [(dq.FORWARD, b"a@b")]


def test_empty_file_means_default_delivery():
    assert parse_dotqmail(b"").empty


def test_blank_first_line_defers_later_blank_lines_are_skipped():
    assert parse_dotqmail(b"\n./Maildir/\n").defer == dq.DEFER_BLANK
    assert parse_dotqmail(b" \t\n").defer == dq.DEFER_BLANK
    p = parse_dotqmail(b"./Maildir/\n\n\n&a@b\n")
    assert p.defer == "" and len(p.lines) == 2


def test_plus_list_makes_later_file_and_program_lines_defer():
    p = parse_dotqmail(b"&a@b\n+list\n|prog\n")
    assert p.defer == dq.DEFER_PROG_X and [l.kind for l in p.lines] == [dq.FORWARD, dq.LIST]
    assert parse_dotqmail(b"+list\n./Maildir/\n").defer == dq.DEFER_FILE_X
    assert parse_dotqmail(b"+list\n&a@b\n").defer == ""
    assert parse_dotqmail(b"+lists\n|prog\n").defer == ""        # only '+list' itself


def test_execute_bit_defers_file_and_program_lines_from_the_start():
    assert parse_dotqmail(b"./Maildir/\n", executable=True).defer == dq.DEFER_FILE_X
    assert parse_dotqmail(b"&a@b\n", executable=True).defer == ""


def test_words_like_sh():
    assert dq.words(b" /bin/vdelivermail '' bounce-no-mailbox") == [b"/bin/vdelivermail", b"", b"bounce-no-mailbox"]
    assert dq.words(b'bouncesaying "It\'s \\"gone\\"."') == [b"bouncesaying", b"It's \"gone\"."]
    assert dq.words(b"exec bouncesaying x\\ y") == [b"bouncesaying", b"x y"]
    assert dq.words(b"a#b") == [b"a#b"]
    for opaque in (b"vdelivermail '' $X", b"prog; bouncesaying x", b"prog > f", b"X=1 prog",
                   b"'unterminated", b'"$HOME"', b"~/bin/prog", b"prog `id`", b""):
        assert dq.words(opaque) is None, opaque


def test_program_names():
    assert dq.program_kind(b" /home/vpopmail/bin/vdelivermail '' delete") == dq.Program(dq.VDELIVERMAIL, (b"", b"delete"))
    assert dq.program_kind(b"/usr/bin/bouncesaying 'No such user.'") == dq.Program(dq.BOUNCESAYING, (b"No such user.",))
    assert dq.program_kind(b"preline /usr/bin/procmail") == dq.Program("")
    assert dq.program_kind(b"bouncesaying x | cat") == dq.Program("")


@given(st.binary(max_size=300), st.booleans())
def test_parse_is_total_and_keeps_order(content, executable):
    p = parse_dotqmail(content, executable)
    assert p.empty == (content == b"")
    for line in p.lines:
        assert b"\n" not in line.text and b"\0" not in line.text
    # the same bytes split anywhere give the same answer: parse is over the whole file
    assert parse_dotqmail(content, executable) == p


@given(st.lists(st.sampled_from([b"./Maildir/", b"&a@b", b"|prog", b"# c", b"x@y", b"+list", b""]),
                min_size=1, max_size=8))
def test_a_line_after_plus_list_never_runs_a_file_or_program(lines):
    p = parse_dotqmail(b"\n".join(lines) + b"\n")
    seen_list = False
    for line in p.lines:
        assert not (seen_list and line.kind in (dq.MAILDIR, dq.MBOX, dq.PROGRAM))
        seen_list = seen_list or line.kind == dq.LIST
