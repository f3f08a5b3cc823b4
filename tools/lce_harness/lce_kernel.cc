// The one LCE kernel instantiation the C harness calls (no C++ runtime needed):
// aarch64 BinaryKernelNeon8x4, armv7 BinaryKernelNeon4x4, float output.
#if defined(__aarch64__)
#include "larq_compute_engine/core/bgemm/kernels_aarch64.h"
#define LCE_KERNEL BinaryKernelNeon8x4
#define LCE_ROWS 8
#else
#include "larq_compute_engine/core/bgemm/kernels_arm32.h"
#define LCE_KERNEL BinaryKernelNeon4x4
#define LCE_ROWS 4
#endif
extern "C" void lce_bgemm_float(void *params) {
    LCE_KERNEL<float>(*static_cast<BinaryKernelParams<float, LCE_ROWS, 4> *>(params));
}
extern "C" unsigned long lce_params_size(void) {
    return sizeof(BinaryKernelParams<float, LCE_ROWS, 4>);
}
