/*
 * kernel_dispatch.c - choose the kernel table once, from the CPU's features
 * or from XE_KERNELS in the environment, and report the choice.
 *
 * Detection runs under pthread_once so concurrent first calls agree. An
 * unknown or unsupported XE_KERNELS value falls back to the best table this
 * CPU can run: a typo in an environment variable must never stop inference.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "xnor_edge.h"

#if XE_ARCH_X86
#include <cpuid.h>
#endif
#if XE_ARCH_ARM
#include <sys/auxv.h>
/* Linux arch/arm/include/uapi/asm/hwcap.h; spelled out so no kernel header is needed. */
#define XE_ARM_HWCAP_NEON (1ul << 12)
#define XE_ARM_HWCAP_VFPV4 (1ul << 16)
#endif

/* Every set of kernel_sets.inc, best last; table is NULL where this build lacks it. */
typedef struct {
    const char *name;
    const xe_kernels *table;
    unsigned features;
} xe_set_entry;
static const xe_set_entry xe_sets[] = {
#define XE_KERNEL_SET(id, name, arch, features)                                                    \
    {name, XE_IF(arch, &xe_kernels_##id, NULL), features},
#include "kernel_sets.inc"
#undef XE_KERNEL_SET
};
#define XE_NUM_SETS (sizeof xe_sets / sizeof xe_sets[0])

static pthread_once_t xe_detect_once = PTHREAD_ONCE_INIT;
static int xe_runnable[XE_NUM_SETS]; /* written once under xe_detect_once */
static const xe_kernels *xe_active;

#if XE_ARCH_X86
static int xe_x86_os_saves_ymm(void) {
    /* AVX needs the OS to save XMM and YMM state on context switch (XCR0 bits 1 and 2). */
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 6u) == 6u;
}

static int xe_x86_os_saves_zmm(void) {
    /* AVX-512 also needs opmask, ZMM_Hi256 and Hi16_ZMM state (XCR0 bits 5, 6 and 7). */
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 0xE6u) == 0xE6u;
}

/* CPUID leaf 7 (ebx, ecx): AVX-512 F (ebx 16), BW (ebx 30), VL (ebx 31), VPOPCNTDQ (ecx 14). */
static int xe_x86_avx512(unsigned int b, unsigned int c) {
    return ((b >> 16) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1) && ((c >> 14) & 1) &&
           xe_x86_os_saves_zmm();
}
#endif

/* The XE_CPU_* features of this CPU. */
static unsigned xe_cpu_features(void) {
    unsigned f = 0;
#if XE_ARCH_X86
    unsigned int a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
        if ((c >> 9) & 1) f |= XE_CPU_X86_SSSE3;
        if ((c >> 23) & 1) f |= XE_CPU_X86_POPCNT;
        if (fma && osxsave && avx && xe_x86_os_saves_ymm() && __get_cpuid_max(0, NULL) >= 7) {
            __cpuid_count(7, 0, a, b, c, d);
            if ((b >> 5) & 1) f |= XE_CPU_X86_AVX2;
            if (xe_x86_avx512(b, c)) f |= XE_CPU_X86_AVX512;
        }
    }
#endif
#if XE_ARCH_AARCH64
    f |= XE_CPU_ARM_NEON | XE_CPU_ARM_VFPV4; /* Advanced SIMD and FMA are mandatory in ARMv8-A */
#endif
#if XE_ARCH_ARM
    unsigned long hw = getauxval(AT_HWCAP);
    if (hw & XE_ARM_HWCAP_NEON) f |= XE_CPU_ARM_NEON;
    if (hw & XE_ARM_HWCAP_VFPV4) f |= XE_CPU_ARM_VFPV4;
#endif
    return f;
}

static const xe_kernels *xe_best(void) {
    for (size_t i = XE_NUM_SETS; i-- > 0;)
        if (xe_runnable[i]) return xe_sets[i].table;
    return &xe_kernels_ref;
}

static const xe_kernels *xe_lookup(const char *name) {
    for (size_t i = 0; i < XE_NUM_SETS; i++)
        if (xe_runnable[i] && strcmp(xe_sets[i].name, name) == 0) return xe_sets[i].table;
    return NULL;
}

static void xe_detect(void) {
    const char *env;
    const xe_kernels *forced = NULL;
    const unsigned features = xe_cpu_features();
    for (size_t i = 0; i < XE_NUM_SETS; i++)
        xe_runnable[i] =
            xe_sets[i].table != NULL && (xe_sets[i].features & features) == xe_sets[i].features;
    env = getenv("XE_KERNELS");
    if (env != NULL && env[0] != '\0') forced = xe_lookup(env);
    xe_active = forced != NULL ? forced : xe_best();
}

const xe_kernels *xe_kernels_active(void) {
    pthread_once(&xe_detect_once, xe_detect);
    return xe_active;
}

const xe_kernels *xe_kernels_find(const char *name) {
    pthread_once(&xe_detect_once, xe_detect);
    return name != NULL ? xe_lookup(name) : NULL;
}

XE_API const char *xe_kernel_isa(void) { return xe_kernels_active()->name; }

XE_API size_t xe_available_isas(const char **names, size_t cap) {
    size_t count = 0;
    pthread_once(&xe_detect_once, xe_detect);
    for (size_t i = 0; i < XE_NUM_SETS; i++) {
        if (!xe_runnable[i]) continue;
        if (names != NULL && count < cap) names[count] = xe_sets[i].name;
        count++;
    }
    return count;
}

XE_API xe_status xe_set_kernel_isa(const char *name) {
    const xe_kernels *t;
    int known = 0;
    pthread_once(&xe_detect_once, xe_detect);
    if (name == NULL) return XE_ERR_INVALID_ARGUMENT;
    if (strcmp(name, "auto") == 0) {
        xe_active = xe_best();
        return XE_OK;
    }
    t = xe_lookup(name);
    if (t != NULL) {
        xe_active = t;
        return XE_OK;
    }
    /* Every set the project has is listed, built or not, so a valid name this
     * CPU/build lacks is told apart from a typo. */
    for (size_t i = 0; i < XE_NUM_SETS; i++)
        if (strcmp(xe_sets[i].name, name) == 0) known = 1;
    return known ? XE_ERR_UNSUPPORTED : XE_ERR_INVALID_ARGUMENT;
}
