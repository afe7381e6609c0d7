#!/usr/bin/env python3
"""Golden values for the CocoLoss head, computed independently in double precision.

This is a deliberately plain implementation of docs/DESIGN.md, "The loss" (no chunks, no
online softmax, no BLAS, no shared code with coco): it materialises the full M x K
logits and differentiates by the textbook expressions. Inputs come from a fixed LCG
so the file can be regenerated bit for bit:

    python3 tools/golden/coco_head_golden.py > tests/data/coco_head_golden.txt

Each case writes: name, M D K, alpha, mode (EXACT or RENORMALIZE), logit type
(COSINE or INNER_PRODUCT), margin type (NONE, COSFACE, ARCFACE), margin, x (M*D), labels
(M), centroids (K*D), then loss, grad_x (M*D) and grad_c (K*D), one `key n values...`
line each. Values are printed with 17 significant digits.
"""
import math

EPS = 1e-12


class Lcg:
    def __init__(self, seed):
        self.s = seed

    def next(self):  # uniform in [-1, 1)
        self.s = (6364136223846793005 * self.s + 1442695040888963407) % (1 << 64)
        return ((self.s >> 11) / float(1 << 53)) * 2.0 - 1.0


def margin_fn(cos_t, margin_type, m):
    """Target cosine with its margin, and its derivative in cos_t."""
    if margin_type == "COSFACE":
        return cos_t - m, 1.0
    if margin_type == "ARCFACE":
        if cos_t > math.cos(math.pi - m):
            t = math.acos(max(-1.0, min(1.0, cos_t)))
            return math.cos(t + m), math.cos(m) + math.sin(m) * cos_t / math.sin(t)
        return cos_t - m * math.sin(m), 1.0
    return cos_t, 1.0


def head(x, y, c, alpha, mode, logit="COSINE", margin_type="NONE", m=0.0):
    M, K, D = len(x), len(c), len(x[0])
    if logit == "COSINE":
        nx = [math.sqrt(sum(v * v for v in xi) + EPS) for xi in x]
        nc = [math.sqrt(sum(v * v for v in ck) + EPS) for ck in c]
    else:  # INNER_PRODUCT: nothing normalised, no scale
        nx, nc, alpha = [1.0] * M, [1.0] * K, 1.0
    xh = [[v / n for v in xi] for xi, n in zip(x, nx)]
    f = [[alpha * v for v in row] for row in xh]
    ch = [[v / n for v in ck] for ck, n in zip(c, nc)]
    z = [[sum(f[i][d] * ch[k][d] for d in range(D)) for k in range(K)] for i in range(M)]
    loss = 0.0
    G = []
    for i in range(M):
        zi = list(z[i])
        phi, slope = margin_fn(zi[y[i]] / alpha, margin_type, m)
        zi[y[i]] = alpha * phi
        mx = max(zi)
        s = sum(math.exp(v - mx) for v in zi)
        loss += math.log(s) + mx - zi[y[i]]
        p = [math.exp(v - mx) / s for v in zi]
        p[y[i]] -= 1.0
        p[y[i]] *= slope  # chain rule through the margin, back to the raw logit
        G.append([v / M for v in p])
    loss /= M
    if logit != "COSINE":
        gx = [[sum(G[i][k] * c[k][d] for k in range(K)) for d in range(D)] for i in range(M)]
        gc = [[sum(G[i][k] * x[i][d] for i in range(M)) for d in range(D)] for k in range(K)]
        return loss, gx, gc
    gf = [[sum(G[i][k] * ch[k][d] for k in range(K)) for d in range(D)] for i in range(M)]
    gx = []
    for i in range(M):
        dot = sum(xh[i][d] * gf[i][d] for d in range(D))
        gx.append([alpha / nx[i] * (gf[i][d] - xh[i][d] * dot) for d in range(D)])
    h = [[sum(G[i][k] * f[i][d] for i in range(M)) for d in range(D)] for k in range(K)]
    gc = []
    for k in range(K):
        if mode == "EXACT":
            dot = sum(ch[k][d] * h[k][d] for d in range(D))
            gc.append([(h[k][d] - ch[k][d] * dot) / nc[k] for d in range(D)])
        else:
            gc.append(list(h[k]))
    return loss, gx, gc


def emit(key, vals):
    print(key, len(vals), " ".join("%.17g" % v for v in vals))


def case(name, M, D, K, alpha, mode, seed, logit="COSINE", margin_type="NONE", m=0.0):
    g = Lcg(seed)
    x = [[g.next() * 2 for _ in range(D)] for _ in range(M)]
    y = [int((g.next() + 1) / 2 * K) % K for _ in range(M)]
    c = [[g.next() for _ in range(D)] for _ in range(K)]
    loss, gx, gc = head(x, y, c, alpha, mode, logit, margin_type, m)
    print("case", name, M, D, K, "%.17g" % alpha, mode, logit, margin_type, "%.17g" % m)
    emit("x", [v for r in x for v in r])
    emit("labels", y)
    emit("centroids", [v for r in c for v in r])
    emit("loss", [loss])
    emit("grad_x", [v for r in gx for v in r])
    emit("grad_c", [v for r in gc for v in r])


def auto_scale(K, p):
    return (K - 1) / K * math.log((K - 1) * p / (1 - p))


if __name__ == "__main__":
    case("small_exact", 5, 4, 7, 3.0, "EXACT", 1)
    case("odd_exact_auto", 9, 6, 13, auto_scale(13, 0.99), "EXACT", 2)
    case("renormalize", 6, 5, 11, 8.0, "RENORMALIZE", 3)
    case("batch_of_one", 1, 3, 4, 2.5, "EXACT", 4)
    case("cosface", 7, 5, 9, 6.0, "EXACT", 5, "COSINE", "COSFACE", 0.35)
    case("arcface", 8, 4, 6, 5.0, "EXACT", 6, "COSINE", "ARCFACE", 0.5)
    case("softmax_inner_product", 6, 4, 7, 1.0, "EXACT", 7, "INNER_PRODUCT")
    print("end")
