/* The kernels of native.c for one value type: included once per type with
 *   T      the value type (float, or int64_t for fixed point)
 *   SFX    the name suffix (f32, i64)
 *   SAT(x) the saturation after an addition of currents (none, or to int32)
 * See native.c for what they compute. Inner loops are small static functions whose
 * restrict-qualified arguments let compilers vectorize them without alias checks. */
#define KCAT_(a, b) a##_##b
#define KCAT(a, b) KCAT_(a, b)
#define K(name) KCAT(name, SFX)

/* ---------------------------------------------------------------- IF neurons --------- */
/* One step of m neurons: V += I; f = V >= theta; out = f; total += f; V -= theta * f. */
static void K(if_row)(int64_t m, T *restrict v, const T *restrict in, T *restrict o,
                      T *restrict tot, T t)
{
    for (int64_t k = 0; k < m; k++) {
        const T x = SAT(v[k] + in[k]);
        const T f = (T)(x >= t);
        o[k] = f;
        tot[k] += f;
        v[k] = x - f * t;
    }
}

/* The general step: per-neuron thresholds, reset to zero, spike budgets (cap > 0). */
static void K(if_row_any)(int64_t m, T *restrict v, const T *restrict in, T *restrict o,
                          T *restrict tot, const T *restrict th, int64_t th_len, int zero,
                          int64_t cap, T *restrict cnt)
{
    for (int64_t k = 0; k < m; k++) {
        const T t = th[th_len == 1 ? 0 : k];
        const T x = SAT(v[k] + in[k]);
        T f = (T)(x >= t);
        if (cnt) {
            f = cnt[k] < (T)cap ? f : 0;
            cnt[k] += f;
        }
        o[k] = f;
        tot[k] += f;
        v[k] = zero ? (f != 0 ? (T)0 : x) : x - f * t;
    }
}

/* v (b, per) membranes; data (n or 1, b, per) input currents; out (n, b, per) spikes;
 * th (th_len = 1 or per); count (b, per) spikes so far, only when cap > 0; total (b, per)
 * gets each neuron's spikes of the chunk added. Work items [lo, hi) are (sample, block of
 * IF_BLOCK neurons) pairs, so threads can share even one sample; a block runs all steps
 * while its membranes stay in L1. */
void K(snn_if)(int64_t n, int64_t b, int64_t per, int64_t lo, int64_t hi, T *v,
               const T *data, int const_in, const T *th, int64_t th_len, int zero,
               int64_t cap, T *count, T *out, T *total)
{
    const int simple = th_len == 1 && !zero && !count;
    const int64_t blocks = (per + IF_BLOCK - 1) / IF_BLOCK;
    for (int64_t r = lo; r < hi; r++) {
        const int64_t s = r / blocks, k0 = (r - s * blocks) * IF_BLOCK;
        const int64_t m = per - k0 < IF_BLOCK ? per - k0 : IF_BLOCK;
        const int64_t at = s * per + k0;
        for (int64_t i = 0; i < n; i++) {
            const T *in = data + (const_in ? 0 : i * b * per) + at;
            T *o = out + i * b * per + at;
            if (simple)
                K(if_row)(m, v + at, in, o, total + at, th[0]);
            else
                K(if_row_any)(m, v + at, in, o, total + at, th_len == 1 ? th : th + k0,
                              th_len, zero, cap, count ? count + at : 0);
        }
    }
}

/* Signed neurons (IFNeuron.signed), one step of m neurons: V += I; s = +1 where
 * V >= theta, else -1 where V < 0 and the net count is positive; V -= theta * s;
 * net += s; events += |s|; total += s (the net count of the chunk). */
static void K(if_signed_row)(int64_t m, T *restrict v, const T *restrict in,
                             T *restrict o, T *restrict tot, const T *restrict th,
                             int64_t th_len, T *restrict net, T *restrict ev)
{
    for (int64_t k = 0; k < m; k++) {
        const T t = th[th_len == 1 ? 0 : k];
        const T x = SAT(v[k] + in[k]);
        const T p = (T)(x >= t);
        const T q = (T)(x < (T)0 && net[k] > (T)0);
        const T s = p - q;
        o[k] = s;
        tot[k] += s;
        net[k] += s;
        ev[k] += p + q;
        v[k] = x - s * t;
    }
}

/* snn_if for signed neurons: net and events (b, per) are the neurons' net counts and
 * spike events so far; the other arguments as snn_if's. */
void K(snn_if_signed)(int64_t n, int64_t b, int64_t per, int64_t lo, int64_t hi, T *v,
                      const T *data, int const_in, const T *th, int64_t th_len, T *net,
                      T *events, T *out, T *total)
{
    const int64_t blocks = (per + IF_BLOCK - 1) / IF_BLOCK;
    for (int64_t r = lo; r < hi; r++) {
        const int64_t s = r / blocks, k0 = (r - s * blocks) * IF_BLOCK;
        const int64_t m = per - k0 < IF_BLOCK ? per - k0 : IF_BLOCK;
        const int64_t at = s * per + k0;
        for (int64_t i = 0; i < n; i++)
            K(if_signed_row)(m, v + at, data + (const_in ? 0 : i * b * per) + at,
                             out + i * b * per + at, total + at,
                             th_len == 1 ? th : th + k0, th_len, net + at, events + at);
    }
}

/* ---------------------------------------------------------------- spiking max-pool --- */
/* One output row of 2x2 windows with stride 2: counts += spikes, then per window the
 * spike of the first tap with the highest count. */
static void K(gate2x2_row)(int64_t ow, T *restrict c0, T *restrict c1,
                           const T *restrict s0, const T *restrict s1, T *restrict o)
{
    for (int64_t x = 0; x < ow; x++) {
        const T a0 = s0[2 * x], a1 = s0[2 * x + 1], a2 = s1[2 * x], a3 = s1[2 * x + 1];
        const T n0 = c0[2 * x] + a0, n1 = c0[2 * x + 1] + a1;
        const T n2 = c1[2 * x] + a2, n3 = c1[2 * x + 1] + a3;
        c0[2 * x] = n0;
        c0[2 * x + 1] = n1;
        c1[2 * x] = n2;
        c1[2 * x + 1] = n3;
        T best = n0, win = a0;
        int g = n1 > best;
        best = g ? n1 : best;
        win = g ? a1 : win;
        g = n2 > best;
        best = g ? n2 : best;
        win = g ? a2 : win;
        g = n3 > best;
        o[x] = g ? a3 : win;
    }
}

/* counts (frames, C, H, W) running input spike counts, this step included; per window
 * the spike of the tap with the highest count, the first tap (row-major) on ties; taps
 * outside the input (padding, ceil_mode) never win. spikes (n, frames, C, H, W) -> out
 * (n, frames, C, OH, OW). Work items [lo, hi) are (frame, channel) pairs. geo: C H W OH
 * OW kh kw sh sw pt pl dh dw. Selection is branch-free (a branch on counts would
 * mispredict). */
void K(snn_gate)(int64_t n, int64_t frames, int64_t lo, int64_t hi, const int64_t *geo,
                 T *counts, const T *spikes, T *out)
{
    const int64_t C = geo[0], H = geo[1], W = geo[2], OH = geo[3], OW = geo[4];
    const int64_t kh = geo[5], kw = geo[6], sh = geo[7], sw = geo[8], pt = geo[9];
    const int64_t pl = geo[10], dh = geo[11], dw = geo[12];
    const int64_t plane = H * W, oplane = OH * OW;
    const int two = kh == 2 && kw == 2 && sh == 2 && sw == 2 && pt == 0 && pl == 0
                    && dh == 1 && dw == 1 && OH * 2 <= H && OW * 2 <= W;
    for (int64_t r = lo; r < hi; r++) {
        const int64_t f = r / C, c = r - f * C;
        T *cc = counts + (f * C + c) * plane;
        for (int64_t i = 0; i < n; i++) {
            const T *sc = spikes + ((i * frames + f) * C + c) * plane;
            T *oc = out + ((i * frames + f) * C + c) * oplane;
            if (two) {
                for (int64_t y = 0; y < OH; y++)
                    K(gate2x2_row)(OW, cc + 2 * y * W, cc + (2 * y + 1) * W, sc + 2 * y * W,
                                   sc + (2 * y + 1) * W, oc + y * OW);
                if (H > 2 * OH || W > 2 * OW)  /* inputs no window covers: count them */
                    for (int64_t h = 0; h < H; h++)
                        for (int64_t w = (h < 2 * OH ? 2 * OW : 0); w < W; w++)
                            cc[h * W + w] += sc[h * W + w];
                continue;
            }
            for (int64_t k = 0; k < plane; k++) cc[k] += sc[k];
            for (int64_t y = 0; y < OH; y++) {
                for (int64_t x = 0; x < OW; x++) {
                    T best = -1, win = 0;  /* counts are >= 0: a real tap wins */
                    for (int64_t a = 0; a < kh; a++) {
                        const int64_t h = y * sh - pt + a * dh;
                        if (h < 0 || h >= H) continue;
                        for (int64_t e = 0; e < kw; e++) {
                            const int64_t w = x * sw - pl + e * dw;
                            if (w < 0 || w >= W) continue;
                            const T cnt = cc[h * W + w];
                            const int g = cnt > best;
                            best = g ? cnt : best;
                            win = g ? sc[h * W + w] : win;
                        }
                    }
                    oc[y * OW + x] = win;
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- event synapses ----- */
static void K(axpy)(int64_t m, T *restrict y, const T *restrict col, T v)
{
    if (v == 1)
        for (int64_t o = 0; o < m; o++) y[o] += col[o];
    else
        for (int64_t o = 0; o < m; o++) y[o] += v * col[o];
}

/* Index of the first nonzero of x[from:len), or len: words tested 16 at a time. */
static int64_t K(next_nonzero)(const T *restrict x, int64_t from, int64_t len)
{
    int64_t k = from;
    while (k + 16 <= len) {
        int any = 0;
        for (int j = 0; j < 16; j++) any |= x[k + j] != 0;
        if (any) break;
        k += 16;
    }
    while (k < len && x[k] == 0) k++;
    return k;
}

/* channel-last acc (P, O) + bias -> channel-first y (O, P), saturated */
static void K(to_channel_first)(int64_t P, int64_t O, const T *restrict acc,
                                const T *restrict bias, T *restrict y)
{
    for (int64_t o = 0; o < O; o++) {
        const T bo = bias ? bias[o] : 0;
        T *restrict yo = y + o * P;
        for (int64_t p = 0; p < P; p++) yo[p] = SAT(acc[p * O + o] + bo);
    }
}

/* y (N, O, OH, OW) = conv(x (N, C, H, W)) + bias, one weight column per nonzero input:
 * wt (C, kh, kw, O/groups) holds each input channel's columns contiguous; acc is scratch
 * of OH * OW * O per thread (channel-last, so a tap is one contiguous vector add).
 * rows (H, kh) / cols (W, kw): the output row / column an input row / column reaches
 * through each tap, -1 where none (stride, padding and dilation, precomputed).
 * geo: C H W O OH OW kh kw groups. */
void K(snn_conv)(int64_t lo, int64_t hi, const int64_t *geo, const int64_t *rows,
                 const int64_t *cols, const T *x, const T *wt, const T *bias, T *acc, T *y)
{
    const int64_t C = geo[0], H = geo[1], W = geo[2], O = geo[3], OH = geo[4];
    const int64_t OW = geo[5], kh = geo[6], kw = geo[7], g = geo[8];
    const int64_t cg = C / g, og = O / g, P = OH * OW, HW = H * W;
    for (int64_t f = lo; f < hi; f++) {
        const T *xf = x + f * C * HW;
        memset(acc, 0, sizeof(T) * P * O);
        for (int64_t c = 0; c < C; c++) {
            const T *xc = xf + c * HW;
            const int64_t go = (c / cg) * og;
            for (int64_t hw = K(next_nonzero)(xc, 0, HW); hw < HW;
                 hw = K(next_nonzero)(xc, hw + 1, HW)) {
                const T v = xc[hw];
                const int64_t h = hw / W, w = hw - h * W;
                for (int64_t a = 0; a < kh; a++) {
                    const int64_t yy = rows[h * kh + a];
                    if (yy < 0) continue;
                    for (int64_t e = 0; e < kw; e++) {
                        const int64_t xx = cols[w * kw + e];
                        if (xx < 0) continue;
                        K(axpy)(og, acc + (yy * OW + xx) * O + go,
                                wt + ((c * kh + a) * kw + e) * og, v);
                    }
                }
            }
        }
        K(to_channel_first)(P, O, acc, bias, y + f * O * P);
    }
}

/* y (N, O) = x (N, K) @ wt (K, O) + bias, one row of wt per nonzero input. */
void K(snn_dense)(int64_t lo, int64_t hi, int64_t Kin, int64_t O, const T *x, const T *wt,
                  const T *bias, T *y)
{
    for (int64_t r = lo; r < hi; r++) {
        const T *xr = x + r * Kin;
        T *yr = y + r * O;
        memset(yr, 0, sizeof(T) * O);
        for (int64_t k = K(next_nonzero)(xr, 0, Kin); k < Kin;
             k = K(next_nonzero)(xr, k + 1, Kin))
            K(axpy)(O, yr, wt + k * O, xr[k]);
        for (int64_t o = 0; o < O; o++) yr[o] = SAT(yr[o] + (bias ? bias[o] : 0));
    }
}

#undef K
#undef KCAT
#undef KCAT_
