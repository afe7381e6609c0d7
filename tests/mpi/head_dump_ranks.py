#!/usr/bin/env python3
"""coco-bench head --dump under mpirun equals one process.

Writes features, centroids and labels (.npy, plain Python: CI has no NumPy), runs
the head's check mode in one process and under mpiexec with each given rank count,
and compares the three dumped files. The batch (10 rows) and the classes (7) do not
divide by 3 or 4, and --chunk 3 puts chunk edges inside shards, so the gather has to
put uneven shards back in row and class order.

usage: head_dump_ranks.py COCO_BENCH MPIEXEC WORKDIR NP [NP ...]
"""
import os
import random
import struct
import subprocess
import sys

M, D, K = 10, 6, 7


def write_npy(path, descr, shape, fmt, values):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += ' ' * (63 - (10 + len(header)) % 64) + '\n'
    with open(path, 'wb') as f:
        f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header.encode())
        f.write(struct.pack('<%d%s' % (len(values), fmt), *values))


def read_f32(path):
    data = open(path, 'rb').read()
    (hlen,) = struct.unpack('<H', data[8:10])
    body = data[10 + hlen:]
    return struct.unpack('<%df' % (len(body) // 4), body)


def run(cmd):
    print('+', ' '.join(cmd), flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    print(r.stdout, end='')
    if r.returncode != 0:
        sys.exit('exit %d from %s' % (r.returncode, cmd[0]))


def main():
    bench, mpiexec, work, nps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    os.makedirs(work, exist_ok=True)
    rng = random.Random(5)
    inputs = {name: os.path.join(work, name + '.npy') for name in ('x', 'c', 'y')}
    write_npy(inputs['x'], '<f4', '(%d, %d)' % (M, D), 'f', [rng.uniform(-1, 1) for _ in range(M * D)])
    write_npy(inputs['c'], '<f4', '(%d, %d)' % (K, D), 'f', [rng.uniform(-1, 1) for _ in range(K * D)])
    write_npy(inputs['y'], '<i8', '(%d,)' % M, 'q', [rng.randrange(K) for _ in range(M)])
    head = [bench, 'head', '--features', inputs['x'], '--centroids', inputs['c'], '--labels', inputs['y'],
            '--scale', '4', '--margin-type', 'ARCFACE', '--margin', '0.3', '--chunk', '3', '--threads', '1']
    run(head + ['--dump', os.path.join(work, 'np1')])
    files = ('loss.npy', 'grad_features.npy', 'grad_centroids.npy')
    reference = {f: read_f32(os.path.join(work, 'np1', f)) for f in files}
    for np in nps:
        out = os.path.join(work, 'np' + np)
        run([mpiexec, '-n', np, '--oversubscribe'] + head + ['--dump', out])
        for f in files:
            got = read_f32(os.path.join(out, f))
            want = reference[f]
            assert len(got) == len(want), '%s: %d values on %s ranks, %d in one process' % (f, len(got), np, len(want))
            worst = max(abs(a - b) / max(1e-3, abs(b)) for a, b in zip(got, want))
            print('%s ranks, %s: %d values, worst relative difference %.2e' % (np, f, len(got), worst))
            assert worst < 1e-5, '%s on %s ranks differs from one process by %.2e' % (f, np, worst)
    print('sharded head dumps equal one process')


if __name__ == '__main__':
    main()
