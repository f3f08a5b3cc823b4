// The one LCE kernel instantiation the C harness calls (no C++ runtime needed).
#include "larq_compute_engine/core/bgemm/kernels_aarch64.h"
extern "C" void lce_bgemm_8x4_float(void *params) {
    BinaryKernelNeon8x4<float>(*static_cast<BinaryKernelParams<float, 8, 4> *>(params));
}
extern "C" unsigned long lce_params_size(void) { return sizeof(BinaryKernelParams<float, 8, 4>); }
