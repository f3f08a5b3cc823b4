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

#if defined(XE_HAVE_X86)
#include <cpuid.h>
#endif
#if defined(XE_HAVE_NEON_A32)
#include <sys/auxv.h>
/* Linux arch/arm/include/uapi/asm/hwcap.h; spelled out so no kernel header is needed. */
#define XE_ARM_HWCAP_NEON (1ul << 12)
#define XE_ARM_HWCAP_VFPV4 (1ul << 16)
#endif

/* Every table this build knows, best last (auto picks the last runnable one). */
static const xe_kernels *const xe_all_tables[] = {
    &xe_kernels_ref,
#if defined(XE_HAVE_X86)
    &xe_kernels_popcnt,   &xe_kernels_avx2,
#endif
#if defined(XE_HAVE_NEON_A64)
    &xe_kernels_neon_a64,
#endif
#if defined(XE_HAVE_NEON_A32)
    &xe_kernels_neon_a32,
#endif
};
#define XE_NUM_TABLES (sizeof xe_all_tables / sizeof xe_all_tables[0])

static pthread_once_t xe_detect_once = PTHREAD_ONCE_INIT;
static int xe_runnable[XE_NUM_TABLES]; /* written once under xe_detect_once */
static const xe_kernels *xe_active;

#if defined(XE_HAVE_X86)
static int xe_x86_os_saves_ymm(void) {
    /* AVX needs the OS to save XMM and YMM state on context switch (XCR0 bits 1 and 2). */
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 6u) == 6u;
}
#endif

static int xe_cpu_can_run(const xe_kernels *t) {
    if (t == &xe_kernels_ref) return 1;
#if defined(XE_HAVE_X86)
    {
        unsigned int a, b, c, d;
        int popcnt = 0, avx2 = 0;
        if (__get_cpuid(1, &a, &b, &c, &d)) {
            int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
            popcnt = (c >> 23) & 1;
            if (fma && osxsave && avx && xe_x86_os_saves_ymm() && __get_cpuid_max(0, NULL) >= 7) {
                __cpuid_count(7, 0, a, b, c, d);
                avx2 = (b >> 5) & 1;
            }
        }
        if (t == &xe_kernels_popcnt) return popcnt;
        if (t == &xe_kernels_avx2) return popcnt && avx2;
    }
#endif
#if defined(XE_HAVE_NEON_A64)
    if (t == &xe_kernels_neon_a64) return 1; /* Advanced SIMD is mandatory in ARMv8-A */
#endif
#if defined(XE_HAVE_NEON_A32)
    if (t == &xe_kernels_neon_a32) {
        unsigned long hw = getauxval(AT_HWCAP);
        return (hw & XE_ARM_HWCAP_NEON) && (hw & XE_ARM_HWCAP_VFPV4);
    }
#endif
    return 0;
}

static const xe_kernels *xe_best(void) {
    for (size_t i = XE_NUM_TABLES; i-- > 0;)
        if (xe_runnable[i]) return xe_all_tables[i];
    return &xe_kernels_ref;
}

static const xe_kernels *xe_lookup(const char *name) {
    for (size_t i = 0; i < XE_NUM_TABLES; i++)
        if (xe_runnable[i] && strcmp(xe_all_tables[i]->name, name) == 0) return xe_all_tables[i];
    return NULL;
}

static void xe_detect(void) {
    const char *env;
    const xe_kernels *forced = NULL;
    for (size_t i = 0; i < XE_NUM_TABLES; i++) xe_runnable[i] = xe_cpu_can_run(xe_all_tables[i]);
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
    for (size_t i = 0; i < XE_NUM_TABLES; i++) {
        if (!xe_runnable[i]) continue;
        if (names != NULL && count < cap) names[count] = xe_all_tables[i]->name;
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
    /* Names of every ISA the project has, so a valid name this CPU/build lacks
     * is told apart from a typo. */
    {
        static const char *const all_names[] = {"ref", "popcnt", "avx2", "neon-a64", "neon-a32"};
        for (size_t i = 0; i < sizeof all_names / sizeof all_names[0]; i++)
            if (strcmp(all_names[i], name) == 0) known = 1;
    }
    return known ? XE_ERR_UNSUPPORTED : XE_ERR_INVALID_ARGUMENT;
}
