# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Run-length codec for int8 boundary activations (reference: kernels/ref/rle.py).

Post-ReLU int8 activations are mostly equal to the tensor's zero point (often -128,
byte 0x80), so runs of *any* byte value are compressed, not just zeros.

Format: a sequence of tokens, nothing else (no header, no length: the receiver knows
the decoded size from the tensors' shapes and passes it as ``expected_size``).
Each token starts with an unsigned LEB128 varint ``h`` (7 bits per byte, least
significant group first, high bit = more follows; at most 9 bytes, so h < 2**63):

    h even:  literal: (h >> 1) + 1 bytes follow, copied verbatim
    h odd:   run:     one byte v follows; v repeated (h >> 1) + 3 times

The encoder's output is canonical: every maximal run of >= 3 equal bytes becomes one
run token, and each stretch between such runs (runs of 1 or 2 included) becomes one
literal token.  A run of 3..66 bytes costs 2 bytes; the worst case (no runs) costs
n + varint(2 * (n - 1)) bytes, and no input grows by more than n // 64 + 1 bytes.

The encoder looks for the next run eight positions at a time (with a, b, c the 64-bit
words at p, p+1, p+2, byte k of (a ^ b) | (b ^ c) is zero iff a run of 3 starts at p+k),
and extends runs a word at a time.

The decoder accepts any well-formed token stream (canonical or not).  It never
writes past ``expected_size`` and never reads past the input; a truncated token, a
varint longer than 9 bytes, a token that would overflow ``expected_size``, or a
stream that decodes to fewer bytes raises ValueError.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

cdef enum:
    MIN_RUN = 3      # shortest run encoded as a run token
    MAX_VARINT = 9   # longest token header, bytes (h < 2**63)

# decoder status codes (set inside nogil, turned into ValueError outside)
cdef enum:
    OK = 0
    E_TRUNC_VARINT = 1
    E_LONG_VARINT = 2
    E_TRUNC_RUN = 3
    E_TRUNC_LITERAL = 4
    E_OVERFLOW = 5
    E_SHORT = 6


cdef inline Py_ssize_t _put_varint(uint8_t* out, uint64_t v) noexcept nogil:
    cdef Py_ssize_t k = 0
    while v >= 0x80:
        out[k] = <uint8_t>((v & 0x7F) | 0x80)
        v >>= 7
        k += 1
    out[k] = <uint8_t>v
    return k + 1


cdef inline Py_ssize_t _varint_len(uint64_t v) noexcept nogil:
    cdef Py_ssize_t k = 1
    while v >= 0x80:
        v >>= 7
        k += 1
    return k


cdef inline Py_ssize_t _literal_len(Py_ssize_t n) noexcept nogil:
    return _varint_len((<uint64_t>(n - 1)) << 1) + n if n > 0 else 0


cdef inline Py_ssize_t _literal(uint8_t* out, const uint8_t* src, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k = _put_varint(out, (<uint64_t>(n - 1)) << 1)
    memcpy(out + k, src, <size_t>n)
    return k + n


cdef extern from *:
    """
    #include <stdint.h>
    /* Index of the lowest-addressed zero byte of a word loaded from memory (t != 0 has one),
       or -1 where the byte order or compiler does not allow the bit trick. */
    static inline int em_first_zero_byte(uint64_t t) {
    #if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        const uint64_t lo7 = 0x7F7F7F7F7F7F7F7FULL;
        uint64_t z = ~(((t & lo7) + lo7) | t | lo7);  /* exactly the zero bytes' high bits */
        return z ? (int)(__builtin_ctzll(z) >> 3) : -1;
    #else
        (void)t;
        return -1;
    #endif
    }
    """
    int em_first_zero_byte(uint64_t t) noexcept nogil


cdef inline uint64_t _load8(const uint8_t* p) noexcept nogil:
    cdef uint64_t x
    memcpy(&x, p, 8)  # unaligned load; one instruction at -O2
    return x


cdef inline Py_ssize_t _next_run(const uint8_t* s, Py_ssize_t p, Py_ssize_t n) noexcept nogil:
    """The first q >= p with s[q] == s[q+1] == s[q+2], or n.  Called with p at the end of the
    previous maximal run (or 0), so q is where a maximal run starts.  Eight positions per
    step: byte k of t is zero iff position p+k starts a triple (any byte order)."""
    cdef uint64_t a, b, t
    cdef Py_ssize_t k
    while p + 10 <= n:
        a = _load8(s + p)
        b = _load8(s + p + 1)
        t = (a ^ b) | (b ^ _load8(s + p + 2))
        if (t - 0x0101010101010101ULL) & ~t & 0x8080808080808080ULL:  # some byte of t is zero
            k = em_first_zero_byte(t)
            if k >= 0:
                return p + k
            for k in range(8):  # big-endian or no builtin: look byte by byte
                if s[p + k] == s[p + k + 1] and s[p + k + 1] == s[p + k + 2]:
                    return p + k
        p += 8
    while p + 2 < n:
        if s[p] == s[p + 1] and s[p + 1] == s[p + 2]:
            return p
        p += 1
    return n


cdef inline Py_ssize_t _run_end(const uint8_t* s, Py_ssize_t j, Py_ssize_t n, uint8_t v) noexcept nogil:
    """The first index >= j whose byte is not v, or n."""
    cdef uint64_t vv = v * 0x0101010101010101ULL
    while j + 8 <= n and _load8(s + j) == vv:
        j += 8
    while j < n and s[j] == v:
        j += 1
    return j


def max_encoded_size(Py_ssize_t n):
    """An upper bound on len(rle_encode(x)) for len(x) == n (see the docstring's proof sketch)."""
    if n < 0:
        raise ValueError(f"size {n} is negative")
    return n + n // 64 + 16


def rle_encode(const uint8_t[::1] src):
    """The canonical token stream of ``src`` (bytes-like, uint8)."""
    cdef Py_ssize_t n = src.shape[0]
    if n == 0:
        return b""
    cdef Py_ssize_t cap = max_encoded_size(n)
    cdef uint8_t* out = <uint8_t*>malloc(<size_t>cap)
    if out == NULL:
        raise MemoryError(f"cannot allocate {cap} bytes for the encoded stream")
    cdef const uint8_t* s = &src[0]
    cdef Py_ssize_t i = 0, j, o = 0, lit = 0
    cdef uint8_t v
    cdef uint64_t h
    cdef bint overflow = False
    try:
        with nogil:
            while True:
                i = _next_run(s, i, n)  # start of the next maximal run of >= MIN_RUN bytes, or n
                if i >= n:
                    break
                v = s[i]
                j = _run_end(s, i + MIN_RUN, n, v)
                h = ((<uint64_t>(j - i - MIN_RUN)) << 1) | 1
                if o + _literal_len(i - lit) + _varint_len(h) + 1 > cap:
                    overflow = True
                    break
                if i > lit:
                    o += _literal(out + o, s + lit, i - lit)
                o += _put_varint(out + o, h)
                out[o] = v
                o += 1
                lit = i = j
            if not overflow and n > lit:
                if o + _literal_len(n - lit) > cap:
                    overflow = True
                else:
                    o += _literal(out + o, s + lit, n - lit)
        if overflow:  # cannot happen (max_encoded_size is a proven bound); never write past the buffer
            raise RuntimeError(f"rle_encode: output bound {cap} exceeded for {n} input bytes")
        return PyBytes_FromStringAndSize(<char*>out, o)
    finally:
        free(out)


def rle_decode(const uint8_t[::1] src, Py_ssize_t expected_size):
    """Decode a token stream into exactly ``expected_size`` bytes; ValueError on malformed input."""
    if expected_size < 0:
        raise ValueError(f"expected_size {expected_size} is negative")
    cdef Py_ssize_t m = src.shape[0]
    result = PyBytes_FromStringAndSize(NULL, expected_size)  # written only here, before anyone sees it
    if m == 0:
        if expected_size != 0:
            raise ValueError(f"rle stream is empty but {expected_size} bytes were expected")
        return result
    cdef uint8_t* out = <uint8_t*>PyBytes_AS_STRING(result)
    cdef const uint8_t* s = &src[0]
    cdef Py_ssize_t ip = 0, op = 0, k
    cdef uint64_t h, length, room
    cdef uint8_t b
    cdef int err = OK
    cdef Py_ssize_t where = 0  # input offset of the failing token
    with nogil:
        while ip < m:
            where = ip
            h = 0
            k = 0
            while True:
                if ip >= m:
                    err = E_TRUNC_VARINT
                    break
                if k == MAX_VARINT:
                    err = E_LONG_VARINT
                    break
                b = s[ip]
                ip += 1
                h |= (<uint64_t>(b & 0x7F)) << (7 * k)
                k += 1
                if b < 0x80:
                    break
            if err != OK:
                break
            room = <uint64_t>(expected_size - op)
            if h & 1:
                length = (h >> 1) + MIN_RUN  # h < 2**63: cannot wrap
                if ip >= m:
                    err = E_TRUNC_RUN
                    break
                if length > room:
                    err = E_OVERFLOW
                    break
                memset(out + op, s[ip], <size_t>length)
                ip += 1
            else:
                length = (h >> 1) + 1
                if length > room:
                    err = E_OVERFLOW
                    break
                if length > <uint64_t>(m - ip):
                    err = E_TRUNC_LITERAL
                    break
                memcpy(out + op, s + ip, <size_t>length)
                ip += <Py_ssize_t>length
            op += <Py_ssize_t>length
        if err == OK and op != expected_size:
            err = E_SHORT
    if err == OK:
        return result
    if err == E_TRUNC_VARINT:
        raise ValueError(f"rle stream truncated: token header at byte {where} runs past the end ({m} bytes)")
    if err == E_LONG_VARINT:
        raise ValueError(f"rle stream malformed: token header at byte {where} is longer than {MAX_VARINT} bytes")
    if err == E_TRUNC_RUN:
        raise ValueError(f"rle stream truncated: run token at byte {where} has no value byte")
    if err == E_TRUNC_LITERAL:
        raise ValueError(f"rle stream truncated: literal of {length} bytes at byte {where} "
                         f"but only {m - ip} bytes follow")
    if err == E_OVERFLOW:
        raise ValueError(f"rle stream malformed: token at byte {where} expands to {length} bytes "
                         f"but only {expected_size - op} of the expected {expected_size} remain")
    raise ValueError(f"rle stream decodes to {op} bytes, expected {expected_size}")
