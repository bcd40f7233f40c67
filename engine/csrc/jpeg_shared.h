/* What Darkroom's libjpeg code shares: error handling that longjmps back to the caller with
 * libjpeg's message (jpeg_encode.c, jpeg_transcode.c, jpeg_region.c), and the fast statistics
 * for optimised Huffman tables (the encoder and the transcoder). Everything here is static:
 * each file gets its own. */
#ifndef DARKROOM_JPEG_SHARED_H
#define DARKROOM_JPEG_SHARED_H

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jpegint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
/* Exported by libjpeg-turbo (jchuff.c) but declared only in its private headers. */
EXTERN(void) jpeg_gen_optimal_table(j_compress_ptr cinfo, JHUFF_TBL *htbl, long freq[]);

struct dr_err {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char *msg;
  int msglen;
};

static inline void dr_error_exit(j_common_ptr cinfo) {
  struct dr_err *e = (struct dr_err *)cinfo->err;
  char buf[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, buf);
  if (e->msg && e->msglen > 0) {
    strncpy(e->msg, buf, e->msglen - 1);
    e->msg[e->msglen - 1] = 0;
  }
  longjmp(e->jump, 1);
}

static inline void dr_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* libjpeg's error manager, set to report into `msg` and longjmp to e->jump (the caller's
 * setjmp, right after this). */
static inline struct jpeg_error_mgr *dr_err_init(struct dr_err *e, char *msg, int msglen) {
  struct jpeg_error_mgr *pub = jpeg_std_error(&e->pub);
  pub->error_exit = dr_error_exit;
  pub->output_message = dr_output_message;
  e->msg = msg;
  e->msglen = msglen;
  return pub;
}

static inline void dr_fail(j_common_ptr cinfo, const char *msg) {
  struct dr_err *e = (struct dr_err *)cinfo->err;
  if (e->msg && e->msglen > 0) {
    strncpy(e->msg, msg, e->msglen - 1);
    e->msg[e->msglen - 1] = 0;
  }
  longjmp(e->jump, 1);
}

/* ---- Output into memory ----
 * libjpeg's jpeg_mem_dest frees the buffer *outbuffer points to when it grows and sets
 * *outbuffer again only when compression finishes, so an error path that frees *outbuffer
 * after a growth frees it twice (and leaks the live one). This destination keeps its one live
 * buffer in `buf` at every moment (grown with realloc, which leaves it valid on failure): an
 * error path frees `buf` once, a successful one hands it to the caller. */
struct dr_dest {
  struct jpeg_destination_mgr pub;
  unsigned char *buf;
  size_t cap;
};

static void dr_dest_init(j_compress_ptr c) { (void)c; }

static boolean dr_dest_grow(j_compress_ptr c) {
  struct dr_dest *d = (struct dr_dest *)c->dest;
  size_t cap = d->cap * 2;
  unsigned char *n = (unsigned char *)realloc(d->buf, cap);
  if (!n) dr_fail((j_common_ptr)c, "out of memory");
  d->pub.next_output_byte = n + d->cap; /* the whole old buffer is full when libjpeg calls this */
  d->pub.free_in_buffer = cap - d->cap;
  d->buf = n;
  d->cap = cap;
  return TRUE;
}

static void dr_dest_term(j_compress_ptr c) { (void)c; }

/* Write c's output into d, starting with `cap` bytes. d->buf is NULL or the live buffer from
 * here on, whatever fails. */
static inline void dr_dest_start(j_compress_ptr c, struct dr_dest *d, size_t cap) {
  d->cap = cap < 4096 ? 4096 : cap;
  d->buf = (unsigned char *)malloc(d->cap);
  if (!d->buf) dr_fail((j_common_ptr)c, "out of memory");
  d->pub.init_destination = dr_dest_init;
  d->pub.empty_output_buffer = dr_dest_grow;
  d->pub.term_destination = dr_dest_term;
  d->pub.next_output_byte = d->buf;
  d->pub.free_in_buffer = d->cap;
  c->dest = &d->pub;
}

/* Bytes written so far. */
static inline unsigned long dr_dest_size(const struct dr_dest *d) { return (unsigned long)(d->cap - d->pub.free_in_buffer); }

/* ---- Fast statistics pass for optimised Huffman tables (sequential mode) ----
 * libjpeg-turbo's own pass (htest_one_block) tests each of the 63 AC coefficients with a branch
 * and counts bits in a loop; it costs more than the whole SIMD entropy encoder. This one finds
 * the non-zero coefficients with SSE2, maps them to a zig-zag bit mask with 8 table lookups and
 * walks the set bits. It counts exactly what libjpeg counts: the tables, and so the files, are
 * byte-identical (checked on the corpus). */
struct dr_stats {
  long dc[NUM_HUFF_TBLS][257];
  long ac[NUM_HUFF_TBLS][257];
  uint32_t ac4[NUM_HUFF_TBLS][4][256]; /* AC counts as count_ac makes them, summed into ac */
  int last_dc[MAX_COMPS_IN_SCAN];
  /* The optimal tables, made at the end of the statistics pass. */
  JHUFF_TBL dc_tbl[NUM_HUFF_TBLS], ac_tbl[NUM_HUFF_TBLS];
  boolean have_dc[NUM_HUFF_TBLS], have_ac[NUM_HUFF_TBLS];
};

static const uint8_t ZZ[64] = {0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,
                               12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,  7,  14, 21, 28,
                               35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
                               58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

/* ZZMASK[r][bits]: zig-zag positions of the non-zero columns `bits` of row r of a block. */
static uint64_t ZZMASK[8][256];
static pthread_once_t ZZMASK_ONCE __attribute__((unused)) = PTHREAD_ONCE_INIT; /* jpeg_region.c counts nothing */

static inline void zzmask_init(void) {
  int pos[64];
  for (int k = 0; k < 64; k++) pos[ZZ[k]] = k;
  for (int r = 0; r < 8; r++)
    for (int v = 0; v < 256; v++) {
      uint64_t m = 0;
      for (int c = 0; c < 8; c++)
        if (v & (1 << c)) m |= (uint64_t)1 << pos[r * 8 + c];
      ZZMASK[r][v] = m;
    }
}

static inline int nbits_of(int v) {
  if (v < 0) v = -v;
  return v ? 32 - __builtin_clz((unsigned)v) : 0;
}

/* The same for a value known not to be zero: no branch. */
static inline int nbits_nonzero(int v) {
  int m = v >> 31;
  return 32 - __builtin_clz((unsigned)((v ^ m) - m));
}

/* How many rows of a block (from the top) hold its non-zero coefficients. */
static inline int rows_used(uint64_t nat) { return nat ? 8 - __builtin_clzll(nat) / 8 : 0; }

/* Bit i set: coefficient i (natural order) is not zero. */
static inline uint64_t nonzero_natural(const JCOEF *b) {
#ifdef __SSE2__
  const __m128i z = _mm_setzero_si128();
  uint64_t m = 0;
  for (int i = 0; i < 4; i++) {
    __m128i lo = _mm_cmpeq_epi16(_mm_loadu_si128((const __m128i *)(b + 16 * i)), z);
    __m128i hi = _mm_cmpeq_epi16(_mm_loadu_si128((const __m128i *)(b + 16 * i + 8)), z);
    m |= (uint64_t)(uint16_t)~_mm_movemask_epi8(_mm_packs_epi16(lo, hi)) << (16 * i);
  }
  return m;
#else
  uint64_t m = 0;
  for (int i = 0; i < 64; i++) m |= (uint64_t)(b[i] != 0) << i;
  return m;
#endif
}

/* Count the AC symbols of one block (natural order; `nat`: its non-zero mask, DC included).
 * The symbols are listed first and counted after, spread over four histograms: the same
 * symbol again and again (0x01, EOB) otherwise makes every count wait for the one before it. */
static inline void count_ac(uint32_t (*h)[256], const JCOEF *b, uint64_t nat) {
  nat &= ~(uint64_t)1;
  if (!nat) {
    h[0][0]++; /* EOB */
    return;
  }
  uint8_t sym[72];
  int n = 0;
  uint64_t mask = 0;
  for (int r = 0; r < 8; r++) mask |= ZZMASK[r][(nat >> (8 * r)) & 0xFF];
  int prev = 0;
  while (mask) {
    int k = __builtin_ctzll(mask);
    mask &= mask - 1;
    int run = k - prev - 1;
    while (run > 15) {
      sym[n++] = 0xF0; /* ZRL */
      run -= 16;
    }
    sym[n++] = (uint8_t)((run << 4) + nbits_nonzero(b[ZZ[k]]));
    prev = k;
  }
  if (prev != 63) sym[n++] = 0;
  for (int i = 0; i < n; i++) h[i & 3][sym[i]]++;
}

/* The four histograms of an AC table added up, as jpeg_gen_optimal_table takes them. */
static inline void sum_ac(struct dr_stats *s, int t) {
  for (int v = 0; v < 256; v++) s->ac[t][v] += (long)s->ac4[t][0][v] + s->ac4[t][1][v] + s->ac4[t][2][v] + s->ac4[t][3][v];
}

static inline void dr_install(j_compress_ptr cinfo, JHUFF_TBL **slot, const JHUFF_TBL *t) {
  if (*slot == NULL) *slot = jpeg_alloc_huff_table((j_common_ptr)cinfo);
  memcpy((*slot)->bits, t->bits, sizeof t->bits);
  memcpy((*slot)->huffval, t->huffval, sizeof t->huffval);
  (*slot)->sent_table = FALSE;
}

#endif
