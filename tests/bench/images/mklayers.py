#!/usr/bin/env python3
"""Writes the layers of the image pull.sh pushes, as uncompressed tars, the same for the
same seed: a base of busybox with its applet links, then layers that mix what real images
hold, incompressible files (shared libraries, media, packed data) and compressible ones
(text, sources, scripts), in many small files and a few large ones.

    mklayers.py SEED OUTDIR

Writes OUTDIR/layer-1.tar ... layer-4.tar, base first, and prints one line per layer:
"NAME FILES BYTES" (regular files and the bytes of their content)."""
import io
import math
import os
import random
import subprocess
import sys
import tarfile

MTIME = 1767225600  # 2026-01-01T00:00:00Z: no time of the run leaks into the layers
MIB = 1 << 20


class Layer:
    def __init__(self, path):
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)
        self.dirs = set()
        self.files = 0
        self.bytes = 0

    def _info(self, name, kind, mode):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = MTIME
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def _parents(self, name):
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                self.tar.addfile(self._info(d, tarfile.DIRTYPE, 0o755))

    def file(self, name, data, mode=0o644):
        self._parents(name)
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))
        self.files += 1
        self.bytes += len(data)

    def symlink(self, name, target):
        self._parents(name)
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def close(self):
        self.tar.close()


def text(rng, vocab, size):
    """About size bytes of lines of words, common words far more often than rare ones
    (Zipf's law): compresses about 3:1 with gzip, as text does."""
    out = []
    n = 0
    while n < size:
        line = " ".join(rng.choices(vocab[0], cum_weights=vocab[1], k=rng.randint(4, 14))) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def sizes(rng, count, total):
    """count file sizes of a log-normal spread (many small files, a few large) that add
    up to about total bytes."""
    raw = [math.exp(rng.gauss(0, 1.3)) for _ in range(count)]
    scale = total / sum(raw)
    return [max(64, int(r * scale)) for r in raw]


def base(rng, path):
    layer = Layer(path)
    busybox = "/bin/busybox"
    with open(busybox, "rb") as f:
        layer.file("bin/busybox", f.read(), 0o755)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in sorted(set(applets.stdout.split()) - {"busybox"}):
        layer.symlink("bin/" + applet, "busybox")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n")
    layer.file("etc/group", b"root:x:0:\napp:x:1000:\n")
    layer.file("etc/os-release", b'NAME="gantry bench"\nID=bench\n')
    for d in ("tmp", "root", "srv", "var/log"):
        layer._parents(d + "/x")
    layer.close()
    return layer


def mixed(rng, vocab, path, prefix, n_binary, binary_bytes, n_text, text_bytes):
    layer = Layer(path)
    entries = [("bin", s) for s in sizes(rng, n_binary, binary_bytes)]
    entries += [("text", s) for s in sizes(rng, n_text, text_bytes)]
    for i, (kind, size) in enumerate(entries):
        d = "%s/%s/d%02d" % (prefix, kind, i % 37)
        if kind == "bin":
            layer.file("%s/lib%04d.so" % (d, i), rng.randbytes(size), 0o755)
        else:
            layer.file("%s/f%04d.txt" % (d, i), text(rng, vocab, size))
    layer.close()
    return layer


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: mklayers.py SEED OUTDIR")
    rng = random.Random(int(sys.argv[1]))
    out = sys.argv[2]
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(2, 10)))
             for _ in range(4000)]
    cum, total = [], 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 1)
        cum.append(total)
    vocab = (words, cum)
    layers = [
        ("base", base(rng, os.path.join(out, "layer-1.tar"))),
        # shared libraries and their data files
        ("usr-lib", mixed(rng, vocab, os.path.join(out, "layer-2.tar"), "usr/lib",
                          60, 17 * MIB, 400, 4 * MIB)),
        # documentation, locales, sources: many small text files
        ("usr-share", mixed(rng, vocab, os.path.join(out, "layer-3.tar"), "usr/share",
                            20, 2 * MIB, 3000, 34 * MIB)),
        # the application: code, assets, a packed bundle
        ("app", mixed(rng, vocab, os.path.join(out, "layer-4.tar"), "srv/app",
                      12, 11 * MIB, 800, 12 * MIB)),
    ]
    for name, layer in layers:
        print(name, layer.files, layer.bytes)


if __name__ == "__main__":
    main()
