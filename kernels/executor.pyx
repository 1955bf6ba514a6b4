# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Kernel objects and the Program that runs them.

A Kernel binds one C kernel to its argument block (pointers into the arena,
packed weights, requantization tables).  A Program runs a list of kernels as
one C loop without the GIL.  Arrays are checked (dtype, contiguity, size) when
a kernel is built, never while it runs; each kernel keeps its arrays alive.
"""

import os

import numpy as np

from libc.stdint cimport int8_t, int16_t, int32_t
from libc.stdlib cimport malloc, free


cdef extern from "c/em_kernels.h":
    ctypedef void (*em_kernel_fn)(const void *args) noexcept nogil
    int EM_ISA_PORTABLE, EM_ISA_AVX2, EM_ISA_AVXVNNI, EM_ISA_AVX512VNNI, EM_ISA_NEON, EM_ISA_DOTPROD
    int em_isa_best() nogil
    int em_isa_get() nogil
    int em_isa_set(int isa) nogil
    int em_isa_supported(int isa) nogil

    ctypedef struct em_requant:
        const int32_t *mult
        const int32_t *shift
        int32_t zp, act_min, act_max
        int32_t round_up_below

    size_t em_packed_weights_len(int N, int K) nogil
    void em_pack_weights(const int8_t *w, int N, int K, int16_t *packed) nogil
    int em_conv_kp(int k_h, int k_w, int in_c) nogil
    int EM_CONV_ROWS

    ctypedef struct em_conv_args:
        const int8_t *inp "in"
        int8_t *out
        int batch, in_h, in_w, in_c, out_h, out_w, out_c
        int k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left
        int32_t in_offset
        const int16_t *w
        const int32_t *bias
        em_requant rq
        int16_t *scratch
        int threads
    void em_conv2d(const void *args) noexcept nogil
    size_t em_conv_scratch_bytes(const em_conv_args *a) nogil
    size_t em_conv_packed_len(int N, int k_h, int k_w, int in_c, int dil_w) nogil
    void em_pack_conv_weights(const int8_t *w, int N, int k_h, int k_w, int in_c, int dil_w, int16_t *packed) nogil

    ctypedef struct em_dwconv_args:
        const int8_t *inp "in"
        int8_t *out
        int batch, in_h, in_w, in_c, out_h, out_w, out_c, depth_mult
        int k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left
        int32_t in_offset
        const int16_t *w
        const int32_t *bias
        em_requant rq
        int32_t *scratch
        int threads
        void *plan
    void em_depthwise_conv2d(const void *args) noexcept nogil
    size_t em_dwconv_plan_len(const em_dwconv_args *a) noexcept nogil
    void em_dwconv_plan_init(em_dwconv_args *a, void *buf) noexcept nogil

    ctypedef struct em_fc_args:
        const int8_t *inp "in"
        int8_t *out
        int rows, in_features, units
        int32_t in_offset
        const int16_t *w
        const int32_t *bias
        em_requant rq
        int16_t *scratch
        int threads
    void em_fully_connected(const void *args) noexcept nogil

    ctypedef struct em_requant_rows_args:
        const int32_t *acc
        int8_t *out
        long rows
        int channels
        em_requant rq
    void em_requantize_rows(const void *args) noexcept nogil

    ctypedef struct em_binary_args:
        const int8_t *in1
        const int8_t *in2
        int8_t *out
        int dims[5]
        int s1[5]
        int s2[5]
        int32_t in1_offset, in2_offset, out_offset
        int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift, left_shift
        int32_t act_min, act_max
    void em_add(const void *args) noexcept nogil
    void em_mul(const void *args) noexcept nogil

    ctypedef struct em_softmax_args:
        const int8_t *inp "in"
        int8_t *out
        int outer, depth
        const float *table
        float out_scale
        int32_t out_zp
    void em_softmax(const void *args) noexcept nogil
    void em_softmax_table(float in_scale, float beta, float *table) nogil

    ctypedef struct em_mean_args:
        const int8_t *inp "in"
        int8_t *out
        int outer, count, inner
        int32_t pre_offset
        em_requant rq
        int32_t *scratch
    void em_mean(const void *args) noexcept nogil

    ctypedef struct em_pool_args:
        const int8_t *inp "in"
        int8_t *out
        int batch, in_h, in_w, channels, out_h, out_w
        int k_h, k_w, stride_h, stride_w, pad_top, pad_left
        int32_t act_min, act_max
    void em_average_pool(const void *args) noexcept nogil
    void em_max_pool(const void *args) noexcept nogil

    ctypedef struct em_copy_args:
        const int8_t *inp "in"
        int8_t *out
        int dims[5]
        long in_strides[5]
        long out_strides[5]
        long in_start, out_start
        size_t fill_bytes
        int8_t fill
        int elem_size
    void em_strided_copy(const void *args) noexcept nogil

    ctypedef struct em_lut_args:
        const int8_t *inp "in"
        int8_t *out
        size_t n, split
        const int8_t *table
        const int8_t *tail_table
    void em_lut(const void *args) noexcept nogil
    void em_logistic_table(float in_scale, int32_t in_zp, float out_scale, int32_t out_zp, int8_t *table) nogil

    ctypedef struct em_quant_args:
        const void *inp "in"
        void *out
        size_t n
        float scale
        int32_t zero_point
    void em_quantize_f32(const void *args) noexcept nogil
    void em_dequantize_s8(const void *args) noexcept nogil

    # ---- TRANSPOSE (transpose.c) ----
    ctypedef struct em_transpose_args:
        const int8_t *inp "in"
        int8_t *out
        int dims[5]
        long in_strides[5]
    void em_transpose(const void *args) noexcept nogil

    # ---- QUANTIZE float -> uint8, DEQUANTIZE uint8 -> float (quantize_u8.c) ----
    void em_quantize_f32_u8(const void *args) noexcept nogil
    void em_dequantize_u8(const void *args) noexcept nogil

    # ---- MAXIMUM, MINIMUM (minmax.c) ----
    void em_maximum(const void *args) noexcept nogil
    void em_minimum(const void *args) noexcept nogil

    # ---- SUB (sub.c) ----
    void em_sub(const void *args) noexcept nogil

    # ---- float lookup tables: TANH, GELU, ELU, EXP (lut_float.c) ----
    int EM_LUT_TANH, EM_LUT_GELU, EM_LUT_GELU_APPROX, EM_LUT_ELU, EM_LUT_EXP
    void em_float_lut_table(int kind, float in_scale, int32_t in_zp, float out_scale, int32_t out_zp,
                            int8_t *table) nogil

    # ---- RESIZE_BILINEAR (resize_bilinear.c) ----
    ctypedef struct em_resize_bilinear_args:
        const int8_t *inp "in"
        int8_t *out
        int batch, in_h, in_w, channels, out_h, out_w
        const int32_t *ymap
        const int32_t *xmap
    void em_resize_bilinear(const void *args) noexcept nogil

    # ---- PRELU (prelu.c) ----
    void em_prelu(const void *args) noexcept nogil

    # ---- BATCH_MATMUL (batch_matmul.c) ----
    ctypedef struct em_batch_matmul_args:
        const int8_t *lhs
        const int8_t *rhs
        int8_t *out
        int batch[3]
        long lhs_bs[3]
        long rhs_bs[3]
        int rows, cols, depth
        long lhs_rs, lhs_ks, rhs_ks, rhs_cs
        int32_t lhs_offset, rhs_offset, out_zp, mult, shift
        int16_t *scratch
    void em_batch_matmul(const void *args) noexcept nogil

    # ---- ARG_MAX / ARG_MIN (arg_min_max.c) ----
    ctypedef struct em_arg_min_max_args:
        const int8_t *inp "in"
        void *out
        long outer
        int axis_size, inner, is_max, out64, is_unsigned
        int32_t *scratch
    void em_arg_min_max(const void *args) noexcept nogil

    # ---- REDUCE_MAX / REDUCE_MIN (reduce_max.c) ----
    ctypedef struct em_reduce_args:
        const int8_t *inp "in"
        int8_t *out
        int dims[5]
        long out_strides[5]
        long out_size
        int is_max
    void em_reduce_max(const void *args) noexcept nogil

    # ---- RESIZE_NEAREST_NEIGHBOR, any index map (resize_nearest.c) ----
    ctypedef struct em_resize_nearest_args:
        const void *inp "in"
        void *out
        int batch, in_h, in_w, channels, out_h, out_w, elem_size
        const int32_t *ymap
        const int32_t *xmap
    void em_resize_nearest(const void *args) noexcept nogil

    # ---- GATHER, constant positions (gather.c) ----
    ctypedef struct em_gather_args:
        const void *inp "in"
        void *out
        long outer
        int axis_size, inner, n, elem_size
        const int32_t *pos
    void em_gather(const void *args) noexcept nogil

    # ---- LOG_SOFTMAX (log_softmax.c) ----
    ctypedef struct em_log_softmax_args:
        const int8_t *inp "in"
        int8_t *out
        int outer, depth
        const float *table
        float in_scale, out_scale
        int32_t out_zp
    void em_log_softmax(const void *args) noexcept nogil

    # ---- SQUARED_DIFFERENCE (squared_difference.c) ----
    void em_squared_difference(const void *args) noexcept nogil

    # ---- SUM (reduce_sum.c) ----
    ctypedef struct em_reduce_sum_args:
        em_reduce_args r
        int32_t *scratch
        float in_scale, out_scale
        int32_t in_zp, out_zp
        long count
    void em_reduce_sum(const void *args) noexcept nogil


# round_up_below: channels below it round the requantizing shift's ties up (ruy, and the
# optimized depthwise kernel's 8-lane blocks), the others away from zero (TFLite scalar code).
ROUND_ALL_UP = 2**31 - 1

# In order of preference; a CPU need not have every path below its best one (AVX-512 VNNI without
# AVX-VNNI), so set_isa falls back to the highest path at or below the one asked for that the CPU has, within
# its family: x86 (avx2, avxvnni, avx512vnni) or aarch64 (neon, dotprod); a path of the other family gives portable.
ISA_NAMES = {EM_ISA_PORTABLE: "portable", EM_ISA_AVX2: "avx2", EM_ISA_AVXVNNI: "avxvnni",
             EM_ISA_AVX512VNNI: "avx512vnni", EM_ISA_NEON: "neon", EM_ISA_DOTPROD: "dotprod"}


def isa():
    """The instruction-set path in effect: one of ISA_NAMES' values."""
    return ISA_NAMES[em_isa_get()]


def best_isa():
    """The preferred path this CPU (and build) has: the one 'auto' selects."""
    return ISA_NAMES[em_isa_best()]


def available_isas():
    """Every path this CPU (and build) has, in ISA_NAMES order: what the per-op tests run on."""
    return [name for code, name in sorted(ISA_NAMES.items()) if em_isa_supported(code)]


def set_isa(name):
    """Select a path by name ('portable', 'avx2', 'avxvnni', 'avx512vnni', 'neon', 'dotprod') or 'auto'; returns
    the path in effect, which never exceeds the CPU: the highest path it has at or below the one named, in the
    same family (x86 or aarch64), else portable.
    Raises ValueError for an unknown name."""
    codes = {v: k for k, v in ISA_NAMES.items()}
    if name == "auto":
        return ISA_NAMES[em_isa_set(-1)]
    if name not in codes:
        raise ValueError(f"unknown instruction set {name!r}; choose one of {sorted(codes)} or 'auto'")
    return ISA_NAMES[em_isa_set(codes[name])]


# EDGE_MAAS_ISA=<name> forces a path (e.g. portable) for the whole process.
set_isa(os.environ.get("EDGE_MAAS_ISA", "auto") or "auto")


cdef size_t _addr(object arr, object dtype, Py_ssize_t min_elems, object keep) except 0:
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(arr).__name__}")
    if arr.dtype != dtype:
        raise TypeError(f"expected {np.dtype(dtype).name}, got {arr.dtype}")
    if not arr.flags.c_contiguous:
        raise ValueError("array must be C-contiguous")
    if arr.size < min_elems:
        raise ValueError(f"array has {arr.size} elements; {min_elems} needed")
    if arr.size == 0:
        raise ValueError("empty array")
    keep.append(arr)
    return <size_t>arr.__array_interface__["data"][0]


def pack_weights(w):
    """[N, K] int8 -> the GEMM's packed weights: int16 panels, and on a CPU with VNNI also column sums and
    int8 panels for the vpdpbusd paths (one array for every path; layout in em_kernels.h)."""
    w = np.ascontiguousarray(w, dtype=np.int8)
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-D [N, K], got shape {w.shape}")
    cdef int N = w.shape[0], K = w.shape[1]
    out = np.empty(em_packed_weights_len(N, K), dtype=np.int16)
    cdef const int8_t[:, ::1] wv = w
    cdef int16_t[::1] ov = out
    em_pack_weights(&wv[0, 0], N, K, &ov[0])
    return out


def pack_conv_weights(w, int dil_w=1):
    """CONV_2D weights [N, k_h, k_w, in_c] int8 -> pack_weights' array of [N, k_h * k_w * in_c], and on a CPU
    with x86 VNNI, where a filter row (a tap when dil_w > 1) is not whole 4-byte groups, the indirect GEMM's
    int8 panels with each run zero-padded after it (layout in em_kernels.h)."""
    w = np.ascontiguousarray(w, dtype=np.int8)
    if w.ndim != 4:
        raise ValueError(f"weights must be 4-D [N, k_h, k_w, in_c], got shape {w.shape}")
    cdef int N = w.shape[0], kh = w.shape[1], kw = w.shape[2], C = w.shape[3]
    out = np.empty(em_conv_packed_len(N, kh, kw, C, dil_w), dtype=np.int16)
    cdef const int8_t[:, :, :, ::1] wv = w
    cdef int16_t[::1] ov = out
    em_pack_conv_weights(&wv[0, 0, 0, 0], N, kh, kw, C, dil_w, &ov[0])
    return out


def logistic_table(float in_scale, int in_zp, float out_scale, int out_zp):
    """LOGISTIC's 256-entry table, computed in C float with libm expf as the interpreter does."""
    table = np.empty(256, np.int8)
    cdef int8_t[::1] tv = table
    em_logistic_table(in_scale, in_zp, out_scale, out_zp, &tv[0])
    return table


_FLOAT_LUTS = {"tanh": EM_LUT_TANH, "gelu": EM_LUT_GELU, "gelu_approximate": EM_LUT_GELU_APPROX, "elu": EM_LUT_ELU,
               "exp": EM_LUT_EXP}


def float_lut_table(str kind, float in_scale, int in_zp, float out_scale, int out_zp):
    """The 256-entry int8 table of a float-LUT op ('tanh', 'gelu', 'gelu_approximate', 'elu', 'exp'), built in
    C float with libm as the interpreter's LUTPopulate does (lut_float.c); index = (uint8) input value.
    Raises ValueError for an unknown kind."""
    if kind not in _FLOAT_LUTS:
        raise ValueError(f"unknown table {kind!r}; one of {sorted(_FLOAT_LUTS)}")
    table = np.empty(256, np.int8)
    cdef int8_t[::1] tv = table
    em_float_lut_table(_FLOAT_LUTS[kind], in_scale, in_zp, out_scale, out_zp, &tv[0])
    return table


def conv_scratch_len(int k_h, int k_w, int in_c, int threads=1, *, int batch=1, int out_h=1, int out_w=1,
                     int stride_h=1, int stride_w=1, int dil_h=1, int dil_w=1):
    """int16 elements of scratch a Conv2D needs on any path this CPU has: a chunk of im2col rows per thread, or
    the padded input image of the indirect VNNI conv (batch x the rows and columns the windows reach)."""
    cdef em_conv_args a  # em_conv_scratch_bytes reads the geometry and threads only
    a.batch, a.in_c, a.out_h, a.out_w, a.k_h, a.k_w = batch, in_c, out_h, out_w, k_h, k_w
    a.stride_h, a.stride_w, a.dil_h, a.dil_w, a.threads = stride_h, stride_w, dil_h, dil_w, max(1, threads)
    return (em_conv_scratch_bytes(&a) + 1) // 2


cdef class Kernel:
    """One op bound to its arrays; run() executes it once (tests call it directly)."""
    cdef em_kernel_fn fn
    cdef const void *args
    cdef list keep
    cdef readonly str name

    def __cinit__(self, *args, **kwargs):
        self.keep = []
        self.name = type(self).__name__

    def run(self):
        with nogil:
            self.fn(self.args)

    @property
    def arrays(self):
        """Every array the kernel points into (arena views, weights, tables)."""
        return tuple(self.keep)

    cdef int _requant(self, em_requant *rq, mult, shift, int n, int zp, int act_min, int act_max,
                      int round_up_below) except -1:
        rq.round_up_below = max(0, round_up_below)
        cdef Py_ssize_t padded = (n + 15) // 16 * 16
        if not (-128 <= act_min <= act_max <= 127):
            raise ValueError(f"activation range [{act_min}, {act_max}] is not inside int8")
        if np.any(mult < 0):
            raise ValueError("negative quantized multiplier")
        rq.mult = <const int32_t *>_addr(mult, np.int32, padded, self.keep)
        rq.shift = <const int32_t *>_addr(shift, np.int32, padded, self.keep)
        rq.zp = zp
        rq.act_min = act_min
        rq.act_max = act_max
        return 0


cdef class Conv2D(Kernel):
    cdef em_conv_args a

    def __init__(self, inp, out, packed_w, bias, mult, shift, *, int batch, int in_h, int in_w, int in_c,
                 int out_h, int out_w, int out_c, int k_h, int k_w, int stride_h, int stride_w, int dil_h,
                 int dil_w, int pad_top, int pad_left, int in_offset, int out_zp, int act_min, int act_max,
                 scratch, int threads=1, int round_up_below=ROUND_ALL_UP):
        cdef em_conv_args *a = &self.a
        a.inp = <const int8_t *>_addr(inp, np.int8, batch * in_h * in_w * in_c, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, batch * out_h * out_w * out_c, self.keep)
        a.w = <const int16_t *>_addr(packed_w, np.int16, em_conv_packed_len(out_c, k_h, k_w, in_c, dil_w), self.keep)
        a.bias = <const int32_t *>_addr(bias, np.int32, (out_c + 15) // 16 * 16, self.keep)
        self._requant(&a.rq, mult, shift, out_c, out_zp, act_min, act_max, round_up_below)
        a.batch, a.in_h, a.in_w, a.in_c = batch, in_h, in_w, in_c
        a.out_h, a.out_w, a.out_c = out_h, out_w, out_c
        a.k_h, a.k_w, a.stride_h, a.stride_w, a.dil_h, a.dil_w = k_h, k_w, stride_h, stride_w, dil_h, dil_w
        a.pad_top, a.pad_left, a.in_offset, a.threads = pad_top, pad_left, in_offset, max(1, threads)
        a.scratch = <int16_t *>_addr(scratch, np.int16, (em_conv_scratch_bytes(a) + 1) // 2, self.keep)
        self.fn = <em_kernel_fn>em_conv2d
        self.args = a


cdef class DepthwiseConv2D(Kernel):
    cdef em_dwconv_args a

    def __init__(self, inp, out, w16, bias, mult, shift, *, int batch, int in_h, int in_w, int in_c,
                 int out_h, int out_w, int out_c, int depth_mult, int k_h, int k_w, int stride_h, int stride_w,
                 int dil_h, int dil_w, int pad_top, int pad_left, int in_offset, int out_zp, int act_min,
                 int act_max, scratch, int threads=1, int round_up_below=0):
        cdef em_dwconv_args *a = &self.a
        if out_c != in_c * depth_mult:
            raise ValueError(f"out_c {out_c} != in_c {in_c} * depth_mult {depth_mult}")
        a.inp = <const int8_t *>_addr(inp, np.int8, batch * in_h * in_w * in_c, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, batch * out_h * out_w * out_c, self.keep)
        a.w = <const int16_t *>_addr(w16, np.int16, k_h * k_w * out_c, self.keep)
        a.bias = <const int32_t *>_addr(bias, np.int32, out_c, self.keep)
        self._requant(&a.rq, mult, shift, out_c, out_zp, act_min, act_max, round_up_below)
        a.threads = max(1, threads)
        a.scratch = <int32_t *>_addr(scratch, np.int32, a.threads * ((out_c + 15) // 16 * 16), self.keep)
        a.batch, a.in_h, a.in_w, a.in_c = batch, in_h, in_w, in_c
        a.out_h, a.out_w, a.out_c, a.depth_mult = out_h, out_w, out_c, depth_mult
        a.k_h, a.k_w, a.stride_h, a.stride_w, a.dil_h, a.dil_w = k_h, k_w, stride_h, stride_w, dil_h, dil_w
        a.pad_top, a.pad_left, a.in_offset = pad_top, pad_left, in_offset
        a.plan = NULL
        cdef size_t plan_len = em_dwconv_plan_len(a)
        if plan_len:  # x86: weights and constants laid out once for the vector paths, and their row buffers
            plan = np.zeros(plan_len, dtype=np.uint8)
            em_dwconv_plan_init(a, <void *>_addr(plan, np.uint8, plan_len, self.keep))
        self.fn = <em_kernel_fn>em_depthwise_conv2d
        self.args = a


cdef class FullyConnected(Kernel):
    cdef em_fc_args a

    def __init__(self, inp, out, packed_w, bias, mult, shift, *, int rows, int in_features, int units,
                 int in_offset, int out_zp, int act_min, int act_max, scratch, int threads=1,
                 int round_up_below=ROUND_ALL_UP):
        cdef em_fc_args *a = &self.a
        a.inp = <const int8_t *>_addr(inp, np.int8, rows * in_features, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, rows * units, self.keep)
        a.w = <const int16_t *>_addr(packed_w, np.int16, em_packed_weights_len(units, in_features), self.keep)
        a.bias = <const int32_t *>_addr(bias, np.int32, (units + 15) // 16 * 16, self.keep)
        self._requant(&a.rq, mult, shift, units, out_zp, act_min, act_max, round_up_below)
        a.scratch = <int16_t *>_addr(scratch, np.int16, rows * ((in_features + 1) & ~1), self.keep)
        a.rows, a.in_features, a.units, a.in_offset = rows, in_features, units, in_offset
        a.threads = max(1, threads)
        self.fn = <em_kernel_fn>em_fully_connected
        self.args = a


cdef class RequantizeRows(Kernel):
    """acc [rows, channels] int32 (bias included) -> out int8: the output stage of a conv / FC
    whose accumulators were computed elsewhere (round_up_below as in those kernels)."""
    cdef em_requant_rows_args a

    def __init__(self, acc, out, mult, shift, *, long rows, int channels, int out_zp, int act_min, int act_max,
                 int round_up_below=ROUND_ALL_UP):
        cdef em_requant_rows_args *a = &self.a
        a.acc = <const int32_t *>_addr(acc, np.int32, rows * channels, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, rows * channels, self.keep)
        self._requant(&a.rq, mult, shift, channels, out_zp, act_min, act_max, round_up_below)
        a.rows, a.channels = rows, channels
        self.fn = <em_kernel_fn>em_requantize_rows
        self.args = a


cdef class Binary(Kernel):
    """ADD, SUB or MUL with broadcasting; shapes padded to 5-D, strides in elements (0 = broadcast).
    SUB takes ADD's arguments with in2_mult negated (its kernel is ADD's without the int16 wrap)."""
    cdef em_binary_args a

    def __init__(self, str kind, in1, in2, out, dims, s1, s2, *, int in1_offset, int in2_offset, int out_offset,
                 int out_mult, int out_shift, int in1_mult=0, int in1_shift=0, int in2_mult=0, int in2_shift=0,
                 int left_shift=0, int act_min=-128, int act_max=127):
        cdef em_binary_args *a = &self.a
        if len(dims) != 5 or len(s1) != 5 or len(s2) != 5:
            raise ValueError("dims and strides must have 5 entries")
        total = int(np.prod(dims))
        span1 = 1 + sum((d - 1) * s for d, s in zip(dims, s1))
        span2 = 1 + sum((d - 1) * s for d, s in zip(dims, s2))
        a.in1 = <const int8_t *>_addr(in1, np.int8, span1, self.keep)
        a.in2 = <const int8_t *>_addr(in2, np.int8, span2, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, total, self.keep)
        for i in range(5):
            if dims[i] < 1 or s1[i] < 0 or s2[i] < 0:
                raise ValueError(f"bad dims/strides {dims} {s1} {s2}")
            a.dims[i], a.s1[i], a.s2[i] = dims[i], s1[i], s2[i]
        if not (-128 <= act_min <= act_max <= 127):
            raise ValueError(f"activation range [{act_min}, {act_max}] is not inside int8")
        a.in1_offset, a.in2_offset, a.out_offset = in1_offset, in2_offset, out_offset
        a.in1_mult, a.in1_shift, a.in2_mult, a.in2_shift = in1_mult, in1_shift, in2_mult, in2_shift
        a.out_mult, a.out_shift, a.left_shift = out_mult, out_shift, left_shift
        a.act_min, a.act_max = act_min, act_max
        if kind == "add":
            self.fn = <em_kernel_fn>em_add
        elif kind == "sub":
            self.fn = <em_kernel_fn>em_sub
        elif kind == "mul":
            self.fn = <em_kernel_fn>em_mul
        else:
            raise ValueError(f"unknown binary op {kind!r}")
        self.name = kind
        self.args = a


def softmax_table(float in_scale, float beta):
    """The 256 float exps of SOFTMAX, computed in C with libm expf as the interpreter does."""
    table = np.empty(256, np.float32)
    cdef float[::1] tv = table
    em_softmax_table(in_scale, beta, &tv[0])
    return table


cdef class Softmax(Kernel):
    """Softmax over the last axis of [outer, depth] int8, output quantization (out_scale, out_zp)."""
    cdef em_softmax_args a

    def __init__(self, inp, out, int outer, int depth, table, float out_scale, int out_zp):
        cdef em_softmax_args *a = &self.a
        a.inp = <const int8_t *>_addr(inp, np.int8, outer * depth, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, outer * depth, self.keep)
        a.table = <const float *>_addr(table, np.float32, 256, self.keep)
        if not out_scale > 0:
            raise ValueError(f"output scale must be positive, got {out_scale}")
        a.outer, a.depth, a.out_scale, a.out_zp = outer, depth, out_scale, out_zp
        self.fn = <em_kernel_fn>em_softmax
        self.args = a


cdef class Mean(Kernel):
    """out[o, c] = requant(sum_n in[o, n, c] + pre_offset) with uniform (mult, shift), post offset out_zp."""
    cdef em_mean_args a

    def __init__(self, inp, out, int outer, int count, int inner, int pre_offset, int mult, int shift,
                 int out_zp, int round_up_below, scratch):
        cdef em_mean_args *a = &self.a
        a.inp = <const int8_t *>_addr(inp, np.int8, outer * count * inner, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, outer * inner, self.keep)
        a.scratch = <int32_t *>_addr(scratch, np.int32, inner, self.keep)
        padded = (inner + 15) // 16 * 16
        self._requant(&a.rq, np.full(padded, mult, np.int32), np.full(padded, shift, np.int32), inner, out_zp,
                      -128, 127, round_up_below)
        a.outer, a.count, a.inner, a.pre_offset = outer, count, inner, pre_offset
        self.fn = <em_kernel_fn>em_mean
        self.args = a


cdef class Pool(Kernel):
    cdef em_pool_args a

    def __init__(self, str kind, inp, out, *, int batch, int in_h, int in_w, int channels, int out_h, int out_w,
                 int k_h, int k_w, int stride_h, int stride_w, int pad_top, int pad_left, int act_min=-128,
                 int act_max=127):
        cdef em_pool_args *a = &self.a
        a.inp = <const int8_t *>_addr(inp, np.int8, batch * in_h * in_w * channels, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, batch * out_h * out_w * channels, self.keep)
        a.batch, a.in_h, a.in_w, a.channels, a.out_h, a.out_w = batch, in_h, in_w, channels, out_h, out_w
        a.k_h, a.k_w, a.stride_h, a.stride_w, a.pad_top, a.pad_left = k_h, k_w, stride_h, stride_w, pad_top, pad_left
        a.act_min, a.act_max = act_min, act_max
        if kind == "average":
            self.fn = <em_kernel_fn>em_average_pool
        elif kind == "max":
            self.fn = <em_kernel_fn>em_max_pool
        else:
            raise ValueError(f"unknown pooling {kind!r}")
        self.name = f"{kind}_pool"
        self.args = a


cdef class StridedCopy(Kernel):
    """out[out_start + sum(i*out_strides)] = in[in_start + sum(i*in_strides)] over a 5-D box (elements)."""
    cdef em_copy_args a

    def __init__(self, inp, out, dims, in_strides, out_strides, long in_start=0, long out_start=0, *,
                 fill=None):
        cdef em_copy_args *a = &self.a
        if inp.dtype != out.dtype:
            raise TypeError(f"copy from {inp.dtype} to {out.dtype}")
        if len(dims) != 5 or len(in_strides) != 5 or len(out_strides) != 5:
            raise ValueError("dims and strides must have 5 entries")
        if any(d < 1 for d in dims):
            raise ValueError(f"empty box {dims}")
        lo_i = in_start + sum((d - 1) * s for d, s in zip(dims, in_strides) if s < 0)
        hi_i = in_start + sum((d - 1) * s for d, s in zip(dims, in_strides) if s > 0)
        lo_o = out_start + sum((d - 1) * s for d, s in zip(dims, out_strides) if s < 0)
        hi_o = out_start + sum((d - 1) * s for d, s in zip(dims, out_strides) if s > 0)
        if lo_i < 0 or hi_i >= inp.size or lo_o < 0 or hi_o >= out.size:
            raise ValueError("copy box reaches outside its arrays")
        a.inp = <const int8_t *>_addr(inp, inp.dtype, 1, self.keep)
        a.out = <int8_t *>_addr(out, out.dtype, 1, self.keep)
        for i in range(5):
            a.dims[i], a.in_strides[i], a.out_strides[i] = dims[i], in_strides[i], out_strides[i]
        a.in_start, a.out_start = in_start, out_start
        a.elem_size = inp.dtype.itemsize
        a.fill_bytes = 0 if fill is None else out.nbytes
        a.fill = 0 if fill is None else fill
        self.fn = <em_kernel_fn>em_strided_copy
        self.args = a


cdef class Lut(Kernel):
    """out[i] = table[(uint8) in[i]] for i < split, tail_table[...] after: any int8 -> int8 function."""
    cdef em_lut_args a

    def __init__(self, inp, out, table, tail_table=None, split=None):
        cdef em_lut_args *a = &self.a
        if inp.size != out.size:
            raise ValueError(f"input has {inp.size} elements, output {out.size}")
        a.inp = <const int8_t *>_addr(inp, np.int8, 1, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, inp.size, self.keep)
        a.table = <const int8_t *>_addr(table, np.int8, 256, self.keep)
        a.tail_table = <const int8_t *>_addr(table if tail_table is None else tail_table, np.int8, 256, self.keep)
        a.n = inp.size
        a.split = inp.size if split is None else max(0, min(int(split), inp.size))
        self.fn = <em_kernel_fn>em_lut
        self.args = a


cdef class Quantize(Kernel):
    """float32 -> int8 or uint8 (QUANTIZE), int8 or uint8 -> float32 (DEQUANTIZE), the interpreter's rounding;
    the float side picks the direction, the quantized side's dtype the kernel.  Raises TypeError for other dtypes."""
    cdef em_quant_args a

    def __init__(self, inp, out, float scale, int zero_point):
        cdef em_quant_args *a = &self.a
        if inp.size != out.size:
            raise ValueError(f"input has {inp.size} elements, output {out.size}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        quantizing = inp.dtype == np.float32
        qdtype = out.dtype if quantizing else inp.dtype
        if qdtype == np.int8:
            self.fn = <em_kernel_fn>(em_quantize_f32 if quantizing else em_dequantize_s8)
        elif qdtype == np.uint8:
            self.fn = <em_kernel_fn>(em_quantize_f32_u8 if quantizing else em_dequantize_u8)
        else:
            raise TypeError(f"quantized side is {qdtype}; int8 or uint8 expected")
        a.inp = <const void *>_addr(inp, np.float32 if quantizing else qdtype, 1, self.keep)
        a.out = <void *>_addr(out, qdtype if quantizing else np.float32, inp.size, self.keep)
        a.n, a.scale, a.zero_point = inp.size, scale, zero_point
        self.args = a


cdef class Transpose(Kernel):
    """TRANSPOSE of 1-byte elements: out (contiguous, dims) <- in[sum(i[k] * in_strides[k])], 5-D."""
    cdef em_transpose_args a

    def __init__(self, inp, out, dims, in_strides):
        cdef em_transpose_args *a = &self.a
        if inp.dtype.itemsize != 1 or out.dtype.itemsize != 1:
            raise TypeError(f"transpose of {inp.dtype} to {out.dtype}: 1-byte elements only")
        if len(dims) != 5 or len(in_strides) != 5:
            raise ValueError("dims and in_strides must have 5 entries")
        if any(d < 1 for d in dims) or any(s < 0 for s in in_strides):
            raise ValueError(f"empty box {list(dims)} or negative strides {list(in_strides)}")
        n = int(np.prod(dims, dtype=np.int64))
        if n != out.size or sum((d - 1) * s for d, s in zip(dims, in_strides)) >= inp.size:
            raise ValueError("transpose box reaches outside its arrays")
        a.inp = <const int8_t *>_addr(inp.view(np.int8), np.int8, 1, self.keep)
        a.out = <int8_t *>_addr(out.view(np.int8), np.int8, n, self.keep)
        for i in range(5):
            a.dims[i], a.in_strides[i] = dims[i], in_strides[i]
        self.fn = <em_kernel_fn>em_transpose
        self.args = a


cdef class MinMax(Kernel):
    """MAXIMUM or MINIMUM of raw int8 values with broadcasting; shapes padded to 5-D, strides in elements."""
    cdef em_binary_args a

    def __init__(self, str kind, in1, in2, out, dims, s1, s2):
        cdef em_binary_args *a = &self.a
        if kind not in ("maximum", "minimum"):
            raise ValueError(f"unknown min/max kind {kind!r}")
        if len(dims) != 5 or len(s1) != 5 or len(s2) != 5:
            raise ValueError("dims and strides must have 5 entries")
        for i in range(5):
            if dims[i] < 1 or s1[i] < 0 or s2[i] < 0:
                raise ValueError(f"bad dims/strides {dims} {s1} {s2}")
        span1 = 1 + sum((d - 1) * s for d, s in zip(dims, s1))
        span2 = 1 + sum((d - 1) * s for d, s in zip(dims, s2))
        a.in1 = <const int8_t *>_addr(in1, np.int8, span1, self.keep)
        a.in2 = <const int8_t *>_addr(in2, np.int8, span2, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, int(np.prod(dims)), self.keep)
        for i in range(5):
            a.dims[i], a.s1[i], a.s2[i] = dims[i], s1[i], s2[i]
        self.fn = <em_kernel_fn>(em_maximum if kind == "maximum" else em_minimum)
        self.args = a


cdef class ResizeBilinear(Kernel):
    """RESIZE_BILINEAR on int8 NHWC: inp [batch, in_h, in_w, channels] -> out [batch, out_h, out_w, channels].
    ymap: int32 [3, out_h] (lower source row, upper source row, fraction in 1/1024 in [-512, 1023]), xmap: int32
    [3, out_w] likewise (kernels/ref/resize_bilinear.py axis_map).  Raises ValueError for indices outside the input
    or fractions outside that range (the int32 sums rely on it)."""
    cdef em_resize_bilinear_args a

    def __init__(self, inp, out, ymap, xmap, *, int batch, int in_h, int in_w, int channels, int out_h, int out_w):
        cdef em_resize_bilinear_args *a = &self.a
        for name, m, n_in, n_out in (("ymap", ymap, in_h, out_h), ("xmap", xmap, in_w, out_w)):
            if m.shape != (3, n_out):
                raise ValueError(f"{name} has shape {m.shape}; (3, {n_out}) expected")
            if m[:2].min() < 0 or m[:2].max() >= n_in or m[2].min() < -512 or m[2].max() > 1023:
                raise ValueError(f"{name} reaches outside the input or has a fraction outside [-512, 1023]")
        a.inp = <const int8_t *>_addr(inp, np.int8, batch * in_h * in_w * channels, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, batch * out_h * out_w * channels, self.keep)
        a.ymap = <const int32_t *>_addr(ymap, np.int32, 3 * out_h, self.keep)
        a.xmap = <const int32_t *>_addr(xmap, np.int32, 3 * out_w, self.keep)
        a.batch, a.in_h, a.in_w, a.channels, a.out_h, a.out_w = batch, in_h, in_w, channels, out_h, out_w
        self.fn = <em_kernel_fn>em_resize_bilinear
        self.args = a


cdef class Prelu(Binary):
    """PRELU: Binary's arguments with in2 = alpha; (in1_mult, in1_shift) scale x - zp >= 0, (in2_mult, in2_shift)
    scale (x - zp) * (alpha - alpha_zp) below; output clamped to int8."""

    def __init__(self, inp, alpha, out, dims, s1, s2, **params):
        Binary.__init__(self, "add", inp, alpha, out, dims, s1, s2, **params)
        self.fn = <em_kernel_fn>em_prelu
        self.name = "prelu"


cdef class BatchMatMul(Kernel):
    """BATCH_MATMUL on int8: out [batch (3 axes), rows, cols] (contiguous) from lhs (i, k) at i * lhs_rs +
    k * lhs_ks and rhs (k, c) at k * rhs_ks + c * rhs_cs, per batch offsets lhs_bs / rhs_bs (0: broadcast);
    offsets are the negated zero points; (mult, shift) the output multiplier.  scratch: int16 >= (rows + cols) *
    depth (the operands widened)."""
    cdef em_batch_matmul_args a

    def __init__(self, lhs, rhs, out, batch, lhs_bs, rhs_bs, *, int rows, int cols, int depth, long lhs_rs,
                 long lhs_ks, long rhs_ks, long rhs_cs, int lhs_offset, int rhs_offset, int out_zp, int mult,
                 int shift, scratch):
        cdef em_batch_matmul_args *a = &self.a
        if len(batch) != 3 or len(lhs_bs) != 3 or len(rhs_bs) != 3 or min(batch) < 1 or min(rows, cols, depth) < 1:
            raise ValueError(f"bad batch {batch} or matrix {rows}x{depth}x{cols}")
        span_l = 1 + sum((n - 1) * s for n, s in zip(batch, lhs_bs)) + (rows - 1) * lhs_rs + (depth - 1) * lhs_ks
        span_r = 1 + sum((n - 1) * s for n, s in zip(batch, rhs_bs)) + (depth - 1) * rhs_ks + (cols - 1) * rhs_cs
        if min(*lhs_bs, *rhs_bs, lhs_rs, lhs_ks, rhs_ks, rhs_cs) < 0:
            raise ValueError("negative strides")
        a.lhs = <const int8_t *>_addr(lhs, np.int8, span_l, self.keep)
        a.rhs = <const int8_t *>_addr(rhs, np.int8, span_r, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, int(np.prod(batch)) * rows * cols, self.keep)
        a.scratch = <int16_t *>_addr(scratch, np.int16, (rows + cols) * depth, self.keep)
        if mult < 0:
            raise ValueError("negative quantized multiplier")
        for i in range(3):
            a.batch[i], a.lhs_bs[i], a.rhs_bs[i] = batch[i], lhs_bs[i], rhs_bs[i]
        a.rows, a.cols, a.depth = rows, cols, depth
        a.lhs_rs, a.lhs_ks, a.rhs_ks, a.rhs_cs = lhs_rs, lhs_ks, rhs_ks, rhs_cs
        a.lhs_offset, a.rhs_offset, a.out_zp, a.mult, a.shift = lhs_offset, rhs_offset, out_zp, mult, shift
        self.fn = <em_kernel_fn>em_batch_matmul
        self.args = a


cdef class ArgMinMax(Kernel):
    """ARG_MAX (is_max) or ARG_MIN over the middle axis of inp [outer, axis_size, inner] (int8 or uint8) ->
    out [outer, inner] int32 or int64; the first index on ties.  scratch: int32 >= 2 * inner."""
    cdef em_arg_min_max_args a

    def __init__(self, inp, out, *, long outer, int axis_size, int inner, bint is_max, scratch):
        cdef em_arg_min_max_args *a = &self.a
        if inp.dtype not in (np.int8, np.uint8) or out.dtype not in (np.int32, np.int64):
            raise TypeError(f"arg min/max of {inp.dtype} to {out.dtype}: int8/uint8 to int32/int64 only")
        if min(outer, axis_size, inner) < 1:
            raise ValueError("empty arg min/max")
        a.inp = <const int8_t *>_addr(inp.view(np.int8), np.int8, outer * axis_size * inner, self.keep)
        a.out = <void *>_addr(out, out.dtype, outer * inner, self.keep)
        a.scratch = <int32_t *>_addr(scratch, np.int32, 2 * inner, self.keep)
        a.outer, a.axis_size, a.inner, a.is_max = outer, axis_size, inner, is_max
        a.out64, a.is_unsigned = out.dtype == np.int64, inp.dtype == np.uint8
        self.fn = <em_kernel_fn>em_arg_min_max
        self.args = a


cdef class ReduceMax(Kernel):
    """REDUCE_MAX (is_max) or REDUCE_MIN of int8 stored values: inp a contiguous 5-D box dims, each element folded
    into out[sum(i[k] * out_strides[k])] (strides 0 on reduced axes); out has out_size elements."""
    cdef em_reduce_args a

    def __init__(self, inp, out, dims, out_strides, *, bint is_max):
        cdef em_reduce_args *a = &self.a
        if len(dims) != 5 or len(out_strides) != 5 or min(dims) < 1 or min(out_strides) < 0:
            raise ValueError(f"bad dims {dims} or strides {out_strides}")
        if 1 + sum((d - 1) * s for d, s in zip(dims, out_strides)) > out.size:
            raise ValueError("reduction reaches outside the output")
        a.inp = <const int8_t *>_addr(inp, np.int8, int(np.prod(dims)), self.keep)
        a.out = <int8_t *>_addr(out, np.int8, 1, self.keep)
        for i in range(5):
            a.dims[i], a.out_strides[i] = dims[i], out_strides[i]
        a.out_size, a.is_max = out.size, is_max
        self.fn = <em_kernel_fn>em_reduce_max
        self.args = a


cdef class ResizeNearest(Kernel):
    """RESIZE_NEAREST_NEIGHBOR with any index map: out [batch, out_h, out_w, channels] pixel (y, x) <- inp
    [batch, in_h, in_w, channels] pixel (ymap[y], xmap[x]); 1-byte elements.  Raises ValueError for an index
    outside the input."""
    cdef em_resize_nearest_args a

    def __init__(self, inp, out, ymap, xmap, *, int batch, int in_h, int in_w, int channels, int out_h, int out_w):
        cdef em_resize_nearest_args *a = &self.a
        if inp.dtype.itemsize != 1 or out.dtype != inp.dtype:
            raise TypeError(f"resize of {inp.dtype} to {out.dtype}: one 1-byte type only")
        for m, n_in, n_out in ((ymap, in_h, out_h), (xmap, in_w, out_w)):
            if m.shape != (n_out,) or m.min() < 0 or m.max() >= n_in:
                raise ValueError("index map of the wrong size or reaching outside the input")
        a.inp = <const void *>_addr(inp.view(np.int8), np.int8, batch * in_h * in_w * channels, self.keep)
        a.out = <void *>_addr(out.view(np.int8), np.int8, batch * out_h * out_w * channels, self.keep)
        a.ymap = <const int32_t *>_addr(ymap, np.int32, out_h, self.keep)
        a.xmap = <const int32_t *>_addr(xmap, np.int32, out_w, self.keep)
        a.batch, a.in_h, a.in_w, a.channels, a.out_h, a.out_w, a.elem_size = batch, in_h, in_w, channels, out_h, out_w, 1
        self.fn = <em_kernel_fn>em_resize_nearest
        self.args = a


cdef class Gather(Kernel):
    """GATHER of 1-byte elements: out [outer, n, inner] <- inp [outer, axis_size, inner] at positions pos (int32,
    n values).  Raises ValueError for a position outside [0, axis_size)."""
    cdef em_gather_args a

    def __init__(self, inp, out, pos, *, long outer, int axis_size, int inner):
        cdef em_gather_args *a = &self.a
        if inp.dtype.itemsize != 1 or out.dtype != inp.dtype:
            raise TypeError(f"gather of {inp.dtype} to {out.dtype}: one 1-byte type only")
        if pos.size < 1 or pos.min() < 0 or pos.max() >= axis_size or min(outer, axis_size, inner) < 1:
            raise ValueError("positions outside the axis, or an empty gather")
        a.inp = <const void *>_addr(inp.view(np.int8), np.int8, outer * axis_size * inner, self.keep)
        a.out = <void *>_addr(out.view(np.int8), np.int8, outer * pos.size * inner, self.keep)
        a.pos = <const int32_t *>_addr(pos, np.int32, pos.size, self.keep)
        a.outer, a.axis_size, a.inner, a.n, a.elem_size = outer, axis_size, inner, pos.size, 1
        self.fn = <em_kernel_fn>em_gather
        self.args = a


cdef class LogSoftmax(Kernel):
    """LOG_SOFTMAX over the last axis of [outer, depth] int8; table = softmax_table(in_scale, 1.0)."""
    cdef em_log_softmax_args a

    def __init__(self, inp, out, int outer, int depth, table, float in_scale, float out_scale, int out_zp):
        cdef em_log_softmax_args *a = &self.a
        a.inp = <const int8_t *>_addr(inp, np.int8, outer * depth, self.keep)
        a.out = <int8_t *>_addr(out, np.int8, outer * depth, self.keep)
        a.table = <const float *>_addr(table, np.float32, 256, self.keep)
        if not (in_scale > 0 and out_scale > 0):
            raise ValueError(f"scales must be positive, got {in_scale}, {out_scale}")
        a.outer, a.depth, a.in_scale, a.out_scale, a.out_zp = outer, depth, in_scale, out_scale, out_zp
        self.fn = <em_kernel_fn>em_log_softmax
        self.args = a


cdef class SquaredDifference(Binary):
    """SQUARED_DIFFERENCE: Binary's ADD arguments (input multipliers < 1, left_shift 7) run by
    em_squared_difference."""

    def __init__(self, in1, in2, out, dims, s1, s2, **params):
        Binary.__init__(self, "add", in1, in2, out, dims, s1, s2, **params)
        self.fn = <em_kernel_fn>em_squared_difference
        self.name = "squared_difference"


cdef class ReduceSum(Kernel):
    """SUM of int8: inp a contiguous 5-D box dims folded into out_size int32 sums (out_strides 0 on reduced axes,
    count elements each), then rescaled in float as the interpreter.  scratch: int32 >= out size."""
    cdef em_reduce_sum_args a

    def __init__(self, inp, out, dims, out_strides, *, float in_scale, int in_zp, float out_scale, int out_zp,
                 long count, scratch):
        cdef em_reduce_sum_args *a = &self.a
        if len(dims) != 5 or len(out_strides) != 5 or min(dims) < 1 or min(out_strides) < 0:
            raise ValueError(f"bad dims {dims} or strides {out_strides}")
        if 1 + sum((d - 1) * s for d, s in zip(dims, out_strides)) > out.size:
            raise ValueError("reduction reaches outside the output")
        if not (in_scale > 0 and out_scale > 0) or count < 1:
            raise ValueError("scales must be positive and count >= 1")
        a.r.inp = <const int8_t *>_addr(inp, np.int8, int(np.prod(dims)), self.keep)
        a.r.out = <int8_t *>_addr(out, np.int8, 1, self.keep)
        a.scratch = <int32_t *>_addr(scratch, np.int32, out.size, self.keep)
        for i in range(5):
            a.r.dims[i], a.r.out_strides[i] = dims[i], out_strides[i]
        a.r.out_size, a.r.is_max = out.size, 0
        a.in_scale, a.in_zp, a.out_scale, a.out_zp, a.count = in_scale, in_zp, out_scale, out_zp, count
        self.fn = <em_kernel_fn>em_reduce_sum
        self.args = a


cdef class Program:
    """Kernels in execution order, run as one C loop with the GIL released."""
    cdef em_kernel_fn *fns
    cdef const void **argv
    cdef int n
    cdef readonly list kernels

    def __cinit__(self, kernels):
        self.kernels = list(kernels)
        self.n = len(self.kernels)
        self.fns = <em_kernel_fn *>malloc(max(1, self.n) * sizeof(em_kernel_fn))
        self.argv = <const void **>malloc(max(1, self.n) * sizeof(void *))
        if self.fns == NULL or self.argv == NULL:
            raise MemoryError()
        cdef Kernel k
        for i, obj in enumerate(self.kernels):
            k = <Kernel?>obj
            self.fns[i] = k.fn
            self.argv[i] = k.args

    def __dealloc__(self):
        free(self.fns)
        free(self.argv)

    def run(self):
        cdef int i
        with nogil:
            for i in range(self.n):
                self.fns[i](self.argv[i])

    def __len__(self):
        return self.n

    def profile(self, int repeats=10):
        """Seconds per kernel (median of `repeats` runs of the whole program, kernel by kernel)."""
        cdef int i, r
        cdef double t0
        times = np.empty((repeats, self.n))
        cdef double[:, ::1] tv = times
        for r in range(repeats):
            for i in range(self.n):
                t0 = _now()
                with nogil:
                    self.fns[i](self.argv[i])
                tv[r, i] = _now() - t0
        return np.median(times, axis=0)


cdef extern from "<time.h>" nogil:
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec *ts)
    int CLOCK_MONOTONIC


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9
