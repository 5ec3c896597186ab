/* snnc simulator: native kernels (compiled on first use by backends/sim/native.py).
 *
 * The same semantics as the NumPy runtime (backends/sim/runtime.py), fused and
 * event-driven:
 *   - the IF recurrence and the spiking max-pool gate do exactly the operations of the
 *     runtime, element by element, so their results are bit-identical to it;
 *   - convolutions and dense layers on sparse inputs (spikes, pooled or rescaled spikes)
 *     add a weight column per nonzero input (a SynOp) instead of a dense GEMM: float32
 *     sums in another order (within the float tolerance), exact integers in fixed point.
 * Every function works on a range of samples/frames [lo, hi) so that Python can split a
 * batch over threads (ctypes releases the GIL). No allocation: the caller passes scratch.
 * Fixed point: values are int64 (the runtime's integer representation); membranes and
 * currents saturate to int32 as in runtime.py and the generated C code.
 * The kernels are in native_kernels.h, instantiated here for float32 and int64.
 */
#include <stdint.h>
#include <string.h>

#define IF_BLOCK 2048
#define I32_MIN (-2147483647LL - 1)
#define I32_MAX 2147483647LL

static int64_t sat32(int64_t x) { return x < I32_MIN ? I32_MIN : x > I32_MAX ? I32_MAX : x; }

#define T float
#define SFX f32
#define SAT(x) (x)
#include "native_kernels.h"
#undef T
#undef SFX
#undef SAT

#define T int64_t
#define SFX i64
#define SAT(x) sat32(x)
#include "native_kernels.h"
#undef T
#undef SFX
#undef SAT

/* Nonzero elements of x[0:len) (float32 or int64, by `width` in bytes). */
int64_t snn_nonzero(const void *x, int64_t len, int64_t width)
{
    int64_t nz = 0;
    if (width == 4) {
        const uint32_t *p = (const uint32_t *)x;
        for (int64_t k = 0; k < len; k++) nz += (p[k] << 1) != 0; /* +0 and -0 are zero */
    } else {
        const int64_t *p = (const int64_t *)x;
        for (int64_t k = 0; k < len; k++) nz += p[k] != 0;
    }
    return nz;
}
