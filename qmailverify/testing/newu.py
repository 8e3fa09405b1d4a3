"""users/assign to users/cdb, exactly as qmail-newu builds it.

'=local:user:uid:gid:home:dash:ext:' lines give the key '!' + local +
NUL (lowercased); '+prefix:...' lines give '!' + prefix (lowercased) and
add the prefix's last character to the wildcard characters, stored under
the empty key.  The value is the rest of the line with its first six
colons turned into NULs, ending before the sixth.  A line '.' ends the
file.  Used to build fixtures and the demo tree; cdbmake writes the cdb.
"""


class AssignError(ValueError):
    pass


def compile_assign(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) records of users/cdb, in qmail-newu's order."""
    records = []
    wild = bytearray()
    lines = data.split(b"\n")
    for n, line in enumerate(lines):
        if line.startswith(b"."):
            break
        if n == len(lines) - 1:
            raise AssignError("users/assign must end with a line '.'")
        i = line.find(b":")
        if b"\0" in line or i <= 0:
            raise AssignError(f"bad line {n + 1}: {line!r}")
        if line[:1] == b"+":
            key = b"!" + line[1:i].lower()
            if i >= 2 and line[i - 1] not in wild:
                wild.append(line[i - 1])
        else:
            key = b"!" + line[1:i].lower() + b"\0"
        rest = line[i + 1:] + b"\n"
        parts = rest.split(b":", 6)
        if len(parts) < 7:
            raise AssignError(f"bad line {n + 1}: fewer than seven fields: {line!r}")
        records.append((key, b"\0".join(parts[:6])))
    records.append((b"", bytes(wild)))
    return records
