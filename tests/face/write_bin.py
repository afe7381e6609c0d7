#!/usr/bin/env python3
"""Writes an insightface verification set (.bin): a pickle of (bins, issame_list).

  write_bin.py OUT STYLE IMAGE... --issame 1,0,...   bins = the image files' bytes
  write_bin.py OUT STYLE --synthetic N               N pairs of made-up bytes (below)

STYLE is how the file was written in the wild:
  py2      Python 2's cPickle, protocol 2: images as str (SHORT_BINSTRING/BINSTRING),
           lists in APPENDS batches of 1000, BINPUT/LONG_BINPUT memo puts. Python 3
           cannot write str opcodes, so this emitter writes the bytes Python 2 wrote.
  2 .. 5   Python 3's pickle.dump at that protocol (2: bytes as _codecs.encode calls).

--synthetic N: image i is bytes((i * 7 + k) % 256 for k in range(1 + (i * 37) % 600)),
pair i is same when i % 3 == 0 (tests/test_verification_bin.cpp builds the same).
"""
import argparse
import pickle
import struct


def synthetic(n):
    bins = [bytes((i * 7 + k) % 256 for k in range(1 + (i * 37) % 600)) for i in range(2 * n)]
    return bins, [i % 3 == 0 for i in range(n)]


class Py2Pickler:
    """The opcodes Python 2.7's cPickle.dump(obj, f, 2) writes for (list of str, list of bool)."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.memo = 0

    def put(self):
        self.out += b"q" + bytes([self.memo]) if self.memo < 256 else b"r" + struct.pack("<I", self.memo)
        self.memo += 1

    def string(self, s):
        self.out += (b"U" + bytes([len(s)])) if len(s) < 256 else (b"T" + struct.pack("<i", len(s)))
        self.out += s
        self.put()

    def items(self, values, one):
        self.out += b"]"
        self.put()
        for start in range(0, len(values), 1000):
            batch = values[start:start + 1000]
            if len(batch) == 1:
                one(batch[0])
                self.out += b"a"
                continue
            self.out += b"("
            for v in batch:
                one(v)
            self.out += b"e"

    def dump(self, bins, issame):
        self.items(bins, self.string)
        self.items(issame, lambda b: self.out.extend(b"\x88" if b else b"\x89"))
        self.out += b"\x86"
        self.put()
        self.out += b"."
        return bytes(self.out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("style", choices=["py2", "2", "3", "4", "5"])
    ap.add_argument("images", nargs="*")
    ap.add_argument("--issame", default="")
    ap.add_argument("--synthetic", type=int, default=0)
    a = ap.parse_args()
    if a.synthetic:
        bins, issame = synthetic(a.synthetic)
    else:
        bins = [open(p, "rb").read() for p in a.images]
        issame = [s == "1" for s in a.issame.split(",") if s]
    with open(a.out, "wb") as f:
        if a.style == "py2":
            f.write(Py2Pickler().dump(bins, issame))
        else:
            pickle.dump((bins, issame), f, protocol=int(a.style))


if __name__ == "__main__":
    main()
