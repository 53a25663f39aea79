"""A small writer of Megatron's MMIDIDX `.bin`/`.idx` pair, written from the format's description
(independent of foldmoe's writer): the e2e tests make their indexed corpora with it."""
import struct


def write_megatron(prefix, docs, dtype_code=8, fmt_char="H"):
    """Megatron's MMIDIDX files: .bin = the tokens of every document end to end; .idx = header,
    sequence lengths (int32), byte pointers (int64), document indices (int64). dtype_code 8 is
    uint16 ("H"), 4 int32 ("i")."""
    with open(prefix + ".bin", "wb") as f:
        for d in docs:
            f.write(struct.pack(f"<{len(d)}{fmt_char}", *d))
    size = struct.calcsize(fmt_char)
    lengths = [len(d) for d in docs]
    pointers, p = [], 0
    for n in lengths:
        pointers.append(p)
        p += n * size
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", dtype_code))
        f.write(struct.pack("<Q", len(docs)))
        f.write(struct.pack("<Q", len(docs) + 1))
        f.write(struct.pack(f"<{len(docs)}i", *lengths))
        f.write(struct.pack(f"<{len(docs)}q", *pointers))
        f.write(struct.pack(f"<{len(docs) + 1}q", *range(len(docs) + 1)))
