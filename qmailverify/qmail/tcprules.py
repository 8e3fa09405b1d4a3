"""tcpserver's rules files, as ucspi-tcp's tcprules and tcpserver read them.

A rules line is ADDRESS:allow or ADDRESS:deny, optionally followed by
instructions ,VAR=<q>value<q> where <q> is whatever character follows
the '='.  Lines starting with '#' and lines without ':' are skipped;
trailing blanks are ignored.

  parse()    each line with the byte spans of its instructions, so that an
             edit can change one instruction and keep every other byte
  records()  the cdb records tcprules makes: key = the address as written
             (a range such as 1.2.3.40-49 gives one key a number), value
             'D\\0' for deny, then 'VAR=value\\0' after a '+' per instruction
  lookup()   the rule tcpserver applies to a client, in its order
"""

from typing import NamedTuple

from qmailverify.clean import visible

ULONG = 1 << 64             # tcprules' scan_ulong() wraps at this


class RulesError(ValueError):
    """A line tcprules would refuse; str() names it."""


def _refused(n: int, body: bytes) -> RulesError:
    """The error for line n, its bytes made visible (a binary file's bytes
    must not reach a terminal), and a carriage return named: a file saved
    with CRLF line ends is refused by tcprules too."""
    why = ""
    if b"\r" in body:
        why = (" (it holds a carriage return, shown as _: the file has CRLF"
               " line ends; tcprules refuses them too)")
    return RulesError(f"unable to parse line {n}: {visible(body).decode()}{why}")


class Instruction(NamedTuple):
    name: bytes
    value: bytes
    quote: int
    start: int        # the span in the line of ',NAME=qvalueq'
    end: int


class Rule(NamedTuple):
    lineno: int
    line: bytes           # as read, with its newline
    address: bytes
    deny: bool
    instructions: list


def parse(text: bytes) -> list:
    """Every line of text: a Rule for a rule, the bytes for anything else.

    Lines end at '\n' only (a '\r' is an ordinary byte, as for tcprules)."""
    out = []
    lines = [line + b"\n" for line in text.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    for n, line in enumerate(filter(None, lines), 1):
        body = line.rstrip(b"\n").rstrip(b" \t")
        colon = body.find(b":")
        if body.startswith(b"#") or colon < 0:
            out.append(line)
            continue
        address, pos = body[:colon], colon + 1
        if body.startswith(b"deny", pos):
            deny, pos = True, pos + 4
        elif body.startswith(b"allow", pos):
            deny, pos = False, pos + 5
        else:
            raise _refused(n, body)
        instructions = []
        while pos < len(body):
            ch = body[pos]
            eq = body.find(b"=", pos)
            if ch != 0x2C or eq < 0 or eq + 1 >= len(body):        # ','
                raise _refused(n, body)
            quote = body[eq + 1]
            close = body.find(bytes([quote]), eq + 2)
            if close < 0:
                raise _refused(n, body)
            instructions.append(Instruction(body[pos + 1:eq], body[eq + 2:close], quote,
                                            pos, close + 1))
            pos = close + 1
        out.append(Rule(n, line, address, deny, instructions))
    return out


def rule_data(rule: Rule) -> bytes:
    data = b"D\0" if rule.deny else b""
    for i in rule.instructions:
        data += b"+" + i.name + b"=" + i.value + b"\0"
    return data


def keys(address: bytes, lineno: int = 0) -> list[bytes]:
    """The cdb keys tcprules makes for an address: the address as written
    (no case folding), or one key a number of a range such as 1.2.3.40-49
    (the top capped at 255, as tcprules does)."""
    if b"=" not in address and b"@" not in address:
        dash = address.find(b"-")
        if dash >= 0:
            left = address.rfind(b".", 0, dash) + 1
            right = address.find(b".", dash + 1)
            right = len(address) if right < 0 else right
            bot = _range_number(address[left:dash], address, lineno)
            top = min(_range_number(address[dash + 1:right], address, lineno), 255)
            return [address[:left] + str(k).encode() + address[right:]
                    for k in range(bot, top + 1)]
    return [address]


def _range_number(text: bytes, address: bytes, lineno: int) -> int:
    """scan_ulong() that must take the whole text (empty is 0), wrapping
    as an unsigned long does."""
    if text and not text.isdigit():
        raise RulesError(f"unable to parse line {lineno}: bad range in {visible(address).decode()}")
    value = 0
    for digit in text:
        value = (value * 10 + digit - 48) % ULONG
    return value


def records(parsed: list) -> list[tuple[bytes, bytes]]:
    out = []
    for item in parsed:
        if isinstance(item, Rule):
            data = rule_data(item)
            out.extend((k, data) for k in keys(item.address, item.lineno))
    return out


class Env(NamedTuple):
    key: bytes | None         # the rule that matched, None for none
    deny: bool
    env: dict                 # VAR -> value (bytes)


def decode(key: bytes | None, data: bytes | None) -> Env:
    if data is None:
        return Env(None, False, {})
    deny, env = False, {}
    for field in data.split(b"\0"):
        if field == b"D":
            deny = True
        elif field.startswith(b"+"):
            name, _, value = field[1:].partition(b"=")
            env[name] = value
    return Env(key, deny, env)


def lookup(get, ip: bytes, host: bytes | None = None, info: bytes | None = None) -> Env:
    """The rule tcpserver applies to a client: get(key) -> data or None is
    the rules cdb (or a dict of the first record per key)."""
    tries = []
    if info:
        tries.append(info + b"@" + ip)
        if host:
            tries.append(info + b"@=" + host)
    tries.append(ip)
    if host:
        tries.append(b"=" + host)
    tries += [ip[:i] for i in range(len(ip), 0, -1) if ip[i - 1:i] == b"."]
    if host:
        tries += [b"=" + host[i:] for i in range(len(host)) if host[i:i + 1] == b"."]
        tries.append(b"=")
    tries.append(b"")
    for key in tries:
        data = get(key)
        if data is not None:
            return decode(key, data)
    return decode(None, None)
